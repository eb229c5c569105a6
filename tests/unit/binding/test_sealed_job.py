"""A job sealed to the TD's quoted job key (sealed_job.py): only that key opens it, and nothing else does."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import prover_session as ps
from ansible_collections.teeproof.kit.plugins.module_utils import sealed_job, td_claims

NONCE = "ab" * 32
COMMIT = "cd" * 32
INPUT = b'{"secret": "canary-7f3a", "x": [1, 2, 3]}\n'
# RFC 9180 A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, base mode (as in Go's
# crypto/hpke testdata/rfc9180.json).
RFC9180_A21 = {
    "info": "4f6465206f6e2061204772656369616e2055726e",
    "ikmE": "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b",
    "skRm": "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb",
    "pkRm": "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a",
    "enc": "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a",
}


def _key() -> tuple[bytes, str]:
    return td_claims.new_x25519_key()


def _sealed(public: str, **changes: Any) -> bytes:
    job = sealed_job.Job(
        changes.get("nonce", NONCE), changes.get("commit_key", COMMIT), changes.get("input", INPUT)
    )
    return sealed_job.seal(public, job)


def test_base_mode_is_rfc9180_a_2_1() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    v = {k: bytes.fromhex(x) for k, x in RFC9180_A21.items()}
    suite = ps.hpke_suite()
    eks = suite.kem.derive_key_pair(v["ikmE"])
    recipient = X25519PrivateKey.from_private_bytes(v["skRm"])
    assert recipient.public_key().public_bytes_raw() == v["pkRm"]
    enc, sender = suite.create_sender_context(ps.hpke_kem_key(recipient.public_key()), v["info"], eks=eks)
    assert enc == v["enc"]
    opened = suite.create_recipient_context(enc, ps.hpke_kem_key(recipient), v["info"])
    assert opened.open(sender.seal(b"pt")) == b"pt"


def test_the_td_that_drew_the_key_opens_the_job() -> None:
    private, public = _key()
    job = sealed_job.open_sealed(private, _sealed(public))
    assert (job.nonce, job.commit_key, job.input) == (NONCE, COMMIT, INPUT)
    assert job.job_document() == {"nonce": NONCE, "commit_key": COMMIT}


def test_the_sealed_job_shows_no_input_and_differs_each_time() -> None:
    _unused, public = _key()
    one, two = _sealed(public), _sealed(public)
    assert one != two
    for text in (b"canary-7f3a", base64.b64encode(INPUT)[:12], COMMIT.encode()):
        assert text not in one


def test_another_key_does_not_open_it() -> None:
    _unused, public = _key()
    other, _unused_public = _key()
    with pytest.raises(sealed_job.SealedJobError, match="does not open with this TD's job key"):
        sealed_job.open_sealed(other, _sealed(public))


@pytest.mark.parametrize("where", [0, 31, 32, -1])
def test_a_changed_byte_does_not_open(where: int) -> None:
    private, public = _key()
    sealed = bytearray(_sealed(public))
    sealed[where] ^= 0x01
    with pytest.raises(sealed_job.SealedJobError) as caught:
        sealed_job.open_sealed(private, bytes(sealed))
    assert caught.value.field == "sealed job"


def test_a_job_sealed_under_another_claim_does_not_open() -> None:
    """The info names the claimed key: a ciphertext made for one claim text is refused under the real key."""
    private, public = _key()
    enc, ctx = ps.hpke_suite().create_sender_context(
        ps.hpke_kem_key(ps.parse_session_key(public)), td_claims.canonical({"kit_job": 1, "job_key": "x"})
    )
    with pytest.raises(sealed_job.SealedJobError, match="does not open"):
        sealed_job.open_sealed(private, bytes(enc) + bytes(ctx.seal(b"{}")))


def test_what_opens_but_is_not_a_job_is_refused() -> None:
    private, public = _key()
    info = td_claims.canonical({"kit_job": 1, "job_key": public})
    for plaintext in (
        b"not json",
        b"[]",
        b'{"kit_job": 2}',
        td_claims.canonical({"kit_job": 1, "nonce": NONCE}),
    ):
        enc, ctx = ps.hpke_suite().create_sender_context(ps.hpke_kem_key(ps.parse_session_key(public)), info)
        with pytest.raises(sealed_job.SealedJobError, match="opened, but"):
            sealed_job.open_sealed(private, bytes(enc) + bytes(ctx.seal(plaintext)))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nonce": "AB" * 32}, "nonce"),
        ({"nonce": "ab" * 15}, "nonce"),
        ({"commit_key": "cd" * 31}, "commit_key"),
        ({"input": b""}, "input"),
        ({"input": b"x" * (sealed_job.MAX_INPUT_BYTES + 1)}, "input"),
    ],
)
def test_bad_jobs_are_not_sealed(change: dict[str, Any], field: str) -> None:
    _unused, public = _key()
    with pytest.raises(sealed_job.SealedJobError) as caught:
        _sealed(public, **change)
    assert caught.value.field == field


@pytest.mark.parametrize("key", ["", "not-a-key", base64.b64encode(b"x" * 31).decode()])
def test_a_bad_job_key_is_named(key: str) -> None:
    with pytest.raises(ps.SessionError) as caught:
        _sealed(key)
    assert caught.value.field == "job_key"


def test_bad_sizes_are_refused_before_opening() -> None:
    private, _unused = _key()
    with pytest.raises(sealed_job.SealedJobError, match="job key"):
        sealed_job.open_sealed(private[:31], b"x" * 64)
    with pytest.raises(sealed_job.SealedJobError, match="must be"):
        sealed_job.open_sealed(private, b"x" * 32)
    with pytest.raises(sealed_job.SealedJobError, match="must be"):
        sealed_job.open_sealed(private, secrets.token_bytes(sealed_job.MAX_SEALED_BYTES + 1))


def test_the_claims_carry_a_job_key_and_refuse_a_bad_one() -> None:
    _unused, public = _key()
    base = {
        "kit_claims": 2,
        "agent": {"uuid": "u", "ek_tpm": "AA==", "aik_tpm": "AA==", "mtls_cert": _pem()},
        "agent_ca_sha256": "0" * 64,
        "ssh_host_key": "ssh-ed25519 " + "A" * 68,
        "receipt_key": "ssh-ed25519 " + "A" * 68,
        "image_id_sha256": "0" * 64,
    }
    assert td_claims.parse_claims({**base, "job_key": public}).job_key == public
    assert (
        td_claims.parse_claims(td_claims.parse_claims({**base, "job_key": public}).document()).job_key
        == public
    )
    with pytest.raises(td_claims.ClaimsError) as caught:
        td_claims.parse_claims({**base, "job_key": "AAAA"})
    assert caught.value.field == "job_key"


def _pem() -> str:
    return "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
