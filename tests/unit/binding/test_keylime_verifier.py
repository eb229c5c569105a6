"""The session client asks its own verifier before it sends: the gate, and the mutual-TLS read (pinned)."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import keylime_verifier as kv

AGENT = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(state: Any = 3, count: int = 5, last: int = 1000) -> dict[str, Any]:
    return {"operational_state": state, "attestation_count": count, "last_successful_attestation": last}


def test_the_gate_passes_a_recent_pass_and_asks_again_only_past_the_bound() -> None:
    clock = Clock(1002.0)
    answers = [record(last=1000), record(last=1006)]
    gate = kv.VerifierGate(fetch=lambda: answers.pop(0), bound_s=4, clock=clock)
    assert gate.check() == 1000 and gate.fetches == 1
    clock.now = 1004.0
    assert gate.check() == 1000 and gate.fetches == 1  # still within the bound: not asked again
    clock.now = 1007.0
    assert gate.check() == 1006 and gate.fetches == 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (record(last=990), "passed 12 s ago, over the bound of 4 s"),  # quotes cut, revocation dropped
        (record(state=4), "not Get Quote"),  # Get Quote (retry): the verifier cannot reach the agent
        (record(state="Invalid Quote"), "not Get Quote"),
        (record(state=9), "not Get Quote"),
        (record(count=0), "not Get Quote"),  # no attestation passed yet
        ({}, "not Get Quote"),
    ],
)
def test_the_gate_refuses_what_is_not_a_recent_pass(answer: Mapping[str, Any], message: str) -> None:
    gate = kv.VerifierGate(fetch=lambda: answer, bound_s=4, clock=Clock(1002.0))
    with pytest.raises(kv.Unattested, match=message):
        gate.check()
    assert gate.attested_at == 0


def test_a_gate_that_passed_refuses_once_the_pass_is_too_old() -> None:
    clock = Clock(1001.0)
    gate = kv.VerifierGate(fetch=lambda: record(last=1000), bound_s=4, clock=clock)
    gate.check()
    clock.now = 1005.5  # the verifier's last PASS is 5.5 s old; the verifier says nothing newer
    with pytest.raises(kv.Unattested, match="over the bound"):
        gate.check()


# ------------------------------------------------------------------------------------ the verifier's API


def _pki(folder: Path) -> dict[str, Path]:
    """A CA as keylime_ca makes one: it issues the verifier's server certificate and the client's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Keylime Certificate Authority"))
        .issuer_name(name("Keylime Certificate Authority"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": folder / "cacert.crt"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for serial, cn in enumerate(("server", "client", "other-server"), start=2):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        paths[f"{cn}-cert"] = folder / f"{cn}-cert.crt"
        paths[f"{cn}-cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{cn}-key"] = folder / f"{cn}-private.pem"
        paths[f"{cn}-key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


class _Verifier(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, Any]]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        status, doc = self.answers.get(self.path, (404, {"code": 404, "status": "agent id not found"}))
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    return _pki(tmp_path)


def _serve(pki: dict[str, Path], server_name: str) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki[f"{server_name}-cert"], pki[f"{server_name}-key"])
    context.load_verify_locations(pki["ca"])
    context.verify_mode = ssl.CERT_REQUIRED  # the verifier's API asks for a client certificate
    httpd = HTTPServer(("127.0.0.1", 0), _Verifier)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def verifier(pki: dict[str, Path]) -> Iterator[str]:
    yield from _serve(pki, "server")


@pytest.fixture
def impostor(pki: dict[str, Path]) -> Iterator[str]:
    yield from _serve(pki, "other-server")


def access(pki: dict[str, Path], url: str, **change: Any) -> kv.VerifierAccess:
    doc = {
        "url": url,
        "agent": AGENT,
        "ca": str(pki["ca"]),
        "cert": str(pki["client-cert"]),
        "key": str(pki["client-key"]),
        "server_cert": str(pki["server-cert"]),
        **change,
    }
    return kv.VerifierAccess.from_document(doc)


def test_the_record_is_read_over_mutual_tls_from_the_pinned_verifier(
    pki: dict[str, Path], verifier: str, impostor: str
) -> None:
    path = f"/v{kv.API_VERSION}/agents/{AGENT}"
    _Verifier.answers = {path: (200, {"code": 200, "status": "Success", "results": record()})}
    got = kv.fetch_record(access(pki, verifier))
    assert got["last_successful_attestation"] == 1000
    assert kv.VerifierAccess.from_document(access(pki, verifier).document()) == access(pki, verifier)
    # a server with a certificate of the same CA (the CA issues client certificates too) is not the verifier
    with pytest.raises(kv.Unattested, match="not the pinned one"):
        kv.fetch_record(access(pki, impostor))
    with pytest.raises(kv.Unattested, match="holds no agent"):
        kv.fetch_record(access(pki, verifier, agent="other"))
    _Verifier.answers = {path: (500, {"code": 500})}
    with pytest.raises(kv.Unattested, match="answered 500"):
        kv.fetch_record(access(pki, verifier))


def test_an_unreachable_verifier_or_unusable_files_refuse(pki: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(kv.Unattested, match="does not answer"):
        kv.fetch_record(access(pki, "https://127.0.0.1:1"), timeout=2)
    with pytest.raises(kv.Unattested, match="https://"):
        kv.fetch_record(access(pki, "http://127.0.0.1:1"))
    with pytest.raises(kv.Unattested, match="TLS files"):
        kv.fetch_record(access(pki, "https://127.0.0.1:1", key=str(tmp_path / "missing.pem")))
    with pytest.raises(kv.Unattested, match="incomplete"):
        kv.VerifierAccess.from_document({"url": "https://x:1"})
