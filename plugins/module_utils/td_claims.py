"""What a TD guest claims about itself, bound into its TD quote, and the receipt it signs for a proof.

Standard library only: the same file runs in the guest (``tdx-get-quote``, ``kit-receipt``) and on the client
(``td_claims_check``, ``bin/proof-receipt``). Signatures (Ed25519) need ``cryptography``, imported only
by the functions that sign or verify.

Binding. The guest computes, from its own live state, the claims document::

    {"kit_claims": 2,
     "agent": {"uuid", "ek_tpm", "aik_tpm", "mtls_cert"},   # what its Keylime agent registered
     "agent_ca_sha256": "<64 hex>",                         # SHA-256 (DER) of the CA its agent trusts
     "ssh_host_key": "ssh-ed25519 AAAA...",                 # made at boot on tmpfs
     "receipt_key": "ssh-ed25519 AAAA...",                  # made at boot on tmpfs, signs receipts
     "image_id_sha256": "<64 hex>"}                         # SHA-256 of /etc/tee-proof-kit/image.json

and asks for a quote with REPORTDATA = SHA-512(nonce || SHA-512(canonical(claims))). Nobody passes it a
binding: a host that relays one SSH session to the genuine TD still only gets the genuine TD's own keys
quoted. The Python agent's payload key (NK, for U) is the key of its mTLS certificate, so ``mtls_cert``
covers it. The verifier's CA reaches the agent over SSH before the quote, so the host could put its own there;
``agent_ca_sha256`` lets the client refuse an agent that trusts any CA but its verifier's.

Receipt. After proving, the guest signs with the receipt key::

    {"kit_receipt": 1, "proof_sha256", "public_sha256", "vkey_sha256", "input_commitment",
     "nonce", "image_id_sha256", "claims_sha512"}

``input_commitment`` = HMAC-SHA256(commit key, input bytes); the commit key is drawn by the client and sent
in the payload, so the commitment reveals nothing of the input to anyone else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CLAIMS_VERSION = 2
RECEIPT_VERSION = 1
AGENT_FIELDS = ("uuid", "ek_tpm", "aik_tpm", "mtls_cert")
CLAIM_FIELDS = ("kit_claims", "agent", "agent_ca_sha256", "ssh_host_key", "receipt_key", "image_id_sha256")
# X25519 public keys present only while they exist: the TD's session service's (while it runs, session mode)
# and the job key a quote for a job makes (tdx-get-quote --job-key), which the client seals the job's input to
# (prover_session.seal_job); the TD keeps its private half only until the job's payload opens it.
OPTIONAL_CLAIM_FIELDS = ("session_key", "job_key")
RECEIPT_FIELDS = (
    "kit_receipt",
    "proof_sha256",
    "public_sha256",
    "vkey_sha256",
    "input_commitment",
    "nonce",
    "image_id_sha256",
    "claims_sha512",
)
# What the client compares with the registrar's record of the agent (the record's own field names).
REGISTRAR_FIELDS = ("aik_tpm", "ek_tpm", "mtls_cert")
MIN_NONCE_BYTES = 16
MAX_CLAIMS_BYTES = 64 * 1024
_UUID = re.compile(r"[A-Za-z0-9._-]{1,255}")
_ED25519 = re.compile(r"ssh-ed25519 [A-Za-z0-9+/]{68}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_X25519 = re.compile(r"[A-Za-z0-9+/]{43}=")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?")


class ClaimsError(ValueError):
    """A claims document or a receipt that is malformed, or that differs from what was expected.

    ``field`` names the claim (``agent.aik_tpm``, ``receipt.proof_sha256``, ...) so that callers and tests can
    tell the reasons apart.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def canonical(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, ASCII only. The bytes that are hashed and signed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def claims_digest(claims: Mapping[str, Any]) -> bytes:
    """SHA-512 of the canonical claims: the binding that follows the nonce in REPORTDATA."""
    return hashlib.sha512(canonical(dict(claims))).digest()


def report_data(nonce: bytes, claims: Mapping[str, Any]) -> bytes:
    """REPORTDATA = SHA-512(nonce || SHA-512(canonical(claims)))."""
    check_nonce(nonce)
    return hashlib.sha512(nonce + claims_digest(claims)).digest()


def check_nonce(nonce: bytes) -> None:
    if len(nonce) < MIN_NONCE_BYTES:
        raise ClaimsError("nonce", f"must be at least {MIN_NONCE_BYTES} bytes, got {len(nonce)}")


def nonce_from_hex(text: str) -> bytes:
    try:
        nonce = bytes.fromhex(text)
    except (ValueError, TypeError):
        raise ClaimsError("nonce", "is not hex") from None
    check_nonce(nonce)
    return nonce


def _b64(field: str, value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise ClaimsError(field, "missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ClaimsError(field, "is not base64") from None


def _text(field: str, value: Any, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = "missing" if value is None else f"not {what}"
        raise ClaimsError(field, shown)
    return value


def normalise_pem(text: str) -> str:
    """One PEM certificate with LF line ends and one trailing newline (registrars re-wrap whitespace)."""
    lines = [line.strip() for line in text.replace("\r\n", "\n").strip().split("\n")]
    return "\n".join(line for line in lines if line) + "\n"


def ssh_key_text(line: str) -> str:
    """'ssh-ed25519 AAAA... comment' -> 'ssh-ed25519 AAAA...' (the comment is not part of the key)."""
    parts = line.split()
    return " ".join(parts[:2])


@dataclass(frozen=True)
class Claims:
    uuid: str
    ek_tpm: str
    aik_tpm: str
    mtls_cert: str
    agent_ca_sha256: str
    ssh_host_key: str
    receipt_key: str
    image_id_sha256: str
    session_key: str | None = None
    job_key: str | None = None

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kit_claims": CLAIMS_VERSION,
            "agent": {
                "uuid": self.uuid,
                "ek_tpm": self.ek_tpm,
                "aik_tpm": self.aik_tpm,
                "mtls_cert": self.mtls_cert,
            },
            "agent_ca_sha256": self.agent_ca_sha256,
            "ssh_host_key": self.ssh_host_key,
            "receipt_key": self.receipt_key,
            "image_id_sha256": self.image_id_sha256,
        }
        if self.session_key is not None:
            doc["session_key"] = self.session_key
        if self.job_key is not None:
            doc["job_key"] = self.job_key
        return doc


def new_x25519_key() -> tuple[bytes, str]:
    """A fresh X25519 key: its raw private bytes and its public half as a claim (base64 of 32 bytes)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()
    return key.private_bytes_raw(), base64.b64encode(key.public_key().public_bytes_raw()).decode()


def parse_claims(doc: Any) -> Claims:
    """Validate a claims document (a mapping or its JSON text). Raises ClaimsError naming the bad claim."""
    if isinstance(doc, (str, bytes)):
        if len(doc) > MAX_CLAIMS_BYTES:
            raise ClaimsError("claims", f"longer than {MAX_CLAIMS_BYTES} bytes")
        try:
            doc = json.loads(doc)
        except ValueError as exc:
            raise ClaimsError("claims", f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ClaimsError("claims", "not a JSON object")
    unknown = sorted(set(doc) - set(CLAIM_FIELDS) - set(OPTIONAL_CLAIM_FIELDS))
    if unknown:
        raise ClaimsError("claims", f"unknown claim(s) {', '.join(unknown)}")
    for name in OPTIONAL_CLAIM_FIELDS:
        value = doc.get(name)
        if name in doc and not (isinstance(value, str) and _X25519.fullmatch(value)):
            raise ClaimsError(name, "not a base64 X25519 public key (32 bytes)")
    if doc.get("kit_claims") != CLAIMS_VERSION:
        raise ClaimsError("kit_claims", f"version must be {CLAIMS_VERSION}, not {doc.get('kit_claims')!r}")
    agent = doc.get("agent")
    if not isinstance(agent, dict):
        raise ClaimsError("agent", "missing or not an object")
    unknown = sorted(set(agent) - set(AGENT_FIELDS))
    if unknown:
        raise ClaimsError("agent", f"unknown field(s) {', '.join(unknown)}")
    uuid = _text("agent.uuid", agent.get("uuid"), _UUID, "an agent id")
    _b64("agent.ek_tpm", agent.get("ek_tpm"))
    _b64("agent.aik_tpm", agent.get("aik_tpm"))
    cert = agent.get("mtls_cert")
    if not isinstance(cert, str) or not _PEM.fullmatch(normalise_pem(cert)):
        raise ClaimsError("agent.mtls_cert", "missing or not one PEM certificate")
    return Claims(
        uuid=uuid,
        ek_tpm=agent["ek_tpm"],
        aik_tpm=agent["aik_tpm"],
        mtls_cert=cert,
        agent_ca_sha256=_text("agent_ca_sha256", doc.get("agent_ca_sha256"), _HEX64, "64 hex digits"),
        ssh_host_key=_text("ssh_host_key", doc.get("ssh_host_key"), _ED25519, "an ssh-ed25519 public key"),
        receipt_key=_text("receipt_key", doc.get("receipt_key"), _ED25519, "an ssh-ed25519 public key"),
        image_id_sha256=_text("image_id_sha256", doc.get("image_id_sha256"), _HEX64, "64 hex digits"),
        session_key=doc.get("session_key"),
        job_key=doc.get("job_key"),
    )


def compare_registrar(claims: Claims, record: Mapping[str, Any]) -> None:
    """The registrar's record of ``claims.uuid`` must hold the claimed AK, EK and mTLS certificate.

    A relay (the quote from one TD, the agent that registered under this id another machine) differs here.
    """
    for name in REGISTRAR_FIELDS:
        theirs = record.get(name)
        if not isinstance(theirs, str) or not theirs:
            raise ClaimsError(f"agent.{name}", "the registrar's record of this agent has none")
        ours = getattr(claims, name)
        if name == "mtls_cert":
            same = normalise_pem(theirs) == normalise_pem(ours)
        else:
            same = _b64(f"registrar.{name}", theirs) == _b64(f"agent.{name}", ours)
        if not same:
            raise ClaimsError(
                f"agent.{name}",
                f"differs from the registrar's record of agent {claims.uuid}: the agent that registered is "
                "not the one in this TD (relay?)",
            )


def _pem_der(pem: str, field: str, what: str) -> bytes:
    """The DER bytes of one PEM certificate (any line wrapping); ClaimsError(field) when it is not base64."""
    try:
        return base64.b64decode("".join(normalise_pem(pem).split("\n")[1:-2]), validate=True)
    except (binascii.Error, ValueError):
        raise ClaimsError(field, f"{what} is not base64 PEM") from None


def certificate_sha256(pem: str) -> str:
    """SHA-256 (hex) of the DER of a PEM certificate: the same for any line wrapping of it."""
    if not _PEM.fullmatch(normalise_pem(pem)):
        raise ClaimsError("agent_ca_sha256", "the CA is not one PEM certificate")
    return sha256_hex(_pem_der(pem, "agent_ca_sha256", "the CA"))


def compare_agent_ca(claims: Claims, verifier_ca_pem: str) -> None:
    """The agent must trust exactly the verifier's CA (the host installs it, over SSH, before the quote)."""
    ours = certificate_sha256(verifier_ca_pem)
    if not hmac.compare_digest(claims.agent_ca_sha256, ours):
        raise ClaimsError(
            "agent_ca_sha256",
            f"the agent trusts another CA (sha256 {claims.agent_ca_sha256[:16]}...) than this verifier's "
            f"({ours[:16]}...): the CA it was given before the quote was replaced",
        )


def same_ek(claimed: str, registered: Any) -> bool:
    """Whether a registrar's record holds the EK a verified claim named (compared as bytes)."""
    try:
        return _b64("registrar.ek_tpm", registered) == _b64("agent.ek_tpm", claimed)
    except ClaimsError:
        return False


def compare_peer_certificate(claims: Claims, peer_der: bytes) -> None:
    """The agent that answers on the agent port must present the claimed mTLS certificate."""
    claimed = _pem_der(claims.mtls_cert, "agent.mtls_cert", "it")
    if not hmac.compare_digest(claimed, peer_der):
        raise ClaimsError(
            "agent.mtls_cert",
            "the agent that answers on the agent port presents another certificate "
            f"(sha256 {sha256_hex(peer_der)[:16]}..., claimed {sha256_hex(claimed)[:16]}...): "
            "its traffic is routed to another machine",
        )


def known_hosts_line(host: str, port: int, key: str) -> str:
    """An OpenSSH known_hosts line pinning ``key`` for host:port."""
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {ssh_key_text(key)}\n"


def input_commitment(commit_key: bytes, data: bytes) -> str:
    if len(commit_key) < 32:
        raise ClaimsError("commit_key", "must be at least 32 bytes")
    return hmac.new(commit_key, data, hashlib.sha256).hexdigest()


def receipt_body(
    *,
    proof: bytes,
    public: bytes,
    vkey: bytes,
    commitment: str,
    nonce: bytes,
    image_id_sha256: str,
    claims: Mapping[str, Any],
) -> dict[str, Any]:
    check_nonce(nonce)
    return {
        "kit_receipt": RECEIPT_VERSION,
        "proof_sha256": sha256_hex(proof),
        "public_sha256": sha256_hex(public),
        "vkey_sha256": sha256_hex(vkey),
        "input_commitment": commitment,
        "nonce": nonce.hex(),
        "image_id_sha256": image_id_sha256,
        "claims_sha512": claims_digest(claims).hex(),
    }


def parse_receipt(doc: Any) -> tuple[dict[str, Any], bytes]:
    """Split a signed receipt into its body and signature, checking each field's form."""
    if not isinstance(doc, dict):
        raise ClaimsError("receipt", "not a JSON object")
    body = {k: v for k, v in doc.items() if k != "signature"}
    missing = [f for f in RECEIPT_FIELDS if f not in body]
    if missing:
        raise ClaimsError(f"receipt.{missing[0]}", "missing")
    unknown = sorted(set(body) - set(RECEIPT_FIELDS))
    if unknown:
        raise ClaimsError("receipt", f"unknown field(s) {', '.join(unknown)}")
    if body["kit_receipt"] != RECEIPT_VERSION:
        raise ClaimsError("receipt.kit_receipt", f"version must be {RECEIPT_VERSION}")
    for name in ("proof_sha256", "public_sha256", "vkey_sha256", "input_commitment", "image_id_sha256"):
        _text(f"receipt.{name}", body[name], _HEX64, "64 hex digits")
    _text("receipt.claims_sha512", body["claims_sha512"], _HEX128, "128 hex digits")
    if not isinstance(body["nonce"], str):
        raise ClaimsError("receipt.nonce", "not a string")
    try:
        check_nonce(bytes.fromhex(body["nonce"]))
    except ValueError:
        raise ClaimsError("receipt.nonce", "not hex") from None
    signature = _b64("receipt.signature", doc.get("signature"))
    if len(signature) != 64:
        raise ClaimsError("receipt.signature", "not an Ed25519 signature (64 bytes)")
    return body, signature


def compare_receipt(body: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Every field of the receipt must equal what the client computed from what it holds."""
    for name in RECEIPT_FIELDS:
        if name in expected and body.get(name) != expected[name]:
            raise ClaimsError(
                f"receipt.{name}",
                f"is {str(body.get(name))[:20]}..., expected {str(expected[name])[:20]}...",
            )


def sign_receipt(body: Mapping[str, Any], private_key_openssh: bytes) -> dict[str, Any]:
    """Sign with the TD's receipt key (an OpenSSH Ed25519 private key)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key

    key = load_ssh_private_key(private_key_openssh, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ClaimsError("receipt_key", "is not an Ed25519 key")
    signature = key.sign(canonical(dict(body)))
    return {**body, "signature": base64.b64encode(signature).decode()}


def verify_receipt_signature(body: Mapping[str, Any], signature: bytes, receipt_key: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    key = load_ssh_public_key(ssh_key_text(receipt_key).encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ClaimsError("receipt_key", "is not an Ed25519 key")
    try:
        key.verify(signature, canonical(dict(body)))
    except InvalidSignature:
        raise ClaimsError(
            "receipt.signature", "does not verify with the receipt key bound in the quote"
        ) from None
