"""Shared pytest set-up.

The kit's libraries are the collection teeproof.kit (bin/kit setup links this checkout into .venv), so tests
import them as ``ansible_collections.teeproof.kit.plugins.module_utils.NAME``. The kit's programs that are
files rather than modules (guest and lab programs in roles/*/files, the e2e scenario's tools) are loaded here
from their paths, under their own names, so that tests import them by name: the very files the roles install.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = {
    "tdx_sim": ROOT / "roles" / "td_host" / "files" / "tdx_sim.py",
    "keylime_agent_compat": ROOT / "roles" / "keylime_agent" / "files" / "keylime_agent_compat.py",
    "canary": ROOT / "molecule" / "e2e" / "files" / "canary.py",
    "role_readme": ROOT / "tools" / "role_readme.py",
    "lab_status": ROOT / "tools" / "lab_status.py",
    "zkemail_bench": ROOT / "benchmarks" / "zkemail.py",
}


def _load_program(name: str, path: Path) -> None:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


for _name, _path in PROGRAMS.items():
    _load_program(_name, _path)
SHARED = ROOT.parent / "shared"
TESTVECTORS = SHARED / "testvectors"


# ---------------------------------------------------------------- a TD's claims (binding tests)
NONCE = bytes.fromhex("c0ffee") * 11


def ssh_keypair() -> tuple[bytes, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode() + " td-receipt"


def self_signed_pem(cn: str) -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2025, 1, 1))
        .not_valid_after(dt.datetime(2030, 1, 1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), cert.public_bytes(
        serialization.Encoding.DER
    )


@pytest.fixture(scope="session")
def td() -> dict[str, Any]:
    """One TD: its claims document, its receipt key, its agent's certificate (PEM and DER)."""
    _unused, ssh_pub = ssh_keypair()
    receipt_private, receipt_pub = ssh_keypair()
    pem, der = self_signed_pem("agent-a")
    ek = base64.b64encode(b"\x00\x01ek-public-area-a").decode()
    aik = base64.b64encode(b"\x00\x01ak-public-area-a").decode()
    ca_pem, _ca_der = self_signed_pem("verifier-ca")
    claims = {
        "kit_claims": 2,
        "agent": {
            "uuid": hashlib.sha256(b"ek-a").hexdigest(),
            "ek_tpm": ek,
            "aik_tpm": aik,
            "mtls_cert": pem,
        },
        "agent_ca_sha256": hashlib.sha256(_ca_der).hexdigest(),
        "ssh_host_key": " ".join(ssh_pub.split()[:2]),
        "receipt_key": " ".join(receipt_pub.split()[:2]),
        "image_id_sha256": hashlib.sha256(b'{"kit": "image"}').hexdigest(),
    }
    return {
        "claims": claims,
        "receipt_private": receipt_private,
        "cert_der": der,
        "cert_pem": pem,
        "ca_pem": ca_pem,
    }


@pytest.fixture(scope="session")
def other_td() -> dict[str, Any]:
    pem, der = self_signed_pem("agent-b")
    return {"cert_pem": pem, "cert_der": der, "aik": base64.b64encode(b"\x00\x01ak-public-area-b").decode()}


@pytest.fixture(scope="session")
def nonce() -> bytes:
    return NONCE
