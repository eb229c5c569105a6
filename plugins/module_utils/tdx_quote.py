"""Parse Intel TDX DCAP quotes (version 4 and 5) without verifying them.

Layout (Intel TDX DCAP Quoting Library API, "Quote Format"):

* 48-byte header: version u16, attestation key type u16, TEE type u32 (0x81 = TDX),
  QE SVN u16, PCE SVN u16, QE vendor id (16), user data (20).
* v4: the TD report body (TDX 1.0, 584 bytes) follows at offset 48.
* v5: a u16 body type and a u32 body size follow at 48, the body starts at 54.
  Body type 2 = TDX 1.0 report (584 bytes), 3 = TDX 1.5 report (648 bytes: adds
  tee_tcb_svn2 and mr_servicetd).
* Then a u32 signature-data length and the signature data (ECDSA signature over
  header+body, attestation key, QE certification data).

Everything parsed here is *unauthenticated* until ``tdx_verify`` has checked the
signature chain.  The parser only refuses inputs that are not TDX quotes or are
truncated, raising :class:`QuoteFormatError` with a message that says why.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

HEADER_LEN = 48
TDX_TEE_TYPE = 0x81
SGX_TEE_TYPE = 0x00
TD_REPORT10_LEN = 584
TD_REPORT15_LEN = 648
BODY_TYPE_TD10 = 2
BODY_TYPE_TD15 = 3
V5_BODY_DESCRIPTOR_LEN = 6
ECDSA_P256_KEY_TYPE = 2
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

# TD attribute bits (TDX module ABI, TDINFO_STRUCT.ATTRIBUTES, little-endian u64)
TD_ATTR_DEBUG = 1 << 0
TD_ATTR_SEPT_VE_DISABLE = 1 << 28
TD_ATTR_PKS = 1 << 30
TD_ATTR_KL = 1 << 31
TD_ATTR_PERFMON = 1 << 63

# Offsets inside the TD report body (relative to the body start)
_BODY_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("tee_tcb_svn", 0, 16),
    ("mr_seam", 16, 48),
    ("mr_signer_seam", 64, 48),
    ("seam_attributes", 112, 8),
    ("td_attributes", 120, 8),
    ("xfam", 128, 8),
    ("mr_td", 136, 48),
    ("mr_config_id", 184, 48),
    ("mr_owner", 232, 48),
    ("mr_owner_config", 280, 48),
    ("rtmr0", 328, 48),
    ("rtmr1", 376, 48),
    ("rtmr2", 424, 48),
    ("rtmr3", 472, 48),
    ("report_data", 520, 64),
)
_BODY15_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("tee_tcb_svn2", 584, 16),
    ("mr_servicetd", 600, 48),
)


# The kit's SIMULATED provider (tdx_sim.py) writes this into every quote header's user data.
SIM_MARKER = b"SIMULATED-TDX"


class QuoteFormatError(ValueError):
    """The input is not a TDX quote this parser understands (wrong type, truncated, ...)."""


@dataclass(frozen=True)
class QuoteHeader:
    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class TdReport:
    """TD report body as carried in a quote (TDX 1.0; TDX 1.5 adds the two optional fields)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_servicetd: bytes | None = None

    @property
    def attributes(self) -> int:
        return int.from_bytes(self.td_attributes, "little")

    @property
    def debug(self) -> bool:
        return bool(self.attributes & TD_ATTR_DEBUG)

    @property
    def sept_ve_disable(self) -> bool:
        return bool(self.attributes & TD_ATTR_SEPT_VE_DISABLE)

    def rtmr(self, index: int) -> bytes:
        return (self.rtmr0, self.rtmr1, self.rtmr2, self.rtmr3)[index]


@dataclass(frozen=True)
class Quote:
    header: QuoteHeader
    body_type: int
    body_offset: int
    body_size: int
    report: TdReport
    signature_data: bytes
    raw: bytes

    @property
    def version(self) -> int:
        return self.header.version

    @property
    def signed_region(self) -> bytes:
        """Header and body: the bytes the attestation key signs."""
        return self.raw[: self.body_offset + self.body_size]


def _need(data: bytes, end: int, what: str) -> None:
    if len(data) < end:
        raise QuoteFormatError(f"truncated {what}: needs {end} bytes, only {len(data)} present")


def parse_header(data: bytes) -> QuoteHeader:
    _need(data, HEADER_LEN, "header")
    version, ak_type, tee_type, qe_svn, pce_svn = struct.unpack_from("<HHIHH", data, 0)
    return QuoteHeader(version, ak_type, tee_type, qe_svn, pce_svn, data[12:28], data[28:48])


def _check_header(header: QuoteHeader) -> None:
    if header.version not in (4, 5):
        raise QuoteFormatError(f"not a TDX quote: unsupported version {header.version} (expected 4 or 5)")
    if header.tee_type != TDX_TEE_TYPE:
        kind = "an SGX quote" if header.tee_type == SGX_TEE_TYPE else f"TEE type {header.tee_type:#x}"
        raise QuoteFormatError(f"not a TDX quote: {kind}")
    if header.attestation_key_type != ECDSA_P256_KEY_TYPE:
        raise QuoteFormatError(f"unsupported attestation key type {header.attestation_key_type}")


def _body_layout(data: bytes, header: QuoteHeader) -> tuple[int, int, int]:
    """Return (body_type, body_offset, body_size)."""
    if header.version == 4:
        return BODY_TYPE_TD10, HEADER_LEN, TD_REPORT10_LEN
    _need(data, HEADER_LEN + V5_BODY_DESCRIPTOR_LEN, "v5 body descriptor")
    body_type, body_size = struct.unpack_from("<HI", data, HEADER_LEN)
    expected = {BODY_TYPE_TD10: TD_REPORT10_LEN, BODY_TYPE_TD15: TD_REPORT15_LEN}.get(body_type)
    if expected is None:
        raise QuoteFormatError(f"unsupported v5 body type {body_type} (expected 2 = TDX 1.0 or 3 = TDX 1.5)")
    if body_size != expected:
        raise QuoteFormatError(f"v5 body type {body_type} declares size {body_size}, expected {expected}")
    return body_type, HEADER_LEN + V5_BODY_DESCRIPTOR_LEN, body_size


def parse_report_body(body: bytes) -> TdReport:
    """Parse a TD report body of 584 (TDX 1.0) or 648 (TDX 1.5) bytes."""
    if len(body) not in (TD_REPORT10_LEN, TD_REPORT15_LEN):
        raise QuoteFormatError(f"TD report body must be 584 or 648 bytes, got {len(body)}")
    fields = _BODY_FIELDS + (_BODY15_FIELDS if len(body) == TD_REPORT15_LEN else ())
    values = {name: body[off : off + size] for name, off, size in fields}
    return TdReport(**values)


def parse_quote(data: bytes) -> Quote:
    """Parse a v4/v5 TDX quote; raise :class:`QuoteFormatError` for anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise QuoteFormatError("quote must be bytes")
    data = bytes(data)
    header = parse_header(data)
    _check_header(header)
    body_type, body_offset, body_size = _body_layout(data, header)
    sig_len_off = body_offset + body_size
    _need(data, sig_len_off + 4, "report body and signature length")
    (sig_len,) = struct.unpack_from("<I", data, sig_len_off)
    _need(data, sig_len_off + 4 + sig_len, "signature data")
    # Bytes after the signature data (zero padding from configfs-tsm buffers) are ignored.
    report = parse_report_body(data[body_offset:sig_len_off])
    sig = data[sig_len_off + 4 : sig_len_off + 4 + sig_len]
    return Quote(header, body_type, body_offset, body_size, report, sig, data)


def _pem_chain(sig: bytes) -> bytes | None:
    """Best effort: the PCK certificate chain (PEM) inside QE certification data type 6 -> 5."""
    off = 128  # ECDSA signature (64) + attestation public key (64)
    if len(sig) < off + 6:
        return None
    cert_type, size = struct.unpack_from("<HI", sig, off)
    inner = sig[off + 6 : off + 6 + size]
    if cert_type == 5:
        return inner
    if cert_type != 6 or len(inner) < 384 + 64 + 2:
        return None
    (auth_len,) = struct.unpack_from("<H", inner, 448)
    pos = 450 + auth_len
    if len(inner) < pos + 6:
        return None
    cert_type, size = struct.unpack_from("<HI", inner, pos)
    return inner[pos + 6 : pos + 6 + size] if cert_type == 5 else None


def pck_chain_pem(quote: Quote) -> bytes | None:
    """The PEM PCK certificate chain embedded in the quote, if any (unauthenticated)."""
    return _pem_chain(quote.signature_data)


def quote_to_dict(quote: Quote) -> dict[str, Any]:
    """JSON-friendly view of a parsed quote: integers for header numbers, lower-case hex for bytes."""
    h, r = quote.header, quote.report
    out: dict[str, Any] = {
        "version": h.version,
        "attestation_key_type": h.attestation_key_type,
        "tee_type": h.tee_type,
        "qe_svn": h.qe_svn,
        "pce_svn": h.pce_svn,
        "qe_vendor_id": h.qe_vendor_id.hex(),
        "user_data": h.user_data.hex(),
        "body_type": quote.body_type,
    }
    for name, _off, _size in _BODY_FIELDS + _BODY15_FIELDS:
        value = getattr(r, name)
        if value is not None:
            out[name] = value.hex()
    out["debug"] = r.debug
    out["sept_ve_disable"] = r.sept_ve_disable
    out["signature_data_len"] = len(quote.signature_data)
    out["trailing_bytes"] = (
        len(quote.raw) - quote.body_offset - quote.body_size - 4 - len(quote.signature_data)
    )
    return out


# ---------------------------------------------------------------- Azure TDX CVM: HCL report

HCL_TDREPORT_OFFSET = 32
HCL_IGVM_HEADER_OFFSET = 1216
HCL_RUNTIME_DATA_OFFSET = 1236
TDREPORT_REPORTDATA_OFFSET = 128  # inside REPORTMACSTRUCT


@dataclass(frozen=True)
class HclReport:
    """Azure paravisor (HCL) attestation report as read from vTPM NV index 0x01400001."""

    report_type: int
    hash_type: int
    td_report: bytes
    runtime_data: bytes

    @property
    def report_data(self) -> bytes:
        off = TDREPORT_REPORTDATA_OFFSET
        return self.td_report[off : off + 64]

    def runtime_data_bound(self) -> bool:
        """REPORTDATA[0:32] == SHA-256(runtime data JSON): how Azure binds the vTPM keys to the TD."""
        import hashlib

        return self.report_data[:32] == hashlib.sha256(self.runtime_data).digest()


def parse_hcl_report(data: bytes) -> HclReport:
    if data[:4] != b"HCLA":
        raise QuoteFormatError("not an Azure HCL report (no HCLA signature)")
    _need(data, HCL_RUNTIME_DATA_OFFSET, "HCL report header")
    _size, _version, report_type, hash_type, var_size = struct.unpack_from(
        "<IIIII", data, HCL_IGVM_HEADER_OFFSET
    )
    if report_type != 4:
        raise QuoteFormatError(f"HCL report type {report_type} is not TDX (4)")
    _need(data, HCL_RUNTIME_DATA_OFFSET + var_size, "HCL runtime data")
    td_report = data[HCL_TDREPORT_OFFSET : HCL_TDREPORT_OFFSET + 1024]
    runtime = data[HCL_RUNTIME_DATA_OFFSET : HCL_RUNTIME_DATA_OFFSET + var_size]
    return HclReport(report_type, hash_type, td_report, runtime)
