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
LEASE_KEY, LEASE_PUB = ps.new_lease_key()
LEASE: dict[str, Any] = {"lease_key": LEASE_PUB, "lease_requests": 1000, "lease_s": 3600}


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
    s.activate(ps.make_activation(s.session_key, nonce, 600, **LEASE, now=clock.now).document())
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
    eks = KEMKeyPair(ps.hpke_kem_key(eph), ps.hpke_kem_key(eph.public_key()))
    recipient = X25519PrivateKey.from_private_bytes(v["skRm"])
    assert recipient.public_key().public_bytes_raw() == v["pkRm"]
    enc, sender = ps.hpke_suite().create_sender_context(
        ps.hpke_kem_key(recipient.public_key()), v["info"], psk=v["psk"], psk_id=v["psk_id"], eks=eks
    )
    assert enc == v["enc"]
    assert sender.seal(v["pt"], v["aad0"]) == v["ct0"] and sender.seal(v["pt"], v["aad1"]) == v["ct1"]
    assert sender.export(b"TestContext", 32) == v["export_TestContext"]
    opened = ps.hpke_suite().create_recipient_context(
        v["enc"], ps.hpke_kem_key(recipient), v["info"], psk=v["psk"], psk_id=v["psk_id"]
    )
    assert opened.open(v["ct0"], v["aad0"]) == v["pt"]
    assert opened.export(b"TestContext", 32) == v["export_TestContext"]


def refused(state: ps.SessionState, raw: bytes, lease: str | None = None) -> str:
    with pytest.raises(ps.SessionRefused) as exc:
        state.open(raw, lease)
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
        s.activate(ps.make_activation(other_key, nonce, 60, **LEASE, now=clock.now).document())
    with pytest.raises(ps.SessionError, match="already passed"):
        s.activate(ps.make_activation(s.session_key, nonce, 60, **LEASE, now=clock.now - 120).document())
    good = ps.make_activation(s.session_key, nonce, 60, **LEASE, now=clock.now)
    assert "psk" not in repr(good) and len(good.psk) == 32
    s.activate(good.document())
    with pytest.raises(ps.SessionError, match="another one"):
        s.activate(ps.make_activation(s.session_key, nonce, 60, **LEASE, now=clock.now).document())
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
        ({**good.document(), "lease_key": "x"}, "activation.lease_key"),
        ({**good.document(), "lease_requests": 0}, "activation.lease_requests"),
        ({**good.document(), "lease_requests": ps.MAX_LEASE_REQUESTS + 1}, "activation.lease_requests"),
        ({**good.document(), "lease_s": True}, "activation.lease_s"),
        ({**good.document(), "lease_s": ps.MAX_LEASE_SECONDS + 1}, "activation.lease_s"),
    ]:
        with pytest.raises(ps.SessionError) as exc:
            ps.parse_activation(bad)
        assert exc.value.field == where
    for lifetime in (0, ps.MAX_SESSION_SECONDS + 1):
        with pytest.raises(ps.SessionError, match="lifetime"):
            ps.make_activation(s.session_key, nonce, lifetime, **LEASE)


def test_the_td_refuses_a_stretched_lifetime_whatever_the_activation_says(clock: Clock, nonce: bytes) -> None:
    """An activation built by hand (not by make_activation) that asks for more than the cap."""
    s = ps.SessionState.fresh()
    s.clock = clock
    doc = ps.make_activation(s.session_key, nonce, 60, **LEASE, now=clock.now).document()
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


# ---------------------------------------------------------------------------------------------- leases


@pytest.fixture
def leased(clock: Clock, mono: Clock, nonce: bytes) -> ps.SessionState:
    """A session whose activation (lease 0) is good for 2 requests and 100 s of the TD's clock."""
    s = ps.SessionState.fresh(max_request_bytes=4096)
    s.clock, s.monotonic = clock, mono
    lease = {**LEASE, "lease_requests": 2, "lease_s": 100}
    s.activate(ps.make_activation(s.session_key, nonce, 600, **lease, now=clock.now).document())
    return s


def lease(state: ps.SessionState, counter: int, key: bytes = LEASE_KEY, session: str | None = None) -> str:
    assert state.activation is not None
    return ps.sign_lease(key, session or state.activation.session_id, counter, 1234)


def test_a_lease_runs_out_by_count_and_a_newer_one_renews_it(leased: ps.SessionState) -> None:
    leased.open(sealed(leased, 0))
    leased.open(sealed(leased, 1))
    assert leased.lease_ran_out() == "count"
    with pytest.raises(ps.SessionRefused) as exc:
        leased.open(sealed(leased, 2))
    assert exc.value.kind == "lease_expired" and exc.value.status == 403
    assert leased.next_seq == 2  # refused before decryption: no number used
    leased.open(sealed(leased, 2), lease(leased, 1))  # the client's next lease: two more requests
    assert (leased.lease_counter, leased.lease_used, leased.lease_ran_out()) == (1, 1, "")


def test_a_lease_runs_out_on_the_tds_clock_not_the_wall_clock(
    leased: ps.SessionState, clock: Clock, mono: Clock
) -> None:
    clock.now -= 10_000  # the host sets the wall clock back: nothing changes
    mono.now += 99
    assert leased.lease_ran_out() == ""
    mono.now += 1
    assert leased.lease_ran_out() == "time"
    assert refused(leased, sealed(leased, 0)) == "lease_expired"
    leased.open(sealed(leased, 0), lease(leased, 1))
    assert leased.lease_ran_out() == ""


def test_the_host_can_neither_forge_nor_replay_nor_graft_a_lease(leased: ps.SessionState) -> None:
    other_key, _unused = ps.new_lease_key()
    for bad in (
        lease(leased, 1, key=other_key),  # not the client's key
        lease(leased, 1, session="f" * 32),  # another session's
        "not base64 at all",
        base64.b64encode(b'{"kit_lease": 1}').decode(),
        base64.b64encode(b"x" * 2000).decode(),
    ):
        with pytest.raises(ps.SessionRefused) as exc:
            leased.open(sealed(leased, 0), bad)
        assert exc.value.kind == "lease"
    assert leased.next_seq == 0  # a bad lease uses up no number
    good = lease(leased, 1)
    # grafted onto a request the host sealed: the request does not decrypt, the lease is not taken
    with pytest.raises(ps.SessionRefused) as exc:
        leased.open(sealed(leased, 0, psk=bytes(32)), good)
    assert exc.value.kind == "decrypt" and leased.lease_counter == 0
    leased.open(sealed(leased, 0), good)
    assert leased.lease_counter == 1
    leased.open(sealed(leased, 1), good)  # replayed (or late): not newer than the one held, so not taken
    assert (leased.lease_counter, leased.lease_used) == (1, 2)
    assert refused(leased, sealed(leased, 2), good) == "lease_expired"  # it renews nothing


def test_reads_carry_leases_too_but_only_the_clients(leased: ps.SessionState) -> None:
    token, _unused = read(leased, "/session")
    host_token, _unused = read(leased, "/session", psk=bytes(32))
    with pytest.raises(ps.SessionRefused) as exc:
        leased.open_read("/session", host_token, lease(leased, 5))
    assert exc.value.kind == "unauthenticated" and leased.lease_counter == 0
    leased.open_read("/session", token, lease(leased, 5))
    assert leased.lease_counter == 5 and leased.lease_used == 0
    leased.lease_used = 2  # the lease's requests are used up: the client may still read its results
    token, _unused = read(leased, "/results/1")
    leased.open_read("/results/1", token)
    assert isinstance(leased.monotonic, Clock)
    leased.monotonic.now += 100  # but not once the lease's time is over
    token, _unused = read(leased, "/results/1")
    with pytest.raises(ps.SessionRefused) as exc:
        leased.open_read("/results/1", token)
    assert exc.value.kind == "lease_expired"


def test_a_lease_says_pass_for_this_session_and_is_signed() -> None:
    session = "a" * 32
    doc = json.loads(base64.b64decode(ps.sign_lease(LEASE_KEY, session, 7, 1234)))
    assert sorted(doc) == sorted(ps.LEASE_FIELDS) and doc["verdict"] == "PASS" and doc["counter"] == 7
    assert ps.parse_lease(ps.sign_lease(LEASE_KEY, session, 7, 1234), LEASE_PUB, session).counter == 7
    for change in (
        {"verdict": "FAIL"},
        {"counter": 8},
        {"attested_at": 1},
        {"kit_lease": 2},
        {"seconds": 5},
        {"requests": 0},
    ):
        forged = base64.b64encode(td_claims.canonical({**doc, **change})).decode()
        with pytest.raises(ps.SessionRefused, match="lease"):
            ps.parse_lease(forged, LEASE_PUB, session)
    with pytest.raises(ps.SessionError, match="lease_key"):
        ps.sign_lease(b"short", session, 1, 0)


def test_a_lease_is_good_for_what_it_asks_at_most_what_the_activation_allows(leased: ps.SessionState) -> None:
    assert leased.activation is not None
    short = ps.sign_lease(LEASE_KEY, leased.activation.session_id, 1, 0, requests=1, seconds=5)
    leased.open(sealed(leased, 0), short)
    assert (leased.lease_requests, leased.lease_s) == (1, 5)
    assert refused(leased, sealed(leased, 1)) == "lease_expired"
    long = ps.sign_lease(LEASE_KEY, leased.activation.session_id, 2, 0)  # asks for the most
    leased.open(sealed(leased, 1), long)
    assert (leased.lease_requests, leased.lease_s) == (2, 100)  # the activation's caps
    with pytest.raises(ps.SessionError, match="seconds"):
        ps.sign_lease(LEASE_KEY, leased.activation.session_id, 3, 0, seconds=0)
