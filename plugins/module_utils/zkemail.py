# Copyright: (c) 2026, tee-proof-kit contributors
# MIT License (see LICENSE)
"""zkEmail inputs: DKIM-signed test emails, and the circuit input for the proof-of-twitter-style circuit.

* ``TestKey`` / ``make_email`` make a DKIM-signed email (rsa-sha256, relaxed/relaxed) with a fresh 2048-bit
  test key, signed by dkimpy. ``tamper`` makes the bad variants the tests send.
* ``circuit_input`` turns an email into the circuit's input with @zk-email/helpers (tools/zk/zkemail-input.js,
  the email on standard input, never on a command line), after the checks that give a clear error instead of
  a failed witness: the DKIM signature must verify with the given key, the body must match its hash, the
  handle must fit the circuit, and the signed header and the body must fit its sizes.

The circuit is circuits/zkemail/lib/twitter_verifier.circom; its sizes are ``Sizes``.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The body text the circuit's handle regex looks for (circuits/zkemail/lib/twitter_handle_regex.circom).
HANDLE_PREFIX = "email was meant for @"
# PackRegexReveal's maximum in the circuit; a longer run of handle bytes makes its constraints fail.
MAX_HANDLE_LENGTH = 21
HANDLE_RE = re.compile(r"[A-Za-z0-9_]+")
BODY_HASH_MISMATCH = "the body does not match the body hash (bh=) that the signature covers"
# What makes a test email small enough for SMALL: one signed header and short names pad the signed header to
# 192 bytes (the circuit needs it below 256), and the handle sentence first keeps the hashed body to 64.
SMALL_EMAIL: dict[str, Any] = {
    "preamble": "",
    "from_addr": "me@zk.test",
    "domain": "zk.test",
    "selector": "k",
    "signed_headers": ("from",),
}


class EmailInputError(Exception):
    """An email the circuit cannot prove; ``kind`` names the check that refused it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Sizes:
    """The circuit's parameters: header and body bytes (multiples of 64), and whether From is exposed."""

    max_header: int
    max_body: int
    expose_from: bool = True

    def __post_init__(self) -> None:
        for name, value in (("max_header", self.max_header), ("max_body", self.max_body)):
            if value <= 0 or value % 64:
                raise ValueError(f"{name} must be a positive multiple of 64, not {value}")


FULL = Sizes(1024, 1536)
SMALL = Sizes(256, 128)


@dataclass(frozen=True)
class TestKey:
    """A DKIM signing key (PKCS#1 PEM) and its DNS TXT record. For tests and benchmarks only."""

    private_pem: bytes
    txt: str

    @classmethod
    def generate(cls) -> TestKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode())


def make_email(
    key: TestKey,
    handle: str = "kit_user",
    from_addr: str = "info@example.test",
    preamble: str = "Someone asked to reset the password of your account.",
    filler_lines: int = 0,
    subject: str = "Password reset request",
    postscript: str = "",
    signed_headers: tuple[str, ...] = ("from", "subject"),
    domain: str = "example.test",
    selector: str = "kit",
) -> bytes:
    """A DKIM-signed email whose body says ``email was meant for @HANDLE`` (nothing is checked here).

    Only ``signed_headers`` are signed. ``SMALL_EMAIL`` holds the arguments for an email that fits SMALL.
    """
    import dkim

    lines = [preamble, *(f"filler line {i:04d} of a longer body" for i in range(filler_lines))]
    body = "\r\n".join(
        [*lines, "", f"This {HANDLE_PREFIX}{handle}", *([postscript] if postscript else []), ""]
    )
    message = (f"From: {from_addr}\r\nTo: client@example.test\r\nSubject: {subject}\r\n\r\n" + body).encode()
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key.private_pem,
        include_headers=[h.encode() for h in signed_headers],
        canonicalize=(b"relaxed", b"relaxed"),
    )
    return bytes(signature) + message


def tamper(email: bytes, how: str) -> bytes:
    """A bad variant of a signed email: ``signature`` (one byte of b= changed) or ``body`` (after signing)."""
    if how == "signature":
        match = re.search(rb"\bb=([A-Za-z0-9+/]{8})", email)
        if not match:
            raise ValueError("the email has no DKIM b= tag")
        start = match.start(1) + 4
        swapped = b"B" if email[start : start + 1] != b"B" else b"C"
        return email[:start] + swapped + email[start + 1 :]
    if how == "body":
        head, sep, body = email.partition(b"\r\n\r\n")
        # The attack that matters: another handle than the one signed.
        return head + sep + body.replace(HANDLE_PREFIX.encode(), HANDLE_PREFIX.encode() + b"x", 1)
    raise ValueError(f"unknown tampering '{how}' (signature, body)")


def _body_of(email: bytes) -> bytes:
    return email.partition(b"\r\n\r\n")[2]


def handle_of(email: bytes) -> str:
    """The handle after the prefix in the body; EmailInputError when there is none or it is too long."""
    text = _body_of(email).decode("latin-1")
    at = text.find(HANDLE_PREFIX)
    if at < 0:
        raise EmailInputError("no-handle", f"the body does not contain '{HANDLE_PREFIX}HANDLE'")
    match = HANDLE_RE.match(text, at + len(HANDLE_PREFIX))
    if not match:
        raise EmailInputError("no-handle", f"no handle ([A-Za-z0-9_]+) follows '{HANDLE_PREFIX}'")
    handle = match.group(0)
    if len(handle) > MAX_HANDLE_LENGTH:
        raise EmailInputError(
            "handle-too-long",
            f"the handle is {len(handle)} characters; the circuit reveals at most {MAX_HANDLE_LENGTH}",
        )
    return handle


def check_dkim(email: bytes, txt: str) -> None:
    """Verify the email's DKIM signature (dkimpy) with the key record ``txt``, body hash included."""
    import dkim

    record = txt.encode()
    logged: list[str] = []

    class _Log:
        def debug(self, msg: str, *args: object) -> None:
            logged.append(msg % args if args else msg)

        info = warning = error = debug

    verifier = dkim.DKIM(email, logger=_Log())
    try:
        ok = verifier.verify(dnsfunc=lambda _name, timeout=5: record)
    except dkim.DKIMException as exc:
        if "body hash mismatch" in str(exc):
            raise EmailInputError("body-hash", BODY_HASH_MISMATCH) from None
        raise EmailInputError("dkim", f"the DKIM signature could not be checked: {exc}") from None
    if ok:
        return
    if any("body hash mismatch" in line for line in logged):
        raise EmailInputError("body-hash", BODY_HASH_MISMATCH)
    raise EmailInputError("signature", "the DKIM signature does not verify with the given key")


def circuit_input(
    email: bytes, txt: str, sizes: Sizes, address: int, node: str, script: Path, timeout: float = 120
) -> dict[str, Any]:
    """The circuit input for ``email``, made by @zk-email/helpers after the checks above."""
    result = _generate(email, txt, sizes, address, node, script, timeout, public=False)
    if not isinstance(result, dict):
        raise EmailInputError("input", "the input generator printed no JSON object")
    return result


def expected_public(
    email: bytes, txt: str, sizes: Sizes, address: int, node: str, script: Path, timeout: float = 120
) -> list[str]:
    """The public signals a proof for ``email`` must carry: pubkeyHash, the packed handle, the packed From
    address (when exposed) and address. For checking a proof whose witness is not at hand."""
    result = _generate(email, txt, sizes, address, node, script, timeout, public=True)
    if not isinstance(result, list):
        raise EmailInputError("input", "the input generator printed no JSON list")
    return [str(v) for v in result]


def _generate(
    email: bytes,
    txt: str,
    sizes: Sizes,
    address: int,
    node: str,
    script: Path,
    timeout: float,
    public: bool,
) -> Any:
    check_dkim(email, txt)
    handle_of(email)
    request = {
        "email": base64.b64encode(email).decode(),
        "dkim_txt": txt,
        "max_header_length": sizes.max_header,
        "max_body_length": sizes.max_body,
        "expose_from": sizes.expose_from,
        "address": str(address),
        "selector": HANDLE_PREFIX,
        "public": public,
    }
    done = subprocess.run(
        [node, str(script)],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        text = done.stderr.decode(errors="replace").strip().splitlines()
        reason = text[-1].removeprefix("zkemail-input: ") if text else f"exit {done.returncode}"
        kind = "too-long" if "too long" in reason else "input"
        raise EmailInputError(kind, reason)
    return json.loads(done.stdout)
