"""SIMULATED Intel TDX quote provider for the local lab (no TDX hardware).

Everything produced here is SIMULATED and says so: the test PKI's subjects start with "SIMULATED",
the quote header's user data carries ``SIMULATED-TDX``, JSON outputs carry ``"simulated": true``
and log lines start with ``[SIMULATED TDX]``.

What it does
* ``create_pki`` makes a throw-away PKI shaped like Intel's: root CA -> PCK platform CA -> PCK leaf
  (carrying the SGX extension OID 1.2.840.113741.1.13.1 with PPID, TCB, PCE-ID, FMSPC, SGX type, as
  dcap-qvl parses it) and root CA -> TCB signing certificate.
* ``make_collateral`` writes dcap-qvl ``QuoteCollateralV3`` JSON: CRLs from the root and the PCK CA,
  TCB info and QE identity re-signed by the TCB signer.  The TCB levels / QE identity bodies are
  templates taken from Intel's published collateral (shape only; dates and FMSPC are the lab's).
* ``make_quote`` builds a v4 quote whose TD report carries the MRTD/RTMRs the provider computed from
  the boot artifacts it handed to QEMU and the REPORTDATA the guest supplies, signed like a real QE
  would (attestation key over header+body, QE report signed by the PCK leaf, QE report data =
  SHA-256(attestation key || QE auth data), PEM PCK chain as certification data type 5 inside 6).

These quotes pass ``dcap_qvl.verify_with_root_ca`` with the lab's root only; the kit's verifier
uses that root solely when simulation is explicitly enabled.  This is a test stand-in, NOT a
security boundary: whoever holds the lab keys can sign any measurement.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.teeproof.kit.plugins.module_utils.tdx_quote import SIM_MARKER
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

LOG_PREFIX = "[SIMULATED TDX]"
SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
TD_ATTR_DEBUG = 1 << 0
TD_ATTR_SEPT_VE_DISABLE = 1 << 28
DEFAULT_FMSPC = "B0C06F000000"
PCE_ID = bytes(2)
CPU_SVN = bytes.fromhex("03030202040100050000000000000000")
PCE_SVN = 11
TEE_TCB_SVN = bytes.fromhex("06010300000000000000000000000000")
XFAM = bytes.fromhex("e702060000000000")
# TDX module measurement reported by the recorded Intel quote; the simulator reuses it.
SIM_MR_SEAM = bytes.fromhex(
    "5b38e33a6487958b72c3c12a938eaa5e3fd4510c51aeeab58c7d5ecee41d7c436489d6c8e4f92f160b7cad34207b00c1"
)
QE_MRSIGNER = bytes.fromhex("DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5")
QE_ISVPRODID = 2
QE_ISVSVN = 4
QE_ATTRIBUTES = bytes.fromhex("11000000000000000000000000000000")
DAY = 86400


class SimError(ValueError):
    """Bad input to the simulator (wrong REPORTDATA length, missing state, ...)."""


# ---------------------------------------------------------------- minimal DER for the SGX extension


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return _der(0x06, out)


def _int(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return _der(0x02, raw)


def _pair(oid: str, value: bytes) -> bytes:
    return _der(0x30, _oid(oid) + value)


def sgx_extension(ppid: bytes, cpu_svn: bytes, pce_svn: int, pce_id: bytes, fmspc: bytes) -> bytes:
    """DER of the Intel SGX extension as in PCK certificates (SGX type 0 = standard)."""
    base = SGX_EXTENSION_OID
    comps = b"".join(_pair(f"{base}.2.{i + 1}", _int(svn)) for i, svn in enumerate(cpu_svn))
    tcb = comps + _pair(f"{base}.2.17", _int(pce_svn)) + _pair(f"{base}.2.18", _der(0x04, cpu_svn))
    body = (
        _pair(f"{base}.1", _der(0x04, ppid))
        + _pair(f"{base}.2", _der(0x30, tcb))
        + _pair(f"{base}.3", _der(0x04, pce_id))
        + _pair(f"{base}.4", _der(0x04, fmspc))
        + _pair(f"{base}.5", _der(0x0A, b"\x00"))
    )
    return _der(0x30, body)


# ---------------------------------------------------------------- PKI


@dataclass
class SimPki:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    pck_ca_key: ec.EllipticCurvePrivateKey
    pck_ca: x509.Certificate
    tcb_key: ec.EllipticCurvePrivateKey
    tcb: x509.Certificate
    pck_key: ec.EllipticCurvePrivateKey
    pck: x509.Certificate
    attestation_key: ec.EllipticCurvePrivateKey
    fmspc: str = DEFAULT_FMSPC
    keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SIMULATED tee-proof-kit lab (not Intel)"),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
    now: int,
    extra: x509.UnrecognizedExtension | None = None,
) -> x509.Certificate:
    start = dt.datetime.fromtimestamp(now - DAY, dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=1 if ca and issuer is None else None), True)
        .add_extension(_usage(ca), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(aki, False)
    if extra is not None:
        builder = builder.add_extension(extra, False)
    return builder.sign(issuer_key, hashes.SHA256())


# The SIMULATED root is one fixed, public test root, the same on every machine (its key comes from this public
# seed, its certificate is signed deterministically): so the lab inventory pins its SHA-256 as a constant
# (SIM_ROOT_SHA256) and a verifier refuses any other root file. Anyone can sign with it, which is why a
# simulated quote is refused everywhere but in the lab.
SIM_ROOT_SEED = b"tee-proof-kit SIMULATED TDX root CA v1 (public test key, not a secret)"
SIM_ROOT_NOT_BEFORE = 1704067200  # 2024-01-01T00:00:00Z (+1 day), valid for ten years
SIM_ROOT_SERIAL = 0x5157544458


def sim_root_key() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(
        int.from_bytes(hashlib.sha256(SIM_ROOT_SEED).digest(), "big"), ec.SECP256R1()
    )


def sim_root_cert(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    start = dt.datetime.fromtimestamp(SIM_ROOT_NOT_BEFORE, dt.UTC)
    subject = _name("SIMULATED TDX Root CA")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(SIM_ROOT_SERIAL)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), True)
        .add_extension(_usage(True), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    return builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)


def create_pki(now: int, fmspc: str = DEFAULT_FMSPC, fixed_root: bool = True) -> SimPki:
    """A SIMULATED PKI under the fixed test root; the intermediates are fresh, valid from ``now`` - 1 day.
    ``fixed_root=False`` makes a root of its own (tests: a root that nobody pinned)."""
    pck_ca_key, tcb_key, pck_key = _key(), _key(), _key()
    if fixed_root:
        root_key = sim_root_key()
        root = sim_root_cert(root_key)
    else:
        root_key = _key()
        root = _cert("SIMULATED TDX Root CA", root_key, None, root_key, True, now)
    pck_ca = _cert("SIMULATED Intel SGX PCK Platform CA", pck_ca_key, root, root_key, True, now)
    tcb = _cert("SIMULATED Intel SGX TCB Signing", tcb_key, root, root_key, False, now)
    ppid = hashlib.sha256(pck_key.public_key().public_bytes(*_PUB_RAW)).digest()[:16]
    ext = sgx_extension(ppid, CPU_SVN, PCE_SVN, PCE_ID, bytes.fromhex(fmspc))
    sgx = x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSION_OID), ext)
    pck = _cert("SIMULATED Intel SGX PCK Certificate", pck_key, pck_ca, pck_ca_key, False, now, sgx)
    return SimPki(root_key, root, pck_ca_key, pck_ca, tcb_key, tcb, pck_key, pck, _key(), fmspc)


_PUB_RAW = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
_KEY_NAMES = ("root_key", "pck_ca_key", "tcb_key", "pck_key", "attestation_key")
_CERT_NAMES = ("root", "pck_ca", "tcb", "pck")


def save_pki(pki: SimPki, directory: str | Path) -> None:
    """Write keys (mode 0600) and certificates (PEM) plus root.der to ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for name in _KEY_NAMES:
        key: ec.EllipticCurvePrivateKey = getattr(pki, name)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = d / f"{name}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    for name in _CERT_NAMES:
        cert: x509.Certificate = getattr(pki, name)
        (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "root.der").write_bytes(pki.root_der)
    (d / "README").write_text(
        "SIMULATED TDX test PKI for the local lab. Not Intel. Not a security boundary.\n"
    )
    (d / "fmspc").write_text(pki.fmspc + "\n")


def load_pki(directory: str | Path) -> SimPki:
    d = Path(directory)
    if not (d / "root.der").exists():
        raise SimError(f"no simulated PKI in {d} (run the provider's setup first)")
    keys: dict[str, Any] = {}
    for name in _KEY_NAMES:
        keys[name] = serialization.load_pem_private_key((d / f"{name}.pem").read_bytes(), None)
    certs = {n: x509.load_pem_x509_certificate((d / f"{n}.crt").read_bytes()) for n in _CERT_NAMES}
    fmspc = (d / "fmspc").read_text().strip()
    return SimPki(
        keys["root_key"],
        certs["root"],
        keys["pck_ca_key"],
        certs["pck_ca"],
        keys["tcb_key"],
        certs["tcb"],
        keys["pck_key"],
        certs["pck"],
        keys["attestation_key"],
        fmspc,
    )


# ---------------------------------------------------------------- collateral


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _raw_sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _crl(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, now: int, days: int) -> bytes:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(dt.datetime.fromtimestamp(now - 60, dt.UTC))
        .next_update(dt.datetime.fromtimestamp(now + days * DAY, dt.UTC))
        .add_extension(x509.CRLNumber(1), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.DER)


def _tcb_level(status: str, sgx: bytes, pce_svn: int, tdx: bytes, date: str) -> dict[str, Any]:
    return {
        "tcb": {
            "sgxtcbcomponents": [{"svn": v} for v in sgx],
            "pcesvn": pce_svn,
            "tdxtcbcomponents": [{"svn": v} for v in tdx],
        },
        "tcbDate": date,
        "tcbStatus": status,
    }


def tcb_info_body(fmspc: str, now: int, days: int) -> dict[str, Any]:
    """TDX TCB info v3 shaped like Intel's: the lab platform's level is UpToDate, older is OutOfDate."""
    module = {"mrsigner": "00" * 48, "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF"}
    identity_levels = [
        {"tcb": {"isvsvn": TEE_TCB_SVN[0]}, "tcbDate": _iso(now - DAY), "tcbStatus": "UpToDate"}
    ]
    return {
        "id": "TDX",
        "version": 3,
        "issueDate": _iso(now - 60),
        "nextUpdate": _iso(now + days * DAY),
        "fmspc": fmspc,
        "pceId": PCE_ID.hex().upper(),
        "tcbType": 0,
        "tcbEvaluationDataNumber": 1,
        "tdxModule": module,
        "tdxModuleIdentities": [{"id": f"TDX_{TEE_TCB_SVN[1]:02d}", **module, "tcbLevels": identity_levels}],
        "tcbLevels": [
            _tcb_level("UpToDate", CPU_SVN, PCE_SVN, TEE_TCB_SVN, _iso(now - DAY)),
            _tcb_level("OutOfDate", bytes(16), 0, bytes(16), "2020-01-01T00:00:00Z"),
        ],
    }


def qe_identity_body(now: int, days: int) -> dict[str, Any]:
    return {
        "id": "TD_QE",
        "version": 2,
        "issueDate": _iso(now - 60),
        "nextUpdate": _iso(now + days * DAY),
        "tcbEvaluationDataNumber": 1,
        "miscselect": "00000000",
        "miscselectMask": "FFFFFFFF",
        "attributes": QE_ATTRIBUTES.hex().upper(),
        "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": QE_MRSIGNER.hex().upper(),
        "isvprodid": QE_ISVPRODID,
        "tcbLevels": [{"tcb": {"isvsvn": QE_ISVSVN}, "tcbDate": _iso(now - DAY), "tcbStatus": "UpToDate"}],
    }


def _pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def make_collateral(pki: SimPki, now: int, days: int = 30) -> dict[str, Any]:
    """dcap-qvl QuoteCollateralV3 JSON (as a dict) valid from ``now`` for ``days``; SIMULATED."""
    tcb_info = json.dumps(tcb_info_body(pki.fmspc, now, days), separators=(",", ":"))
    qe_identity = json.dumps(qe_identity_body(now, days), separators=(",", ":"))
    return {
        "pck_crl_issuer_chain": _pem(pki.pck_ca, pki.root),
        "root_ca_crl": _crl(pki.root, pki.root_key, now, days).hex(),
        "pck_crl": _crl(pki.pck_ca, pki.pck_ca_key, now, days).hex(),
        "tcb_info_issuer_chain": _pem(pki.tcb, pki.root),
        "tcb_info": tcb_info,
        "tcb_info_signature": _raw_sig(pki.tcb_key, tcb_info.encode()).hex(),
        "qe_identity_issuer_chain": _pem(pki.tcb, pki.root),
        "qe_identity": qe_identity,
        "qe_identity_signature": _raw_sig(pki.tcb_key, qe_identity.encode()).hex(),
    }


# ---------------------------------------------------------------- quotes


@dataclass(frozen=True)
class SimMeasurements:
    """What the simulated TDX module reports: set by the host from the artifacts given to QEMU."""

    mr_td: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes = bytes(48)
    td_attributes: int = TD_ATTR_SEPT_VE_DISABLE
    mr_config_id: bytes = bytes(48)
    mr_owner: bytes = bytes(48)
    mr_owner_config: bytes = bytes(48)
    # The CC event log its RTMRs replay from (SIMULATED: written by the provider; see rtmr0_reference).
    event_log: bytes = b""

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> SimMeasurements:
        def h(key: str) -> bytes:
            value = data.get(key)
            return bytes.fromhex(value) if isinstance(value, str) else bytes(48)

        attrs = int(data.get("td_attributes", TD_ATTR_SEPT_VE_DISABLE))
        return cls(h("mr_td"), h("rtmr0"), h("rtmr1"), h("rtmr2"), h("rtmr3"), attrs)


def _header() -> bytes:
    user_data = SIM_MARKER.ljust(20, b"\x00")
    return struct.pack("<HHIHH", 4, 2, 0x81, 0, 0) + INTEL_QE_VENDOR_ID + user_data


def td_report_body(m: SimMeasurements, report_data: bytes) -> bytes:
    if len(report_data) != 64:
        raise SimError(f"REPORTDATA must be exactly 64 bytes, got {len(report_data)}")
    for name in ("mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"):
        if len(getattr(m, name)) != 48:
            raise SimError(f"{name} must be 48 bytes")
    return b"".join(
        (
            TEE_TCB_SVN,
            SIM_MR_SEAM,
            bytes(48),  # mr_signer_seam: Intel-signed module
            bytes(8),  # seam_attributes
            m.td_attributes.to_bytes(8, "little"),
            XFAM,
            m.mr_td,
            m.mr_config_id,
            m.mr_owner,
            m.mr_owner_config,
            m.rtmr0,
            m.rtmr1,
            m.rtmr2,
            m.rtmr3,
            report_data,
        )
    )


def _qe_report(report_data: bytes) -> bytes:
    report = bytearray(384)
    report[0:16] = CPU_SVN
    report[48:64] = QE_ATTRIBUTES
    report[64:96] = hashlib.sha256(b"SIMULATED TD QE").digest()  # MRENCLAVE (not checked by policy)
    report[128:160] = QE_MRSIGNER
    struct.pack_into("<HH", report, 256, QE_ISVPRODID, QE_ISVSVN)
    report[320:384] = report_data
    return bytes(report)


def _certification_data(pki: SimPki, attest_pub: bytes) -> bytes:
    auth_data = hashlib.sha256(b"SIMULATED QE auth data").digest()
    qe_report = _qe_report(hashlib.sha256(attest_pub + auth_data).digest() + bytes(32))
    chain = _pem(pki.pck, pki.pck_ca, pki.root).encode()
    inner = (
        qe_report
        + _raw_sig(pki.pck_key, qe_report)
        + struct.pack("<H", len(auth_data))
        + auth_data
        + struct.pack("<HI", 5, len(chain))
        + chain
    )
    return struct.pack("<HI", 6, len(inner)) + inner


def make_quote(pki: SimPki, measurements: SimMeasurements, report_data: bytes) -> bytes:
    """A SIMULATED v4 TDX quote over ``measurements`` and the guest's ``report_data``."""
    signed = _header() + td_report_body(measurements, report_data)
    attest_pub = pki.attestation_key.public_key().public_bytes(*_PUB_RAW)[1:]
    sig_data = _raw_sig(pki.attestation_key, signed) + attest_pub + _certification_data(pki, attest_pub)
    return signed + struct.pack("<I", len(sig_data)) + sig_data


# ---------------------------------------------------------------- set-up state on the VM host


def setup_state(directory: str | Path, now: int, days: int = 30, fmspc: str = DEFAULT_FMSPC) -> SimPki:
    """Create (or reuse) the PKI in ``directory`` and (re)write collateral.json for ``now``. A PKI under
    another root than the fixed test root (made by an older kit) is replaced."""
    d = Path(directory)
    fixed = sim_root_cert(sim_root_key()).public_bytes(serialization.Encoding.DER)
    current = (d / "root.der").read_bytes() if (d / "root.der").exists() else None
    if current == fixed:
        pki = load_pki(d)
    else:
        pki = create_pki(now, fmspc)
        save_pki(pki, d)
    collateral = make_collateral(pki, now, days)
    (d / "collateral.json").write_text(json.dumps(collateral, indent=1) + "\n")
    meta = {"simulated": True, "issued_at": now, "valid_days": days, "fmspc": pki.fmspc}
    (d / "collateral.meta.json").write_text(json.dumps(meta) + "\n")
    return pki


def quote_response(quote: bytes, measurements: SimMeasurements) -> dict[str, Any]:
    """The provider's JSON answer: always labelled simulated."""
    import base64

    return {
        "simulated": True,
        "provider": "tdx-sim-provider (SIMULATED TDX, lab test PKI, not Intel)",
        "quote_b64": base64.b64encode(quote).decode(),
        "mr_td": measurements.mr_td.hex(),
        "rtmr": [measurements.rtmr0.hex(), measurements.rtmr1.hex(), measurements.rtmr2.hex()],
        "event_log_b64": base64.b64encode(measurements.event_log).decode()
        if measurements.event_log
        else None,
    }


# ------------------------------------------------------------------ one provider, one guest
# A TDX module quotes only the TD that asks: REPORTDATA sits in that TD's own TDREPORT. The SIMULATED provider
# stands for it, so it must answer only its own guest. Its guest reaches it through a QEMU guestfwd that runs,
# per connection, `cat TOKEN_FILE - | nc -U SOCKET`: the launch's own secret token (0600 in its run folder)
# comes first on every connection its guest opens. (libslirp double-forks and setsid()s the command, so the
# connecting process is no child of QEMU and SO_PEERCRED cannot tell guests apart.) Another guest's forward
# carries another token; a process on the host that cannot read the run folder has none.
TOKEN_PREFIX = b"KIT-PROVIDER-TOKEN "
TOKEN_LINE_MAX = 200


def new_token() -> bytes:
    import secrets

    return TOKEN_PREFIX + secrets.token_hex(32).encode() + b"\n"


def write_token(path: Path) -> None:
    """A fresh token for one launch, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(new_token())


def check_token(line: bytes, token_file: Path) -> str:
    """'' when ``line`` (the connection's first line) is this launch's token, else why it is refused."""
    import hmac

    try:
        expected = token_file.read_bytes()
    except OSError:
        return f"this provider's guest is not launched ({token_file} unreadable)"
    if not line.startswith(TOKEN_PREFIX):
        return (
            "the connection does not come through this provider's guest forward: a SIMULATED TDX provider "
            "quotes only its own TD (not this provider's guest)"
        )
    if not hmac.compare_digest(line.strip(), expected.strip()):
        return (
            "another launch's token: a SIMULATED TDX provider quotes only its own TD "
            "(not this provider's guest)"
        )
    return ""
