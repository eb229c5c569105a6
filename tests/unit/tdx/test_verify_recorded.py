"""Verification of the recorded Intel-signed quotes (dcap-qvl + the kit's policy)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import tdx_quote, tdx_verify
from conftest import DCAP, QUOTE_TIME

BODY_START, BODY_END = 48, 632


def test_recorded_quote_verifies_up_to_date(intel_quote: bytes, intel_collateral: object) -> None:
    verdict = tdx_verify.verify_quote(intel_quote, intel_collateral, QUOTE_TIME)
    assert verdict.ok, verdict.reasons
    assert verdict.tcb_status == "UpToDate"
    assert verdict.authenticated and not verdict.simulated
    assert verdict.quote is not None and verdict.quote["mr_td"].startswith("91eb2b44")


def test_outdated_quote_fails() -> None:
    raw = (DCAP / "tdx_quote_outdated").read_bytes()
    coll = tdx_verify.load_collateral(DCAP / "tdx_quote_outdated_collateral.json")
    # its collateral was issued 2026-02-18; evaluate inside that window
    verdict = tdx_verify.verify_quote(raw, coll, 1771500000)
    assert not verdict.ok
    assert "dcap_qvl" in verdict.codes()
    assert "No matching TCB level" in tdx_verify.reasons_text(verdict.reasons)


@pytest.mark.parametrize(
    "now, fragment",
    [(1852919234, "CrlExpired"), (1700000000, "future"), (QUOTE_TIME + 40 * 86400, "")],
)
def test_collateral_outside_its_validity_fails(
    intel_quote: bytes, intel_collateral: object, now: int, fragment: str
) -> None:
    verdict = tdx_verify.verify_quote(intel_quote, intel_collateral, now)
    assert not verdict.ok and not verdict.authenticated
    assert verdict.codes()[0] == "dcap_qvl"
    assert fragment in verdict.reasons[0].message


def test_every_single_bit_flip_in_the_td_report_body_fails(
    intel_quote: bytes, intel_collateral: object
) -> None:
    """All 4,672 bits of header+body region 48..632 (about 1 ms per dcap-qvl verify)."""
    trust = tdx_verify.TrustAnchors()
    passed = []
    for bit in range(BODY_START * 8, BODY_END * 8):
        mutated = bytearray(intel_quote)
        mutated[bit // 8] ^= 1 << (bit % 8)
        result = tdx_verify.check_signature(bytes(mutated), intel_collateral, QUOTE_TIME, trust)
        if result.status is not None or not result.reasons:
            passed.append(bit)
    assert passed == []


@pytest.mark.parametrize("offset", [0, 2, 4, 8, 10, 12, 28, 47])
def test_header_bit_flips_fail(intel_quote: bytes, intel_collateral: object, offset: int) -> None:
    mutated = bytearray(intel_quote)
    mutated[offset] ^= 0x01
    verdict = tdx_verify.verify_quote(bytes(mutated), intel_collateral, QUOTE_TIME)
    assert not verdict.ok


def test_signature_failure_still_lists_policy_reasons(intel_quote: bytes, intel_collateral: object) -> None:
    mutated = bytearray(intel_quote)
    mutated[184] ^= 0x80  # MRTD
    policy = tdx_verify.Policy(expected={"mr_td": bytes(48), "rtmr3": b"\x01" * 48})
    verdict = tdx_verify.verify_quote(bytes(mutated), intel_collateral, QUOTE_TIME, policy, nonce=b"n")
    assert set(verdict.codes()) == {"dcap_qvl", "mr_td", "rtmr3", "report_data"}


def test_policy_layer_on_the_recorded_quote(intel_quote: bytes, intel_collateral: object) -> None:
    q = tdx_quote.parse_quote(intel_quote)
    right = tdx_verify.policy_from_mapping(
        {"mr_td": q.report.mr_td.hex(), "rtmr0": q.report.rtmr0.hex(), "rtmr3": "00" * 48}
    )
    assert tdx_verify.verify_quote(intel_quote, intel_collateral, QUOTE_TIME, right).ok
    wrong = tdx_verify.policy_from_mapping({"rtmr1": "11" * 48, "allowed_tcb_statuses": ["OutOfDate"]})
    verdict = tdx_verify.verify_quote(intel_quote, intel_collateral, QUOTE_TIME, wrong)
    assert verdict.codes() == ["tcb_status", "rtmr1"]


def test_report_data_binding_checks_nonce(intel_quote: bytes, intel_collateral: object) -> None:
    verdict = tdx_verify.verify_quote(intel_quote, intel_collateral, QUOTE_TIME, nonce=b"fresh")
    assert verdict.codes() == ["report_data"] and verdict.report_data_checked


def test_policy_validation_names_the_bad_key(tmp_path: object) -> None:
    cases: dict[str, dict[str, Any]] = {
        "mr_tdd": {"mr_tdd": "00" * 48},
        "rtmr2": {"rtmr2": "00" * 47},
        "'rtmr1'": {"rtmr1": "zz" * 48},
        "allow_debug": {"allow_debug": "no"},
        "allowed_tcb_statuses": {"allowed_tcb_statuses": ["Fine"]},
        "forbidden_advisory_ids": {"forbidden_advisory_ids": "INTEL-SA-1"},
    }
    for key, data in cases.items():
        with pytest.raises(tdx_verify.PolicyError, match=key):
            tdx_verify.policy_from_mapping(data)


def test_policy_files_yaml_and_json(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    (base / "p.yml").write_text("allow_debug: false\nrtmr3: '" + "00" * 48 + "'\n")
    (base / "p.json").write_text(json.dumps({"require_sept_ve_disable": False}))
    (base / "bad.yml").write_text("rtmr9: x\n")
    assert tdx_verify.load_policy(base / "p.yml").expected["rtmr3"] == bytes(48)
    assert tdx_verify.load_policy(base / "p.json").require_sept_ve_disable is False
    with pytest.raises(tdx_verify.PolicyError, match="rtmr9"):
        tdx_verify.load_policy(base / "bad.yml")


def test_bad_collateral_raises() -> None:
    with pytest.raises(tdx_verify.CollateralError):
        tdx_verify.collateral_from_json("{}")
