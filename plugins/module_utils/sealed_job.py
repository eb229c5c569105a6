"""A job's secrets sealed to the TD's job key: only the TD its quote named can open them, and only once.

One file for both ends, like ``prover_session``: the controller seals (``teeproof.kit.job_seal``), the TD's
prover opens (``zk-prove open-job``, roles/zk_prover installs this file beside it).

Job key. A quote for a job (``tdx-get-quote --job-key``) draws a fresh X25519 key in the TD; its public half
is the ``job_key`` claim that the quote binds (td_claims), its private half a root-only file on the TD's
tmpfs. When the payload runs, ``autorun.sh`` moves that file into the payload's folder and the prover's unit
opens the job with it and deletes it, before anything else: a second payload, or the same one replayed, finds
no key.

Sealed job. HPKE (RFC 9180) in base mode, from ``pyhpke``, with ``prover_session``'s suite (DHKEM(X25519,
HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305), ``info`` = canonical({"kit_job": 1, "job_key": <the claim>}).
The plaintext is canonical({"kit_job": 1, "nonce", "commit_key", "input": base64(the input file's bytes)}).
The sealed bytes are enc || ciphertext. So the Keylime payload, and with it the agent's memory (the 6.5.3
agent keeps what it decrypted until it restarts) and the verifier's host that assembles it, hold only
ciphertext; its key is gone once the job ran.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

try:  # the collection on the client, the files beside this one in the guest
    from ansible_collections.teeproof.kit.plugins.module_utils import prover_session as ps
    from ansible_collections.teeproof.kit.plugins.module_utils import td_claims
except ImportError:  # pragma: no cover - the guest's layout
    import prover_session as ps  # type: ignore[no-redef]
    import td_claims  # type: ignore[no-redef]

JOB_VERSION = 1
JOB_FIELDS = ("kit_job", "nonce", "commit_key", "input")
# The largest input the kit seals (a zkEmail input is some tens of KiB).
MAX_INPUT_BYTES = 8 * 1024 * 1024
MAX_SEALED_BYTES = 32 + 4 * MAX_INPUT_BYTES // 3 + 4096
_NONCE = re.compile(r"(?:[0-9a-f]{2}){16,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ENC_BYTES = 32


class SealedJobError(ValueError):
    """A job that cannot be sealed or opened; ``field`` names the part. Never quotes the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Job:
    nonce: str
    commit_key: str
    input: bytes

    def job_document(self) -> dict[str, str]:
        """What the receipt signer reads (``job.json``): the attestation's nonce and the commit key."""
        return {"nonce": self.nonce, "commit_key": self.commit_key}


def _info(job_key: str) -> bytes:
    return td_claims.canonical({"kit_job": JOB_VERSION, "job_key": job_key})


def check_job(nonce: object, commit_key: object, input_bytes: object) -> Job:
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise SealedJobError("nonce", "must be 32-128 lower-case hex digits")
    if not isinstance(commit_key, str) or not _HEX64.fullmatch(commit_key):
        raise SealedJobError("commit_key", "must be 64 lower-case hex digits")
    if not isinstance(input_bytes, bytes) or not 0 < len(input_bytes) <= MAX_INPUT_BYTES:
        raise SealedJobError("input", f"must be 1..{MAX_INPUT_BYTES} bytes")
    return Job(nonce, commit_key, input_bytes)


def seal(job_key: str, job: Job) -> bytes:
    """enc || ciphertext of the job, for the TD whose quote claimed ``job_key``."""
    public = ps.parse_session_key(job_key, "job_key")
    check_job(job.nonce, job.commit_key, job.input)
    plaintext = td_claims.canonical(
        {
            "kit_job": JOB_VERSION,
            "nonce": job.nonce,
            "commit_key": job.commit_key,
            "input": base64.b64encode(job.input).decode(),
        }
    )
    enc, ctx = ps.hpke_suite().create_sender_context(ps.hpke_kem_key(public), _info(job_key))
    return bytes(enc) + bytes(ctx.seal(plaintext))


def open_sealed(private_raw: bytes, sealed: bytes) -> Job:
    """The job, when ``sealed`` was sealed to this private key; SealedJobError otherwise."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    if not isinstance(private_raw, bytes) or len(private_raw) != 32:
        raise SealedJobError("job key", "not a raw X25519 private key (32 bytes)")
    if not isinstance(sealed, bytes) or not _ENC_BYTES < len(sealed) <= MAX_SEALED_BYTES:
        raise SealedJobError("sealed job", f"must be {_ENC_BYTES + 1}..{MAX_SEALED_BYTES} bytes")
    key = X25519PrivateKey.from_private_bytes(private_raw)
    info = _info(ps.public_key_text(key.public_key()))
    try:
        ctx = ps.hpke_suite().create_recipient_context(sealed[:_ENC_BYTES], ps.hpke_kem_key(key), info)
        plaintext = ctx.open(sealed[_ENC_BYTES:])
    except Exception:  # OpenError, a bad point: sealed to another key, or changed bytes
        raise SealedJobError("sealed job", "does not open with this TD's job key") from None
    return _parse(plaintext)


def _parse(plaintext: bytes) -> Job:
    try:
        doc: Any = json.loads(plaintext)
    except ValueError:
        raise SealedJobError("sealed job", "opened, but is not JSON") from None
    if not isinstance(doc, dict) or sorted(doc) != sorted(JOB_FIELDS) or doc["kit_job"] != JOB_VERSION:
        raise SealedJobError("sealed job", f"opened, but is not a job of version {JOB_VERSION}")
    text = doc["input"]
    try:
        data = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
    except (binascii.Error, ValueError):
        data = b""
    return check_job(doc["nonce"], doc["commit_key"], data)
