"""Session mode's wire format and state: every refusal before decryption, activation, session receipts."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import prover_session as ps
from ansible_collections.teeproof.kit.plugins.module_utils import td_claims

INPUT = {"a": "3", "b": "11", "secret": "987654321987"}
COMMIT = bytes(range(32))


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock, nonce: bytes) -> ps.SessionState:
    s = ps.SessionState.fresh(max_request_bytes=4096)
    s.clock = clock
    s.activate(ps.make_activation(s.session_key, nonce, 600, now=clock.now).document())
    return s


def sealed(state: ps.SessionState, seq: int, data: Any = None, key: str | None = None) -> bytes:
    assert state.activation is not None
    return ps.seal_request(
        key or state.session_key,
        state.activation.session_id,
        seq,
        data if data is not None else INPUT,
        COMMIT,
    )


def refused(state: ps.SessionState, raw: bytes) -> str:
    with pytest.raises(ps.SessionRefused) as exc:
        state.open(raw)
    assert "987654321987" not in str(exc.value)  # a refusal never quotes the request
    return exc.value.kind


def test_round_trip_in_order(state: ps.SessionState) -> None:
    for seq in range(3):
        request = state.open(sealed(state, seq))
        assert request.seq == seq and request.input_data == INPUT and request.commit_key == COMMIT
        assert request.input_bytes == td_claims.canonical(INPUT)
    assert state.next_seq == 3


def test_the_host_sees_no_input(state: ps.SessionState) -> None:
    raw = sealed(state, 0)
    assert b"987654321987" not in raw and b"secret" not in raw
    assert sorted(json.loads(raw)) == sorted(ps.ENVELOPE_FIELDS)


def test_replay_and_reorder_are_refused(state: ps.SessionState) -> None:
    first = sealed(state, 0)
    state.open(first)
    assert refused(state, first) == "replay"
    assert refused(state, sealed(state, 0)) == "replay"
    assert refused(state, sealed(state, 5)) == "reorder"
    assert state.next_seq == 1
    state.open(sealed(state, 1))


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"x" * 4097, "oversized"),
        (b"not json", "malformed"),
        (b"[]", "malformed"),
        (json.dumps({"kit_session": 1, "session": "0" * 32, "seq": 0}).encode(), "malformed"),
        (json.dumps({"kit_session": 2, "session": "0" * 32, "seq": 0, "ct": "A" * 88}).encode(), "malformed"),
        (json.dumps({"kit_session": 1, "session": "ZZ", "seq": 0, "ct": "A" * 88}).encode(), "malformed"),
        (
            json.dumps({"kit_session": 1, "session": "0" * 32, "seq": -1, "ct": "A" * 88}).encode(),
            "malformed",
        ),
        (
            json.dumps({"kit_session": 1, "session": "0" * 32, "seq": True, "ct": "A" * 88}).encode(),
            "malformed",
        ),
        (json.dumps({"kit_session": 1, "session": "0" * 32, "seq": 0, "ct": "!!"}).encode(), "malformed"),
        (json.dumps({"kit_session": 1, "session": "0" * 32, "seq": 0, "ct": "AAAA"}).encode(), "malformed"),
        (json.dumps({"kit_session": 1, "session": "0" * 32, "seq": 0, "ct": "A" * 88}).encode(), "session"),
    ],
)
def test_malformed_requests_are_refused_before_decryption(
    state: ps.SessionState, raw: bytes, kind: str
) -> None:
    assert refused(state, raw) == kind
    assert state.next_seq == 0


def test_wrong_key_changed_bytes_and_moved_header_do_not_decrypt(state: ps.SessionState) -> None:
    other = ps.public_key_text(ps.new_session_key()[0].public_key())
    assert refused(state, sealed(state, 0, key=other)) == "decrypt"
    env = json.loads(sealed(state, 0))
    ct = bytearray(base64.b64decode(env["ct"]))
    ct[40] ^= 0x80
    assert (
        refused(state, td_claims.canonical({**env, "ct": base64.b64encode(bytes(ct)).decode()})) == "decrypt"
    )
    # the header of request 1 on the ciphertext of request 0: seq is bound into HPKE's info
    state.open(sealed(state, 0))
    env0 = json.loads(sealed(state, 0))
    assert refused(state, td_claims.canonical({**env0, "seq": 1})) == "decrypt"
    assert state.next_seq == 1  # garbage burns no number
    state.open(sealed(state, 1))


def test_a_sealed_non_request_is_refused_after_decryption(state: ps.SessionState) -> None:
    assert state.activation is not None
    from cryptography.hazmat.primitives import hpke

    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    body = suite.encrypt(
        b'{"input": [], "commit_key": "00"}',
        ps.parse_session_key(state.session_key),
        info=ps._info(state.activation.session_id, 0),
    )
    env = {
        "kit_session": 1,
        "session": state.activation.session_id,
        "seq": 0,
        "ct": base64.b64encode(body).decode(),
    }
    assert refused(state, td_claims.canonical(env)) == "input"


def test_not_active_expired_and_wiped(state: ps.SessionState, clock: Clock) -> None:
    fresh = ps.SessionState.fresh()
    assert refused(fresh, sealed(state, 0)) == "not_active"
    raw = sealed(state, 0)
    clock.now += 601
    assert refused(state, raw) == "expired"
    clock.now -= 601
    state.wipe()
    assert state.private_key is None and refused(state, raw) == "not_active"


def test_activation_checks(clock: Clock, nonce: bytes) -> None:
    s = ps.SessionState.fresh()
    s.clock = clock
    other_key = ps.public_key_text(ps.new_session_key()[0].public_key())
    with pytest.raises(ps.SessionError, match=r"activation\.session_key"):
        s.activate(ps.make_activation(other_key, nonce, 60, now=clock.now).document())
    with pytest.raises(ps.SessionError, match="already passed"):
        s.activate(ps.make_activation(s.session_key, nonce, 60, now=clock.now - 120).document())
    good = ps.make_activation(s.session_key, nonce, 60, now=clock.now)
    s.activate(good.document())
    with pytest.raises(ps.SessionError, match="another session"):
        s.activate(ps.make_activation(s.session_key, nonce, 60, now=clock.now).document())
    for bad, where in [
        ({**good.document(), "extra": 1}, "activation"),
        ({**good.document(), "kit_session": 9}, "activation.kit_session"),
        ({**good.document(), "session_id": "x"}, "activation.session_id"),
        ({**good.document(), "session_key": "x"}, "activation.session_key"),
        ({**good.document(), "nonce": "00"}, "activation.nonce"),
        ({**good.document(), "expires_at": "soon"}, "activation.expires_at"),
    ]:
        with pytest.raises(ps.SessionError) as exc:
            ps.parse_activation(bad)
        assert exc.value.field == where
    with pytest.raises(ps.SessionError, match="lifetime"):
        ps.make_activation(s.session_key, nonce, 0)
    with pytest.raises(ps.SessionError, match="not JSON"):
        ps.parse_activation(b"{")


def _receipt(
    state: ps.SessionState, td: dict[str, Any], request: ps.Request
) -> tuple[dict[str, Any], dict[str, Any]]:
    assert state.activation is not None
    claims = {**td["claims"], "session_key": state.session_key}
    body = ps.receipt_body(
        request=request, proof=b"P", public=b"[1]", vkey=b"V", activation=state.activation, claims=claims
    )
    return td_claims.sign_receipt(body, td["receipt_private"]), claims


def test_session_receipt_checks_every_field(state: ps.SessionState, td: dict[str, Any], nonce: bytes) -> None:
    raw = sealed(state, 0)
    request = state.open(raw)
    signed, claims = _receipt(state, td, request)
    assert state.activation is not None
    expected = {
        "session_id": state.activation.session_id,
        "seq": 0,
        "request_sha256": td_claims.sha256_hex(raw),
        "proof_sha256": td_claims.sha256_hex(b"P"),
        "public_sha256": td_claims.sha256_hex(b"[1]"),
        "vkey_sha256": td_claims.sha256_hex(b"V"),
        "input_commitment": td_claims.input_commitment(
            COMMIT, ps.canonical_input(json.dumps(INPUT).encode())
        ),
        "nonce": nonce.hex(),
        "claims_sha512": td_claims.claims_digest(claims).hex(),
    }
    key = claims["receipt_key"]
    ps.check_session_receipt(signed, receipt_key=key, expected=expected)
    for name, value in [
        ("seq", 1),
        ("request_sha256", "0" * 64),
        ("proof_sha256", "1" * 64),
        ("session_id", "2" * 32),
        ("nonce", "3" * 64),
    ]:
        with pytest.raises(ps.SessionError) as exc:
            ps.check_session_receipt(signed, receipt_key=key, expected={**expected, name: value})
        assert exc.value.field == f"receipt.{name}"
    with pytest.raises(ps.SessionError) as exc:
        ps.check_session_receipt({**signed, "seq": 1}, receipt_key=key, expected=expected)
    assert exc.value.field == "receipt.signature"
    with pytest.raises(ps.SessionError, match="session receipt"):
        ps.check_session_receipt({**signed, "kit_receipt": 1}, receipt_key=key, expected=expected)
    for field in ("session_id", "seq", "request_sha256"):
        with pytest.raises(ps.SessionError) as exc:
            ps.check_session_receipt({**signed, field: None}, receipt_key=key, expected=expected)
        assert exc.value.field == f"receipt.{field}"


def test_an_old_proof_under_a_new_request_is_refused(state: ps.SessionState, td: dict[str, Any]) -> None:
    raw0, raw1 = sealed(state, 0), None
    old, claims = _receipt(state, td, state.open(raw0))
    raw1 = sealed(state, 1)
    state.open(raw1)
    assert state.activation is not None
    with pytest.raises(ps.SessionError) as exc:
        ps.check_session_receipt(
            old,
            receipt_key=claims["receipt_key"],
            expected={"seq": 1, "request_sha256": td_claims.sha256_hex(raw1)},
        )
    assert exc.value.field == "receipt.seq"


def test_claims_carry_an_optional_session_key(td: dict[str, Any]) -> None:
    key = ps.public_key_text(ps.new_session_key()[0].public_key())
    assert td_claims.parse_claims({**td["claims"], "session_key": key}).session_key == key
    assert td_claims.parse_claims(td["claims"]).session_key is None
    for bad in ("", "x" * 44, 7, base64.b64encode(secrets.token_bytes(31)).decode()):
        with pytest.raises(td_claims.ClaimsError) as exc:
            td_claims.parse_claims({**td["claims"], "session_key": bad})
        assert exc.value.field == "session_key"
    doc = td_claims.parse_claims({**td["claims"], "session_key": key}).document()
    assert doc["session_key"] == key
