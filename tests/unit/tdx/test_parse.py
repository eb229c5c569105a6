"""Quote parsing: agreement with dcap-qvl's parser on every recorded quote, and clear errors."""

from __future__ import annotations

import struct
from pathlib import Path

import dcap_qvl
import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import tdx_quote
from conftest import DCAP, GTG, TV

FIELD_MAP = {
    "tee_tcb_svn": "tee_tcb_svn",
    "mr_seam": "mr_seam",
    "mr_signer_seam": "mr_signer_seam",
    "seam_attributes": "seam_attributes",
    "td_attributes": "td_attributes",
    "xfam": "xfam",
    "mr_td": "mr_td",
    "mr_config_id": "mr_config_id",
    "mr_owner": "mr_owner",
    "mr_owner_config": "mr_owner_config",
    "rtmr0": "rt_mr0",
    "rtmr1": "rt_mr1",
    "rtmr2": "rt_mr2",
    "rtmr3": "rt_mr3",
    "report_data": "report_data",
}


def _recorded_quotes() -> list[Path]:
    """Every file under the test vectors that dcap-qvl itself accepts as a TDX quote."""
    found = []
    for path in sorted(TV.rglob("*")):
        if not path.is_file() or path.suffix in (".json", ".md", ".pem", ".der"):
            continue
        try:
            if dcap_qvl.parse_quote(path.read_bytes()).is_tdx():
                found.append(path)
        except ValueError:
            continue
    return found


RECORDED = _recorded_quotes()


def test_recorded_quote_set_is_what_the_readme_lists() -> None:
    names = {p.name for p in RECORDED}
    assert {
        "tdx_quote",
        "tdx_quote_outdated",
        "cos-113-tdx-quote.dat",
        "quote_v5_sample.dat",
        "tdx_prod_quote_SPR_E4.dat",
    } <= names


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_parse_agrees_with_dcap_qvl(path: Path) -> None:
    raw = path.read_bytes()
    ours = tdx_quote.parse_quote(raw)
    theirs = dcap_qvl.parse_quote(raw)
    assert ours.header.version == theirs.header.version
    assert ours.header.tee_type == theirs.header.tee_type == 0x81
    assert ours.header.attestation_key_type == theirs.header.attestation_key_type
    assert ours.header.qe_svn == theirs.header.qe_svn
    assert ours.header.pce_svn == theirs.header.pce_svn
    assert ours.header.qe_vendor_id == bytes(theirs.header.qe_vendor_id)
    assert ours.header.user_data == bytes(theirs.header.user_data)
    for mine, their_name in FIELD_MAP.items():
        assert getattr(ours.report, mine) == bytes(getattr(theirs.report, their_name)), mine
    if hasattr(theirs.report, "mr_service_td"):
        assert ours.report.mr_servicetd == bytes(theirs.report.mr_service_td)
        assert ours.report.tee_tcb_svn2 == bytes(theirs.report.tee_tcb_svn2)
    else:
        assert ours.report.mr_servicetd is None
    pem = tdx_quote.pck_chain_pem(ours)
    assert pem is not None and pem.count(b"BEGIN CERTIFICATE") >= 2


def test_v5_body_type_3_fields_are_shifted_by_six() -> None:
    raw = (GTG / "quote_v5_sample.dat").read_bytes()
    q = tdx_quote.parse_quote(raw)
    assert q.version == 5 and q.body_type == 3 and q.body_offset == 54 and q.body_size == 648
    assert q.report.mr_td == raw[54 + 136 : 54 + 184]
    assert q.report.report_data == raw[54 + 520 : 54 + 584]
    assert q.report.mr_servicetd == raw[54 + 600 : 54 + 648]


def test_v4_offsets_match_the_notes() -> None:
    raw = (DCAP / "tdx_quote").read_bytes()
    q = tdx_quote.parse_quote(raw)
    assert q.report.mr_td == raw[184:232]
    assert q.report.rtmr0 == raw[376:424]
    assert q.report.report_data == raw[568:632]
    assert q.report.sept_ve_disable and not q.report.debug


def test_dict_has_required_keys_in_lower_case_hex() -> None:
    d = tdx_quote.quote_to_dict(tdx_quote.parse_quote((DCAP / "tdx_quote").read_bytes()))
    for key in ("mr_td", "mr_config_id", "mr_owner", "mr_owner_config", "mr_seam", "tee_tcb_svn"):
        assert d[key] == d[key].lower() and len(d[key]) in (32, 96)
    assert d["version"] == 4 and d["tee_type"] == 0x81


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "truncated"),
        (b"hello world, not a quote" * 3, "not a TDX quote"),
        ((DCAP / "tdx_quote").read_bytes()[:600], "truncated"),
        ((DCAP / "tdx_quote").read_bytes()[:4000], "truncated signature data"),
        (struct.pack("<HHI", 3, 2, 0) + bytes(1000), "not a TDX quote"),
        (struct.pack("<HHI", 4, 2, 0) + bytes(1000), "SGX"),
        (struct.pack("<HHI", 5, 2, 0x81) + bytes(40) + struct.pack("<HI", 9, 584) + bytes(700), "body type"),
        (struct.pack("<HHI", 5, 2, 0x81) + bytes(40) + struct.pack("<HI", 3, 584) + bytes(700), "size"),
    ],
)
def test_non_quotes_raise_quote_format_error(blob: bytes, message: str) -> None:
    with pytest.raises(tdx_quote.QuoteFormatError, match=message):
        tdx_quote.parse_quote(blob)


def test_tdreport_1024_is_not_a_quote() -> None:
    with pytest.raises(tdx_quote.QuoteFormatError):
        tdx_quote.parse_quote((GTG / "report.dat").read_bytes())
