"""Session mode's wire format and state: refusals before decryption, reads, activation, session receipts."""

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


# RFC 9180, appendix A.2.2: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, PSK mode (the suite
# and mode of every request and read), copied from the RFC's text.
RFC9180_A22 = {
    "info": "4f6465206f6e2061204772656369616e2055726e",
    "skEm": "0c35fdf49df7aa01cd330049332c40411ebba36e0c718ebc3edf5845795f6321",
    "pkRm": "13640af826b722fc04feaa4de2f28fbd5ecc03623b317834e7ff4120dbe73062",
    "skRm": "77d114e0212be51cb1d76fa99dd41cfd4d0166b08caa09074430a6c59ef17879",
    "psk": "0247fd33b913760fa1fa51e1892d9f307fbe65eb171e8132c2af18555a738b82",
    "psk_id": "456e6e796e20447572696e206172616e204d6f726961",
    "enc": "2261299c3f40a9afc133b969a97f05e95be2c514e54f3de26cbe5644ac735b04",
    "pt": "4265617574792069732074727574682c20747275746820626561757479",
    "aad0": "436f756e742d30",
    "ct0": "4a177f9c0d6f15cfdf533fb65bf84aecdc6ab16b8b85b4cf65a370e07fc1d78d28fb073214525276f4a89608ff",
    "aad1": "436f756e742d31",
    "ct1": "5c3cabae2f0b3e124d8d864c116fd8f20f3f56fda988c3573b40b09997fd6c769e77c8eda6cda4f947f5b704a8",
    "export_TestContext": "ad40e3ae14f21c99bfdebc20ae14ab86f4ca2dc9a4799d200f43a25f99fa78ae",
}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mono() -> Clock:
    return Clock(50.0)


@pytest.fixture
def state(clock: Clock, mono: Clock, nonce: bytes) -> ps.SessionState:
    s = ps.SessionState.fresh(max_request_bytes=4096)
    s.clock, s.monotonic = clock, mono
    s.activate(ps.make_activation(s.session_key, nonce, 600, now=clock.now).document())
    return s


def sealed(
    state: ps.SessionState, seq: int, data: Any = None, key: str | None = None, psk: bytes | None = None
) -> bytes:
    assert state.activation is not None
    return ps.seal_request(
        key or state.session_key,
        state.activation.session_id,
        seq,
        data if data is not None else INPUT,
        COMMIT,
        psk if psk is not None else state.activation.psk,
    )


def test_hpke_psk_mode_is_rfc9180_a_2_2() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from pyhpke import KEMKeyPair

    v = {k: bytes.fromhex(x) for k, x in RFC9180_A22.items()}
    eph = X25519PrivateKey.from_private_bytes(v["skEm"])
    eks = KEMKeyPair(ps._kem_key(eph), ps._kem_key(eph.public_key()))
    recipient = X25519PrivateKey.from_private_bytes(v["skRm"])
    assert recipient.public_key().public_bytes_raw() == v["pkRm"]
    enc, sender = ps._suite().create_sender_context(
        ps._kem_key(recipient.public_key()), v["info"], psk=v["psk"], psk_id=v["psk_id"], eks=eks
    )
    assert enc == v["enc"]
    assert sender.seal(v["pt"], v["aad0"]) == v["ct0"] and sender.seal(v["pt"], v["aad1"]) == v["ct1"]
    assert sender.export(b"TestContext", 32) == v["export_TestContext"]
    opened = ps._suite().create_recipient_context(
        v["enc"], ps._kem_key(recipient), v["info"], psk=v["psk"], psk_id=v["psk_id"]
    )
    assert opened.open(v["ct0"], v["aad0"]) == v["pt"]
    assert opened.export(b"TestContext", 32) == v["export_TestContext"]


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


def test_a_request_the_host_seals_from_public_values_burns_no_number(state: ps.SessionState) -> None:
    """The host knows the session key, the session id and the next number, but not the PSK."""
    assert state.activation is not None
    for guess in (bytes(32), secrets.token_bytes(32)):
        assert refused(state, sealed(state, 0, psk=guess)) == "decrypt"
    assert state.next_seq == 0
    assert state.open(sealed(state, 0)).seq == 0  # the client's own request takes the number
    with pytest.raises(ps.SessionError, match="psk"):
        sealed(state, 1, psk=b"short")


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
        (json.dumps({"kit_session": 2, "session": "0" * 32, "seq": 0}).encode(), "malformed"),
        (json.dumps({"kit_session": 1, "session": "0" * 32, "seq": 0, "ct": "A" * 88}).encode(), "malformed"),
        (json.dumps({"kit_session": 2, "session": "ZZ", "seq": 0, "ct": "A" * 88}).encode(), "malformed"),
        (
            json.dumps({"kit_session": 2, "session": "0" * 32, "seq": -1, "ct": "A" * 88}).encode(),
            "malformed",
        ),
        (
            json.dumps({"kit_session": 2, "session": "0" * 32, "seq": True, "ct": "A" * 88}).encode(),
            "malformed",
        ),
        (json.dumps({"kit_session": 2, "session": "0" * 32, "seq": 0, "ct": "!!"}).encode(), "malformed"),
        (json.dumps({"kit_session": 2, "session": "0" * 32, "seq": 0, "ct": "AAAA"}).encode(), "malformed"),
        (json.dumps({"kit_session": 2, "session": "0" * 32, "seq": 0, "ct": "A" * 88}).encode(), "session"),
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
    session = state.activation.session_id
    body, _key = ps._seal(
        state.session_key,
        ps._info(session, 0),
        b'{"input": [], "commit_key": "00"}',
        state.activation.psk,
        session,
    )
    env = {"kit_session": 2, "session": session, "seq": 0, "ct": base64.b64encode(body).decode()}
    assert refused(state, td_claims.canonical(env)) == "input"


def test_not_active_expired_and_wiped(state: ps.SessionState, clock: Clock, mono: Clock) -> None:
    fresh = ps.SessionState.fresh()
    assert refused(fresh, sealed(state, 0)) == "not_active"
    raw = sealed(state, 0)
    clock.now += 601
    assert refused(state, raw) == "expired"
    clock.now -= 601
    mono.now += 600  # the TD's own clock ran the lifetime out, whatever the host set the wall clock to
    assert refused(state, raw) == "expired"
    mono.now -= 600
    state.wipe()
    assert state.private_key is None and refused(state, raw) == "not_active"


def test_a_wall_clock_set_back_stretches_nothing(state: ps.SessionState, clock: Clock, mono: Clock) -> None:
    raw = sealed(state, 0)
    clock.now -= 10 * 24 * 3600  # the host sets the TD's clock ten days back
    mono.now += 599
    state.open(raw)
    mono.now += 1
    assert refused(state, sealed(state, 1)) == "expired"


def read(
    state: ps.SessionState, path: str, psk: bytes | None = None, key: str | None = None
) -> tuple[str, bytes]:
    assert state.activation is not None
    return ps.seal_read(
        key or state.session_key,
        state.activation.session_id,
        path,
        psk if psk is not None else state.activation.psk,
    )


def test_reads_answer_only_the_client_and_are_sealed_to_it(state: ps.SessionState, mono: Clock) -> None:
    token, client_key = read(state, "/results/0?wait=5")
    server_key = state.open_read("/results/0?wait=5", token)
    assert server_key == client_key
    answer = ps.seal_response(server_key, 200, {"proof": "P", "public": "[7]"})
    assert b"[7]" not in json.dumps(answer).encode()
    assert ps.open_response(client_key, answer) == (200, {"proof": "P", "public": "[7]"})
    # the host: no token, garbage, a guessed PSK, another path, a token replayed to read another answer
    other = ps.public_key_text(ps.new_session_key()[0].public_key())
    for path, bad in [
        ("/session", None),
        ("/session", "!!"),
        ("/session", "A" * 5000),
        ("/session", read(state, "/session", psk=bytes(32))[0]),
        ("/session", read(state, "/session", key=other)[0]),
        ("/results/1", token),
        ("/results/0?wait=30", token),
    ]:
        with pytest.raises(ps.SessionRefused) as exc:
            state.open_read(path, bad)
        assert exc.value.kind == "unauthenticated" and exc.value.status == 401
    assert state.next_seq == 0  # reads use no number
    replayed = state.open_read("/results/0?wait=5", token)
    with pytest.raises(ps.SessionError, match="response"):
        ps.open_response(bytes(32), ps.seal_response(replayed, 200, {}))
    with pytest.raises(ps.SessionError, match="response"):
        ps.open_response(client_key, {"sealed": answer["sealed"][:-4] + "AAAA"})
    junks: list[object] = [{}, {"sealed": 7}, [], ps.seal_response(client_key, 200, {})["sealed"]]
    for junk in junks:
        with pytest.raises(ps.SessionError, match="response"):
            ps.open_response(client_key, junk)
    mono.now += 600
    with pytest.raises(ps.SessionRefused) as exc:
        state.open_read("/session", read(state, "/session")[0])
    assert exc.value.kind == "expired"
    state.wipe()
    with pytest.raises(ps.SessionRefused) as exc:
        state.open_read("/session", token)
    assert exc.value.kind == "not_active"


def test_activation_checks(clock: Clock, nonce: bytes) -> None:
    s = ps.SessionState.fresh()
    s.clock = clock
    other_key = ps.public_key_text(ps.new_session_key()[0].public_key())
    with pytest.raises(ps.SessionError, match=r"activation\.session_key"):
        s.activate(ps.make_activation(other_key, nonce, 60, now=clock.now).document())
    with pytest.raises(ps.SessionError, match="already passed"):
        s.activate(ps.make_activation(s.session_key, nonce, 60, now=clock.now - 120).document())
    good = ps.make_activation(s.session_key, nonce, 60, now=clock.now)
    assert "psk" not in repr(good) and len(good.psk) == 32
    s.activate(good.document())
    with pytest.raises(ps.SessionError, match="another one"):
        s.activate(ps.make_activation(s.session_key, nonce, 60, now=clock.now).document())
    with pytest.raises(ps.SessionError, match="already serves a session"):  # no second PSK for a session
        s.activate({**good.document(), "psk": base64.b64encode(bytes(32)).decode()})
    for bad, where in [
        ({**good.document(), "extra": 1}, "activation"),
        ({**good.document(), "kit_session": 1}, "activation.kit_session"),
        ({**good.document(), "session_id": "x"}, "activation.session_id"),
        ({**good.document(), "session_key": "x"}, "activation.session_key"),
        ({**good.document(), "nonce": "00"}, "activation.nonce"),
        ({**good.document(), "expires_at": "soon"}, "activation.expires_at"),
        ({**good.document(), "lifetime_s": ps.MAX_SESSION_SECONDS + 1}, "activation.lifetime_s"),
        ({**good.document(), "lifetime_s": 0}, "activation.lifetime_s"),
        ({**good.document(), "lifetime_s": True}, "activation.lifetime_s"),
        ({**good.document(), "psk": "short"}, "activation.psk"),
        ({**good.document(), "psk": base64.b64encode(bytes(31)).decode()}, "activation.psk"),
        ({**good.document(), "psk": None}, "activation.psk"),
    ]:
        with pytest.raises(ps.SessionError) as exc:
            ps.parse_activation(bad)
        assert exc.value.field == where
    for lifetime in (0, ps.MAX_SESSION_SECONDS + 1):
        with pytest.raises(ps.SessionError, match="lifetime"):
            ps.make_activation(s.session_key, nonce, lifetime)


def test_the_td_refuses_a_stretched_lifetime_whatever_the_activation_says(clock: Clock, nonce: bytes) -> None:
    """An activation built by hand (not by make_activation) that asks for more than the cap."""
    s = ps.SessionState.fresh()
    s.clock = clock
    doc = ps.make_activation(s.session_key, nonce, 60, now=clock.now).document()
    year = 365 * 24 * 3600
    with pytest.raises(ps.SessionError) as exc:
        s.activate({**doc, "lifetime_s": year, "expires_at": int(clock.now) + year})
    assert exc.value.field == "activation.lifetime_s" and s.activation is None
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
