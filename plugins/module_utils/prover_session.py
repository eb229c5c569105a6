"""Session mode: attest once, prove many. The wire format, the guest's session state and the session receipt.

One file for both ends (the guest's ``kit-session`` service, the client ``bin/session-client`` and the tests),
like ``td_claims``. Crypto is HPKE (RFC 9180) in PSK mode from ``pyhpke`` (``cryptography``'s HPKE is base
mode only): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, checked against RFC 9180's test vector
A.2.2. Responses are sealed with ChaCha20-Poly1305 from ``cryptography`` under a key exported from the
request's HPKE context (as Oblivious HTTP, RFC 9458, does). Nothing here is hand-made crypto.

Session key. The guest's service draws an X25519 key when it starts; the private half lives only in that
process's memory, the public half is written to the TD's key folder (tmpfs), where ``tdx-get-quote`` reads it
into the claims (``session_key``) that the quote binds. A restart, a reboot or a revocation loses it.

Activation. The service serves nothing until the Keylime payload (released by the verifier only after PASS)
hands it ``session.json``: ``{kit_session, session_id, session_key, nonce, expires_at, lifetime_s, psk,
lease_key, lease_requests, lease_s}``.
``session_key`` must be the service's own (an activation meant for an earlier key is refused); ``nonce`` is
the quote's nonce; ``psk`` (32 random bytes, base64) is the client's credential: it exists only on the
controller and, through the encrypted payload, in the service's memory. The TD refuses a ``lifetime_s`` over
``MAX_SESSION_SECONDS`` and ends the session when either its own monotonic clock has run ``lifetime_s`` since
the activation or the wall clock passed ``expires_at``: a host that sets the TD's wall clock back stretches
nothing.

Leases. A session lives only while it holds a fresh lease: a statement that the client signs (Ed25519, its
``lease_key``, whose public half only the activation carries) each time its own verifier told it that the
agent's last attestation passed within its bound: ``{kit_lease, session, counter, verdict: "PASS",
attested_at, requests, seconds}``. The activation is lease 0. A lease is good for its ``requests`` and its
``seconds`` of the TD's monotonic clock (at most the activation's ``lease_requests`` and ``lease_s``),
whichever ends first; a newer one (a higher counter) replaces it. It rides on any call of the client (the
``Kit-Session-Lease`` header) and is taken only once the call opened (a request that decrypts, a read token
that opens), so the host can neither forge one nor replay an old one. When a lease runs out the TD wipes the
session and its key (``lease_expired``): a host that drops the
verifier's revocation keeps the session only until then.

Request (the host carries it; it sees only this)::

    {"kit_session": 2, "session": ID, "seq": N, "ct": base64(HPKE enc || ciphertext)}

HPKE PSK mode with psk_id = the session id, ``info`` = canonical({"kit_session", "session", "seq"}), so only
the holder of the PSK can make a request that decrypts, and a header moved to another ciphertext does not
decrypt. The plaintext is ``{"input": <the circuit input>, "commit_key": <64 hex>}``. The guest checks, in
this order and before decrypting anything: size, form, session id, expiry, sequence number (exactly the next
one: a replayed or reordered request is refused); only then does it decrypt. The sequence number advances
only when a request decrypts, so a request the host seals from the public values burns no number.

Reads (``GET /session``, ``GET /results/SEQ``) carry a read token in the ``Kit-Session-Read`` header:
base64(enc || ciphertext) of an HPKE PSK-mode seal of ``{"read": PATH}`` with ``info`` =
canonical({"kit_session", "session", "read": PATH}). Without a token that opens, the service answers 401 and
nothing else. The answer is ``{"sealed": base64(nonce || ChaCha20-Poly1305(canonical({status, doc})))}``
under the key the token's context exports (``RESPONSE_LABEL``): only the client that made the token can read
it, and a token the host replays fetches an answer the host cannot open. ``POST /close`` with a token for
``/close`` ends the session: the TD wipes its key and the session and draws a new key for the next
attestation.

Session receipt (signed with the receipt key bound in the same quote)::

    {"kit_receipt": 2, "proof_sha256", "public_sha256", "vkey_sha256", "input_commitment", "nonce",
     "image_id_sha256", "claims_sha512", "session_id", "seq", "request_sha256"}

``request_sha256`` is the SHA-256 of the request's bytes as sent, so an old proof answered to a new request,
or one request's proof under another's number, fails the receipt check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

try:  # the collection on the client, the file beside this one in the guest
    from ansible_collections.teeproof.kit.plugins.module_utils import td_claims
except ImportError:  # pragma: no cover - the guest's layout
    import td_claims  # type: ignore[no-redef]

SESSION_VERSION = 2
SESSION_RECEIPT_VERSION = 2
SESSION_RECEIPT_FIELDS = (*td_claims.RECEIPT_FIELDS, "session_id", "seq", "request_sha256")
DEFAULT_MAX_REQUEST_BYTES = 256 * 1024
MAX_SESSION_SECONDS = 7 * 24 * 3600
PSK_BYTES = 32
READ_HEADER = "Kit-Session-Read"
LEASE_HEADER = "Kit-Session-Lease"
LEASE_VERSION = 1
LEASE_FIELDS = ("kit_lease", "session", "counter", "verdict", "attested_at", "requests", "seconds", "sig")
LEASE_VERDICT = "PASS"
MAX_LEASE_REQUESTS = 100_000
MAX_LEASE_SECONDS = 24 * 3600
MAX_LEASE_CHARS = 1024
CLOSE_PATH = "/close"  # POST with a read token for this path: the client ends its session
RESPONSE_LABEL = b"kit-session response"
_NONCE_BYTES = 12
_SESSION_ID = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_B64_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")
ENVELOPE_FIELDS = ("kit_session", "session", "seq", "ct")
ACTIVATION_FIELDS = (
    "kit_session",
    "session_id",
    "session_key",
    "nonce",
    "expires_at",
    "lifetime_s",
    "psk",
    "lease_key",
    "lease_requests",
    "lease_s",
)
MAX_READ_TOKEN_CHARS = 4096

# Why a request or session was refused. The HTTP status each kind gets from the service.
REFUSALS = {
    "oversized": 413,
    "malformed": 400,
    "session": 403,  # another (or no) session id
    "not_active": 403,  # no activation yet: the client must attest and deliver the activation
    "expired": 403,
    "lease": 403,  # a lease that is not the client's or not this session's
    "lease_expired": 403,  # the session's lease ran out (by count or by the TD's clock): the TD wiped it
    "replay": 409,
    "reorder": 409,
    "decrypt": 400,  # wrong key or PSK, changed ciphertext or header
    "unauthenticated": 401,  # a read without a token that opens under this session's key and PSK
    "input": 422,  # decrypted, but not a request (bad JSON, bad commit key)
    "busy": 429,  # the queue is full; the number is not used, send the same request again later
}


class SessionRefused(Exception):
    """A request refused by kind (``REFUSALS``); the message never quotes the request's content."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.status = REFUSALS.get(kind, 400)


class SessionError(ValueError):
    """A malformed activation, session record or session receipt; ``field`` names the part."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.field = where


def hpke_suite() -> Any:
    from pyhpke import AEADId, CipherSuite, KDFId, KEMId

    return CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305)


def hpke_kem_key(key: Any) -> Any:
    from pyhpke import KEMKey

    return KEMKey.from_pyca_cryptography_key(key)


def _seal(
    session_key: str, info: bytes, plaintext: bytes, psk: bytes, session_id: str
) -> tuple[bytes, bytes]:
    """HPKE PSK mode to the session key: (enc || ciphertext, the response key this context exports)."""
    check_psk(psk)
    enc, ctx = hpke_suite().create_sender_context(
        hpke_kem_key(parse_session_key(session_key)), info, psk=psk, psk_id=session_id.encode()
    )
    return enc + ctx.seal(plaintext), ctx.export(RESPONSE_LABEL, 32)


def _open(private_key: Any, info: bytes, sealed: bytes, psk: bytes, session_id: str) -> tuple[bytes, bytes]:
    """The plaintext and the response key; raises ValueError when it does not open."""
    try:
        ctx = hpke_suite().create_recipient_context(
            sealed[:32], hpke_kem_key(private_key), info, psk=psk, psk_id=session_id.encode()
        )
        return ctx.open(sealed[32:]), ctx.export(RESPONSE_LABEL, 32)
    except Exception:  # OpenError, a bad point: wrong key or PSK, changed bytes, header moved
        raise ValueError("does not open") from None


def b64_or_empty(text: object, max_chars: int | None = None) -> bytes:
    """Strict base64 of a string, or b"" for anything else (not a string, too long, not base64)."""
    if not isinstance(text, str) or (max_chars is not None and len(text) > max_chars):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def check_psk(psk: object) -> bytes:
    if not isinstance(psk, bytes) or len(psk) != PSK_BYTES:
        raise SessionError("psk", f"must be {PSK_BYTES} bytes")
    return psk


def new_psk() -> bytes:
    return secrets.token_bytes(PSK_BYTES)


# ---------------------------------------------------------------------------------------------- keys


def new_session_key() -> tuple[Any, str]:
    """A fresh X25519 key and its public half as base64 (the ``session_key`` claim)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()
    return key, public_key_text(key.public_key())


def public_key_text(public: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def parse_session_key(text: object, where: str = "session_key") -> Any:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    if not isinstance(text, str) or not _B64_KEY.fullmatch(text):
        raise SessionError(where, "not a base64 X25519 public key (32 bytes)")
    return X25519PublicKey.from_public_bytes(base64.b64decode(text))


def new_session_id() -> str:
    return secrets.token_hex(16)


# ---------------------------------------------------------------------------------------------- requests


def _info(session_id: str, seq: int) -> bytes:
    return td_claims.canonical({"kit_session": SESSION_VERSION, "session": session_id, "seq": seq})


def canonical_input(data: bytes | Mapping[str, Any]) -> bytes:
    """The input's bytes that the commitment covers: its canonical JSON (both ends compute the same)."""
    try:
        value = json.loads(data) if isinstance(data, bytes) else dict(data)
    except ValueError:
        raise SessionError("input", "not JSON") from None
    if not isinstance(value, dict):
        raise SessionError("input", "not a JSON object")
    return td_claims.canonical(value)


def seal_request(
    session_key: str,
    session_id: str,
    seq: int,
    input_data: Mapping[str, Any] | bytes,
    commit_key: bytes,
    psk: bytes,
) -> bytes:
    """The request's bytes as sent: the input and its commit key sealed to the session key with the PSK."""
    if len(commit_key) < 32:
        raise SessionError("commit_key", "must be at least 32 bytes")
    value = json.loads(canonical_input(input_data))
    plaintext = td_claims.canonical({"input": value, "commit_key": commit_key.hex()})
    sealed, _unused = _seal(session_key, _info(session_id, seq), plaintext, psk, session_id)
    envelope = {
        "kit_session": SESSION_VERSION,
        "session": session_id,
        "seq": seq,
        "ct": base64.b64encode(sealed).decode(),
    }
    return td_claims.canonical(envelope)


@dataclass(frozen=True)
class Envelope:
    session: str
    seq: int
    sealed: bytes
    raw_sha256: str


def parse_envelope(raw: bytes, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> Envelope:
    """Size and form only: nothing is decrypted."""
    if len(raw) > max_bytes:
        raise SessionRefused("oversized", f"{len(raw)} bytes, the limit is {max_bytes}")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SessionRefused("malformed", "not JSON") from None
    if not isinstance(doc, dict) or sorted(doc) != sorted(ENVELOPE_FIELDS):
        raise SessionRefused("malformed", f"a JSON object with exactly {', '.join(ENVELOPE_FIELDS)} expected")
    if doc["kit_session"] != SESSION_VERSION:
        raise SessionRefused("malformed", f"kit_session must be {SESSION_VERSION}")
    if not isinstance(doc["session"], str) or not _SESSION_ID.fullmatch(doc["session"]):
        raise SessionRefused("malformed", "session is not a session id (32 hex digits)")
    seq = doc["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**53:
        raise SessionRefused("malformed", "seq is not a non-negative integer")
    sealed = b64_or_empty(doc["ct"])
    if len(sealed) < 32 + 16:
        raise SessionRefused("malformed", "ct is not base64 of an HPKE encapsulation and ciphertext")
    return Envelope(doc["session"], seq, sealed, hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True)
class Request:
    seq: int
    input_data: dict[str, Any]
    input_bytes: bytes
    commit_key: bytes
    request_sha256: str


# ---------------------------------------------------------------------------------------------- reads


def _read_info(session_id: str, path: str) -> bytes:
    return td_claims.canonical({"kit_session": SESSION_VERSION, "session": session_id, "read": path})


def seal_read(session_key: str, session_id: str, path: str, psk: bytes) -> tuple[str, bytes]:
    """A read token for ``path`` (the ``READ_HEADER`` value) and the key its answer is sealed with."""
    sealed, key = _seal(
        session_key, _read_info(session_id, path), td_claims.canonical({"read": path}), psk, session_id
    )
    return base64.b64encode(sealed).decode(), key


def seal_response(key: bytes, status: int, doc: Mapping[str, Any]) -> dict[str, str]:
    """An answer only the reader can open: ``{"sealed": base64(nonce || ChaCha20-Poly1305)}``."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    nonce = secrets.token_bytes(_NONCE_BYTES)
    body = td_claims.canonical({"status": status, "doc": dict(doc)})
    return {"sealed": base64.b64encode(nonce + ChaCha20Poly1305(key).encrypt(nonce, body, None)).decode()}


def open_response(key: bytes, doc: Any) -> tuple[int, dict[str, Any]]:
    """(status, document) of a sealed answer; raises SessionError when it is not one under ``key``."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    try:
        raw = base64.b64decode(doc["sealed"], validate=True)
        opened = json.loads(ChaCha20Poly1305(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None))
        status, inner = opened["status"], opened["doc"]
        if not isinstance(status, int) or isinstance(status, bool) or not isinstance(inner, dict):
            raise ValueError
    except Exception:  # not a dict, not base64, InvalidTag, not the expected JSON
        raise SessionError(
            "response", "is not an answer sealed to this read (changed, or not from the TD)"
        ) from None
    return status, inner


# ---------------------------------------------------------------------------------------------- leases


def new_lease_key() -> tuple[bytes, str]:
    """A fresh Ed25519 lease key: its private half (32 raw bytes, the client's), its public half (base64)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return raw, public_key_text(key.public_key())


@dataclass(frozen=True)
class Lease:
    counter: int
    attested_at: int
    requests: int
    seconds: int

    def body(self, session_id: str) -> dict[str, Any]:
        return {
            "kit_lease": LEASE_VERSION,
            "session": session_id,
            "counter": self.counter,
            "verdict": LEASE_VERDICT,
            "attested_at": self.attested_at,
            "requests": self.requests,
            "seconds": self.seconds,
        }


def sign_lease(
    lease_key: bytes,
    session_id: str,
    counter: int,
    attested_at: int,
    requests: int = MAX_LEASE_REQUESTS,
    seconds: int = MAX_LEASE_SECONDS,
) -> str:
    """The ``LEASE_HEADER`` value: the client's signed statement that its verifier said PASS, good for
    ``requests`` and ``seconds`` (the TD grants at most the activation's)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if len(lease_key) != 32:
        raise SessionError("lease_key", "must be 32 bytes (Ed25519)")
    body = Lease(
        counter,
        attested_at,
        _check_range(requests, MAX_LEASE_REQUESTS, "requests", "requests"),
        _check_range(seconds, MAX_LEASE_SECONDS, "seconds", "seconds"),
    ).body(session_id)
    signature = Ed25519PrivateKey.from_private_bytes(lease_key).sign(td_claims.canonical(body))
    doc = {**body, "sig": base64.b64encode(signature).decode()}
    return base64.b64encode(td_claims.canonical(doc)).decode()


def _int_field(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise ValueError
    return value


def parse_lease(text: object, lease_key: str, session_id: str) -> Lease:
    """A lease signed with ``lease_key`` for ``session_id``; raises SessionRefused("lease")."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        doc = json.loads(b64_or_empty(text, MAX_LEASE_CHARS) or b"null")
        if not isinstance(doc, dict) or sorted(doc) != sorted(LEASE_FIELDS):
            raise ValueError
        lease = Lease(*(_int_field(doc[k]) for k in ("counter", "attested_at", "requests", "seconds")))
        if not (1 <= lease.requests <= MAX_LEASE_REQUESTS and 1 <= lease.seconds <= MAX_LEASE_SECONDS):
            raise ValueError
        signature = b64_or_empty(doc["sig"])
    except (ValueError, UnicodeDecodeError):
        raise SessionRefused("lease", f"the {LEASE_HEADER} header is not a lease") from None
    if doc["kit_lease"] != LEASE_VERSION or doc["session"] != session_id or doc["verdict"] != LEASE_VERDICT:
        raise SessionRefused("lease", "the lease is not a PASS lease of this session")
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(lease_key)).verify(
            signature, td_claims.canonical(lease.body(session_id))
        )
    except (InvalidSignature, ValueError):
        raise SessionRefused("lease", "the lease is not signed with this session's lease key") from None
    return lease


# ---------------------------------------------------------------------------------------------- activation


@dataclass(frozen=True)
class Activation:
    session_id: str
    session_key: str
    nonce: str
    expires_at: int
    lifetime_s: int
    psk: bytes = field(repr=False)
    lease_key: str = ""  # the public half; the client keeps the private one with the PSK
    lease_requests: int = 1
    lease_s: int = 1

    def document(self) -> dict[str, Any]:
        """The activation as the payload carries it (secret: it holds the PSK)."""
        return {
            "kit_session": SESSION_VERSION,
            "session_id": self.session_id,
            "session_key": self.session_key,
            "nonce": self.nonce,
            "expires_at": self.expires_at,
            "lifetime_s": self.lifetime_s,
            "psk": base64.b64encode(self.psk).decode(),
            "lease_key": self.lease_key,
            "lease_requests": self.lease_requests,
            "lease_s": self.lease_s,
        }


def _check_lifetime(lifetime_s: object, where: str) -> int:
    return _check_range(lifetime_s, MAX_SESSION_SECONDS, where, "seconds")


def _check_range(value: object, top: int, where: str, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise SessionError(where, f"must be 1..{top} {unit}, not {value}")
    return value


def make_activation(
    session_key: str,
    nonce: bytes,
    lifetime_s: int,
    *,
    lease_key: str,
    lease_requests: int,
    lease_s: int,
    now: float | None = None,
) -> Activation:
    """A new session for the quoted session key: its id, its expiry, a fresh PSK (the client's credential),
    and lease 0 (``lease_requests`` requests, ``lease_s`` seconds) under the client's ``lease_key``."""
    _check_lifetime(lifetime_s, "lifetime")
    _check_range(lease_requests, MAX_LEASE_REQUESTS, "lease_requests", "requests")
    _check_range(lease_s, MAX_LEASE_SECONDS, "lease_s", "seconds")
    parse_session_key(session_key)
    parse_session_key(lease_key, "lease_key")
    td_claims.check_nonce(nonce)
    start = int(now if now is not None else time.time())
    return Activation(
        new_session_id(),
        session_key,
        nonce.hex(),
        start + lifetime_s,
        lifetime_s,
        new_psk(),
        lease_key,
        lease_requests,
        lease_s,
    )


def parse_activation(doc: Any) -> Activation:
    if isinstance(doc, (str, bytes)):
        try:
            doc = json.loads(doc)
        except ValueError:
            raise SessionError("activation", "not JSON") from None
    if not isinstance(doc, dict) or sorted(doc) != sorted(ACTIVATION_FIELDS):
        raise SessionError("activation", f"exactly {', '.join(ACTIVATION_FIELDS)} expected")
    if doc["kit_session"] != SESSION_VERSION:
        raise SessionError("activation.kit_session", f"must be {SESSION_VERSION}")
    if not isinstance(doc["session_id"], str) or not _SESSION_ID.fullmatch(doc["session_id"]):
        raise SessionError("activation.session_id", "not 32 hex digits")
    parse_session_key(doc["session_key"], "activation.session_key")
    try:
        td_claims.nonce_from_hex(doc["nonce"])
    except (td_claims.ClaimsError, ValueError, TypeError):
        raise SessionError("activation.nonce", "not a hex nonce of at least 16 bytes") from None
    expires = doc["expires_at"]
    if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
        raise SessionError("activation.expires_at", "not a positive integer (unix time)")
    lifetime = _check_lifetime(doc["lifetime_s"], "activation.lifetime_s")
    psk = b64_or_empty(doc["psk"])
    if len(psk) != PSK_BYTES:
        raise SessionError("activation.psk", f"not base64 of {PSK_BYTES} bytes")
    parse_session_key(doc["lease_key"], "activation.lease_key")  # 32 raw bytes as X25519's: an Ed25519 key
    lease_requests = _check_range(
        doc["lease_requests"], MAX_LEASE_REQUESTS, "activation.lease_requests", "requests"
    )
    lease_s = _check_range(doc["lease_s"], MAX_LEASE_SECONDS, "activation.lease_s", "seconds")
    return Activation(
        doc["session_id"],
        doc["session_key"],
        doc["nonce"],
        expires,
        lifetime,
        psk,
        doc["lease_key"],
        lease_requests,
        lease_s,
    )


# ------------------------------------------------------------------------------------------ the guest side


@dataclass
class SessionState:
    """The guest's one session: its key (memory only), its activation, the next sequence number."""

    private_key: Any
    session_key: str
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    activation: Activation | None = None
    next_seq: int = 0
    clock: Any = field(default=time.time)  # the wall clock (the host sets it): only ever shortens a session
    monotonic: Any = field(default=time.monotonic)  # the TD's own: the lifetime and the leases run on it
    activated_at: float = 0.0
    lease_counter: int = 0  # the lease held (0: the activation's)
    lease_used: int = 0  # requests taken under it
    lease_at: float = 0.0  # when it was taken (monotonic)
    lease_requests: int = 0  # what it is good for: its own, at most the activation's
    lease_s: float = 0.0

    @classmethod
    def fresh(cls, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> SessionState:
        key, text = new_session_key()
        return cls(private_key=key, session_key=text, max_request_bytes=max_request_bytes)

    def activate(self, doc: Any) -> Activation:
        activation = parse_activation(doc)
        if activation.session_key != self.session_key:
            raise SessionError(
                "activation.session_key", "is not this service's key (meant for an earlier one)"
            )
        if activation.expires_at <= self.clock():
            raise SessionError("activation.expires_at", "already passed")
        if self.activation is not None:
            raise SessionError(
                "activation.session_id",
                "this key already serves a session"
                + ("" if self.activation.session_id == activation.session_id else " (another one)"),
            )
        self.activation = activation
        self.activated_at = self.lease_at = self.monotonic()
        self.lease_counter = self.lease_used = 0
        self.lease_requests, self.lease_s = activation.lease_requests, activation.lease_s
        return activation

    def lease_ran_out(self) -> str:
        """``count`` or ``time`` when the lease held is used up, else ``""``."""
        act = self.activation
        if act is None:
            return ""
        if self.monotonic() - self.lease_at >= self.lease_s:
            return "time"
        if self.lease_used >= self.lease_requests:
            return "count"
        return ""

    def check_lease(self, header: str | None) -> Lease | None:
        """A newer lease in ``header``; None without one, or for one not newer than the lease held (an old
        lease, replayed or late, extends nothing). Raises SessionRefused("lease") for a lease that is not the
        client's for this session."""
        act = self.activation
        if not header or act is None:
            return None
        lease = parse_lease(header, act.lease_key, act.session_id)
        return lease if lease.counter > self.lease_counter else None

    def _lease_or_refuse(self, header: str | None, request: bool = True) -> Lease | None:
        """A newer lease's counter, or None while the one held lasts (for a read: while its time lasts; the
        count is of requests)."""
        counter = self.check_lease(header)
        why = self.lease_ran_out()
        if counter is None and why and (request or why == "time"):
            raise SessionRefused(
                "lease_expired", f"the session's lease ran out (by {why}) and no newer one came; attest again"
            )
        return counter

    def take_lease(self, lease: Lease | None) -> None:
        act = self.activation
        if lease is not None and act is not None:
            self.lease_counter, self.lease_used, self.lease_at = lease.counter, 0, self.monotonic()
            self.lease_requests = min(lease.requests, act.lease_requests)
            self.lease_s = min(lease.seconds, act.lease_s)

    def expired(self) -> bool:
        """Past its lifetime on the TD's monotonic clock, or past its expiry on the wall clock."""
        act = self.activation
        return act is not None and (
            self.monotonic() - self.activated_at >= act.lifetime_s or self.clock() >= act.expires_at
        )

    def wipe(self) -> None:
        """Forget the key and the session (the revocation action stops the process as well)."""
        self.private_key = None
        self.activation = None

    def check_header(self, raw: bytes, lease: str | None = None) -> tuple[Envelope, Lease | None]:
        """What is checked before decryption, and the newer lease's counter; raises SessionRefused."""
        envelope = parse_envelope(raw, self.max_request_bytes)
        if self.activation is None or self.private_key is None:
            raise SessionRefused(
                "not_active", "this service has no attested session; attest and activate one"
            )
        if envelope.session != self.activation.session_id:
            raise SessionRefused("session", "the request names another session")
        if self.expired():
            raise SessionRefused("expired", "the session has expired; attest again")
        if envelope.seq < self.next_seq:
            raise SessionRefused(
                "replay", f"number {envelope.seq} was already used (next is {self.next_seq})"
            )
        if envelope.seq > self.next_seq:
            raise SessionRefused(
                "reorder", f"number {envelope.seq} is ahead of the next one ({self.next_seq})"
            )
        return envelope, self._lease_or_refuse(lease)

    def open(
        self, raw: bytes, lease: str | None = None, checked: tuple[Envelope, Lease | None] | None = None
    ) -> Request:
        """Check, then decrypt; advance the sequence number (and take the lease) only for a request that
        decrypts. ``checked``: what check_header just returned for the same raw and lease, under the same
        lock (the lease's signature is then not verified twice)."""
        envelope, new_lease = checked or self.check_header(raw, lease)
        activation = self.activation
        if activation is None:  # check_header refused it already; this tells the type checker
            raise SessionRefused("not_active", "this service has no attested session")
        try:
            plaintext, _unused = _open(
                self.private_key,
                _info(envelope.session, envelope.seq),
                envelope.sealed,
                activation.psk,
                envelope.session,
            )
        except ValueError:
            raise SessionRefused(
                "decrypt", "the request does not decrypt under this session's key and PSK"
            ) from None
        self.next_seq = envelope.seq + 1
        self.take_lease(new_lease)
        self.lease_used += 1
        try:
            doc = json.loads(plaintext)
            commit_key = bytes.fromhex(doc["commit_key"])
            value = doc["input"]
            if not isinstance(value, dict) or len(commit_key) < 32 or sorted(doc) != ["commit_key", "input"]:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise SessionRefused("input", "the decrypted request is not {input, commit_key}") from None
        return Request(envelope.seq, value, td_claims.canonical(value), commit_key, envelope.raw_sha256)

    def open_read(self, path: str, token: str | None, lease: str | None = None) -> bytes:
        """Check a read token for ``path`` (and take a newer lease); the key to seal the answer with. Raises
        SessionRefused."""
        if self.activation is None or self.private_key is None:
            raise SessionRefused(
                "not_active", "this service has no attested session; attest and activate one"
            )
        sealed = b64_or_empty(token, MAX_READ_TOKEN_CHARS)
        if len(sealed) < 32 + 16:
            raise SessionRefused(
                "unauthenticated", f"a read needs the {READ_HEADER} header of this session's client"
            )
        session_id = self.activation.session_id
        try:
            plaintext, key = _open(
                self.private_key, _read_info(session_id, path), sealed, self.activation.psk, session_id
            )
        except ValueError:
            raise SessionRefused(
                "unauthenticated", "the read token does not open under this session's key and PSK"
            ) from None
        if plaintext != td_claims.canonical({"read": path}):
            raise SessionRefused("unauthenticated", "the read token names another path")
        if self.expired():
            raise SessionRefused("expired", "the session has expired; attest again")
        self.take_lease(self._lease_or_refuse(lease, request=False))
        return bytes(key)


# ---------------------------------------------------------------------------------------------- receipts


def receipt_body(
    *,
    request: Request,
    proof: bytes,
    public: bytes,
    vkey: bytes,
    activation: Activation,
    claims: Mapping[str, Any],
) -> dict[str, Any]:
    body = td_claims.receipt_body(
        proof=proof,
        public=public,
        vkey=vkey,
        commitment=td_claims.input_commitment(request.commit_key, request.input_bytes),
        nonce=bytes.fromhex(activation.nonce),
        image_id_sha256=str(claims["image_id_sha256"]),
        claims=claims,
    )
    body.update(
        kit_receipt=SESSION_RECEIPT_VERSION,
        session_id=activation.session_id,
        seq=request.seq,
        request_sha256=request.request_sha256,
    )
    return body


def parse_session_receipt(doc: Any) -> tuple[dict[str, Any], bytes]:
    if not isinstance(doc, dict):
        raise SessionError("receipt", "not a JSON object")
    extra = {k: doc.get(k) for k in ("session_id", "seq", "request_sha256")}
    if doc.get("kit_receipt") != SESSION_RECEIPT_VERSION:
        raise SessionError("receipt.kit_receipt", f"must be {SESSION_RECEIPT_VERSION} (a session receipt)")
    base = {k: v for k, v in doc.items() if k not in extra}
    try:
        body, signature = td_claims.parse_receipt({**base, "kit_receipt": td_claims.RECEIPT_VERSION})
    except td_claims.ClaimsError as exc:
        raise SessionError(exc.field, str(exc)) from None
    if not isinstance(extra["session_id"], str) or not _SESSION_ID.fullmatch(extra["session_id"]):
        raise SessionError("receipt.session_id", "not 32 hex digits")
    if isinstance(extra["seq"], bool) or not isinstance(extra["seq"], int) or extra["seq"] < 0:
        raise SessionError("receipt.seq", "not a non-negative integer")
    if not isinstance(extra["request_sha256"], str) or not _HEX64.fullmatch(extra["request_sha256"]):
        raise SessionError("receipt.request_sha256", "not 64 hex digits")
    return {**body, **extra, "kit_receipt": SESSION_RECEIPT_VERSION}, signature


def check_session_receipt(doc: Any, *, receipt_key: str, expected: Mapping[str, Any]) -> dict[str, Any]:
    """Signature by the quoted receipt key, then every field the client can compute. Raises SessionError."""
    body, signature = parse_session_receipt(doc)
    try:
        td_claims.verify_receipt_signature(body, signature, receipt_key)
    except td_claims.ClaimsError as exc:
        raise SessionError(exc.field, str(exc)) from None
    # the session's own fields first: an old proof answered to a new request is named for what it is
    for name in ("session_id", "seq", "request_sha256", *td_claims.RECEIPT_FIELDS):
        if name in expected and body.get(name) != expected[name]:
            raise SessionError(
                f"receipt.{name}", f"is {str(body.get(name))[:20]}..., expected {str(expected[name])[:20]}..."
            )
    return body
