"""The quote verifier checks RTMR0 event by event when its policy has an RTMR0 reference (SIMULATED quotes
signed by the lab's test PKI, with the event log the lab's provider writes)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tdx_sim
from ansible_collections.teeproof.kit.plugins.module_utils import rtmr0_reference as r0
from ansible_collections.teeproof.kit.plugins.module_utils import tdx_measure, tdx_verify
from test_sim import BINDING, NONCE, NOW, SIM_ROOT_PIN, _fake_kernel

CMDLINE = "console=ttyS0 root=/dev/vda1"
INITRD = b"initrd-bytes" * 100


@pytest.fixture(scope="module")
def lab() -> dict[str, Any]:
    pki = tdx_sim.create_pki(NOW)
    collateral = tdx_verify.collateral_from_json(json.dumps(tdx_sim.make_collateral(pki, NOW)))
    expected = tdx_measure.expected_measurements(_fake_kernel(), INITRD, CMDLINE)
    trust = tdx_verify.TrustAnchors(
        allow_simulated=True, simulated_root_der=pki.root_der, simulated_root_sha256=SIM_ROOT_PIN
    )
    policy = {
        "mr_td": "aa" * 48,
        "rtmr1": expected["rtmr1"],
        "rtmr2": expected["rtmr2"],
        "required": ["mr_td", "rtmr0", "rtmr1", "rtmr2"],
        "rtmr0_reference": r0.simulated_reference(2048, 2, b""),
    }
    return {"pki": pki, "coll": collateral, "expected": expected, "trust": trust, "policy": policy}


def _launch(lab: dict[str, Any], memory_mib: int = 2048, tables: tuple[bytes, ...] = ()) -> bytes:
    kernel = bytes.fromhex(lab["expected"]["kernel_authenticode_sha384"])
    shape = r0.simulated_shape(memory_mib, 2)
    return tdx_measure.write_event_log(
        r0.simulated_rtmr0_events(shape, b"", tables)
        + tdx_measure.direct_boot_events(kernel, CMDLINE, INITRD)
    )


def _verify(lab: dict[str, Any], quoted_log: bytes, sent_log: bytes | None, **policy: Any) -> Any:
    rtmrs = tdx_measure.replay_log(quoted_log)
    m = tdx_sim.SimMeasurements(bytes.fromhex("aa" * 48), rtmrs[0], rtmrs[1], rtmrs[2])
    quote = tdx_sim.make_quote(lab["pki"], m, tdx_verify.expected_report_data(NONCE, BINDING))
    pol = tdx_verify.policy_from_mapping({**lab["policy"], **policy})
    return tdx_verify.verify_quote(quote, lab["coll"], NOW + 60, pol, NONCE, BINDING, lab["trust"], sent_log)


def test_rtmr0_is_checked_by_its_events_and_not_waived(lab: dict[str, Any]) -> None:
    log = _launch(lab)
    verdict = _verify(lab, log, log)
    assert verdict.ok, verdict.reasons
    assert verdict.rtmr0_events == 4 and verdict.to_dict()["unchecked"] == []
    assert not any("NOT checked" in w for w in verdict.warnings)


def test_an_extra_acpi_table_is_refused_on_rtmr0_naming_it(lab: dict[str, Any]) -> None:
    log = _launch(lab, tables=(b"SSDT" + bytes(40),))
    verdict = _verify(lab, log, log)
    assert verdict.codes() == ["rtmr0"]
    assert "RTMR0 event 4 (EV_PLATFORM_CONFIG_FLAGS 'ACPI DATA'" in verdict.reasons[0].message


def test_no_log_or_another_launchs_log_is_refused(lab: dict[str, Any]) -> None:
    log = _launch(lab, memory_mib=4096)
    missing = _verify(lab, log, None)
    assert missing.codes() == ["rtmr0"] and "no event log" in missing.reasons[0].message
    other = _verify(lab, log, _launch(lab))  # the expected launch's log, sent for another launch's quote
    assert other.codes() == ["rtmr0"] and "not the log of this quote" in other.reasons[0].message


def test_without_a_reference_rtmr0_needs_a_value_or_a_waiver_as_before(lab: dict[str, Any]) -> None:
    log = _launch(lab)
    verdict = _verify(lab, log, log, rtmr0_reference=None)
    assert verdict.codes() == ["measurement_missing"] and verdict.rtmr0_events is None


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"waivers": {"rtmr0": "not computed"}}, "drop its waiver or value"),
        ({"rtmr0": "bb" * 48}, "drop its waiver or value"),
        ({"rtmr0_reference": {"kit_rtmr0": 1}}, "rtmr0_reference.*names no VM shape"),
    ],
)
def test_a_reference_with_a_waiver_or_value_or_a_bad_one_is_refused(
    lab: dict[str, Any], change: dict[str, Any], said: str
) -> None:
    with pytest.raises(tdx_verify.PolicyError, match=said):
        tdx_verify.policy_from_mapping({**lab["policy"], **change})
