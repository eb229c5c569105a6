"""SIMULATED TDX path: passes with the right image, fails the same policy for each wrong input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import tdx_sim
import yaml
from ansible_collections.teeproof.kit.plugins.module_utils import tdx_measure, tdx_quote, tdx_verify
from cryptography.hazmat.primitives import serialization

NOW = 1760000000
NONCE = bytes.fromhex("5eed") * 16
BINDING = b"client-ephemeral-public-key"
KIT_TDX = Path(__file__).resolve().parents[3] / "inventories" / "local" / "group_vars" / "all" / "kit_tdx.yml"
SIM_ROOT_PIN = str(yaml.safe_load(KIT_TDX.read_text())["kit_tdx_sim_root_sha256"])


def _fake_kernel() -> bytes:
    """A minimal PE32+ image with a Linux boot header, enough for Authenticode + QEMU patching."""
    img = bytearray(0x3000)
    img[0:2] = b"MZ"
    img[0x3C:0x40] = (0x80).to_bytes(4, "little")
    img[0x80:0x84] = b"PE\x00\x00"
    img[0x86:0x88] = (1).to_bytes(2, "little")  # one section
    img[0x94:0x96] = (240).to_bytes(2, "little")  # optional header size
    opt = 0x98
    img[opt : opt + 2] = (0x20B).to_bytes(2, "little")
    img[opt + 60 : opt + 64] = (0x1000).to_bytes(4, "little")  # SizeOfHeaders
    img[opt + 108 : opt + 112] = (16).to_bytes(4, "little")  # NumberOfRvaAndSizes
    sec = opt + 240
    img[sec : sec + 8] = b".text\x00\x00\x00"
    img[sec + 16 : sec + 24] = (0x2000).to_bytes(4, "little") + (0x1000).to_bytes(4, "little")
    img[0x202:0x206] = b"HdrS"
    img[0x206:0x208] = (0x20F).to_bytes(2, "little")
    img[0x211] = 0x01
    img[0x1000:0x3000] = bytes(range(256)) * 32
    return bytes(img)


@pytest.fixture(scope="module")
def lab() -> dict[str, Any]:
    pki = tdx_sim.create_pki(NOW)
    collateral = tdx_verify.collateral_from_json(json.dumps(tdx_sim.make_collateral(pki, NOW)))
    kernel, initrd, cmdline = _fake_kernel(), b"initrd-bytes" * 100, "console=ttyS0 root=/dev/vda1"
    expected = tdx_measure.expected_measurements(kernel, initrd, cmdline)
    measurements = tdx_sim.SimMeasurements(
        mr_td=bytes.fromhex("aa" * 48),
        rtmr0=bytes.fromhex("bb" * 48),
        rtmr1=bytes.fromhex(expected["rtmr1"]),
        rtmr2=bytes.fromhex(expected["rtmr2"]),
    )
    policy = tdx_verify.policy_from_mapping(
        {"mr_td": "aa" * 48, "rtmr0": "bb" * 48, "rtmr1": expected["rtmr1"], "rtmr2": expected["rtmr2"]}
    )
    trust = tdx_verify.TrustAnchors(
        allow_simulated=True, simulated_root_der=pki.root_der, simulated_root_sha256=SIM_ROOT_PIN
    )
    return {"pki": pki, "coll": collateral, "m": measurements, "policy": policy, "trust": trust}


def _verify(lab: dict[str, Any], m: tdx_sim.SimMeasurements, nonce: bytes = NONCE, **kw: Any) -> Any:
    rd = tdx_verify.expected_report_data(nonce, BINDING)
    quote = tdx_sim.make_quote(kw.pop("pki", lab["pki"]), m, rd)
    trust = kw.pop("trust", lab["trust"])
    return tdx_verify.verify_quote(quote, lab["coll"], NOW + 60, lab["policy"], NONCE, BINDING, trust)


def test_simulated_quote_passes_with_the_right_image(lab: dict[str, Any]) -> None:
    verdict = _verify(lab, lab["m"])
    assert verdict.ok, verdict.reasons
    assert verdict.simulated and verdict.tcb_status == "UpToDate"
    assert any("SIMULATED" in w for w in verdict.warnings)
    assert verdict.to_dict()["simulated"] is True


def test_simulated_quote_is_structurally_a_v4_quote(lab: dict[str, Any]) -> None:
    import dcap_qvl

    raw = tdx_sim.make_quote(lab["pki"], lab["m"], bytes(64))
    ours = tdx_quote.parse_quote(raw)
    theirs = dcap_qvl.parse_quote(raw)
    assert ours.version == 4 and theirs.is_tdx() and bytes(theirs.report.mr_td) == lab["m"].mr_td
    assert ours.header.user_data.startswith(tdx_sim.SIM_MARKER)


def test_wrong_rtmr_fails(lab: dict[str, Any]) -> None:
    verdict = _verify(lab, replace(lab["m"], rtmr1=b"\x01" * 48))
    assert verdict.codes() == ["rtmr1"]


def test_stale_nonce_fails(lab: dict[str, Any]) -> None:
    verdict = _verify(lab, lab["m"], nonce=b"an-old-nonce")
    assert verdict.codes() == ["report_data"]


def test_debug_td_fails(lab: dict[str, Any]) -> None:
    m = replace(lab["m"], td_attributes=tdx_sim.TD_ATTR_SEPT_VE_DISABLE | tdx_sim.TD_ATTR_DEBUG)
    verdict = _verify(lab, m)
    assert "debug" in verdict.codes() and not verdict.ok
    # dcap-qvl also refuses debug TDs on its own
    assert "Debug mode" in tdx_verify.reasons_text(verdict.reasons)


def test_wrong_mrtd_fails(lab: dict[str, Any]) -> None:
    verdict = _verify(lab, replace(lab["m"], mr_td=b"\x02" * 48))
    assert verdict.codes() == ["mr_td"]


def test_all_reasons_are_listed_together(lab: dict[str, Any]) -> None:
    m = replace(lab["m"], mr_td=b"\x02" * 48, rtmr2=b"\x03" * 48)
    verdict = _verify(lab, m, nonce=b"old")
    assert verdict.codes() == ["mr_td", "rtmr2", "report_data"]


def test_missing_sept_ve_disable_fails_and_cannot_be_relaxed_through_dcap_qvl(lab: dict[str, Any]) -> None:
    m = replace(lab["m"], td_attributes=0)
    strict = _verify(lab, m)
    assert {"dcap_qvl", "sept_ve_disable"} <= set(strict.codes())
    relaxed = replace(lab["policy"], require_sept_ve_disable=False)
    rd = tdx_verify.expected_report_data(NONCE, BINDING)
    raw = tdx_sim.make_quote(lab["pki"], m, rd)
    verdict = tdx_verify.verify_quote(raw, lab["coll"], NOW + 60, relaxed, NONCE, BINDING, lab["trust"])
    assert set(verdict.codes()) == {"dcap_qvl"} and "cannot relax" in verdict.reasons[-1].message


def test_simulated_quotes_rejected_when_simulation_is_not_enabled(lab: dict[str, Any]) -> None:
    """Outside the lab (allow_simulated false) a simulated quote is refused, and the reason says why,
    even when the caller also hands over the simulated root."""
    off = tdx_verify.TrustAnchors(
        allow_simulated=False, simulated_root_der=lab["pki"].root_der, simulated_root_sha256=SIM_ROOT_PIN
    )
    for trust in (off, tdx_verify.TrustAnchors()):
        verdict = _verify(lab, lab["m"], trust=trust)
        assert not verdict.ok and verdict.codes() == ["simulated_refused"]
        assert "SIMULATED" in verdict.reasons[0].message and "lab inventory" in verdict.reasons[0].message


def test_the_fixed_simulated_root_is_the_one_the_lab_inventory_pins() -> None:
    import hashlib

    a, b = tdx_sim.create_pki(NOW), tdx_sim.create_pki(NOW + 99)
    assert a.root_der == b.root_der
    assert hashlib.sha256(a.root_der).hexdigest() == SIM_ROOT_PIN
    assert a.pck_ca.public_bytes(serialization.Encoding.DER) != b.pck_ca.public_bytes(
        serialization.Encoding.DER
    )


def test_simulation_needs_the_pin_and_refuses_another_root_file(lab: dict[str, Any]) -> None:
    rogue = tdx_sim.create_pki(NOW, fixed_root=False)
    unpinned = replace(lab["trust"], simulated_root_sha256=None)
    assert _verify(lab, lab["m"], trust=unpinned).codes() == ["simulated_root_pin"]
    # A root file swapped for another one (e.g. in the host-writable run folder): refused before any check.
    swapped = replace(lab["trust"], simulated_root_der=rogue.root_der)
    verdict = _verify(lab, lab["m"], trust=swapped, pki=rogue)
    assert verdict.codes() == ["simulated_root_pin"] and "not the pinned" in verdict.reasons[0].message


def test_quote_from_another_test_pki_is_rejected(lab: dict[str, Any]) -> None:
    rogue = tdx_sim.create_pki(NOW, fixed_root=False)
    verdict = _verify(lab, lab["m"], pki=rogue)
    assert not verdict.ok and verdict.codes() == ["dcap_qvl"]


def test_with_simulation_on_only_the_simulated_root_counts(
    lab: dict[str, Any], intel_quote: bytes, intel_collateral: Any
) -> None:
    """In lab mode an Intel-signed quote is not accepted either: exactly one root is trusted."""
    verdict = tdx_verify.verify_quote(intel_quote, intel_collateral, 1752919234, trust=lab["trust"])
    assert not verdict.ok and verdict.codes() == ["dcap_qvl"]
    assert "simulated" in verdict.reasons[0].message


def test_required_measurement_without_value_or_waiver_fails_closed(lab: dict[str, Any]) -> None:
    exp = {k: v.hex() for k, v in lab["policy"].expected.items() if k != "rtmr0"}
    strict = tdx_verify.policy_from_mapping({**exp, "required": ["mr_td", "rtmr0", "rtmr1", "rtmr2"]})
    rd = tdx_verify.expected_report_data(NONCE, BINDING)
    raw = tdx_sim.make_quote(lab["pki"], lab["m"], rd)
    verdict = tdx_verify.verify_quote(raw, lab["coll"], NOW + 60, strict, NONCE, BINDING, lab["trust"])
    assert verdict.codes() == ["measurement_missing"] and "rtmr0" in verdict.reasons[0].message
    waived = tdx_verify.policy_from_mapping(
        {**exp, "required": ["mr_td", "rtmr0", "rtmr1", "rtmr2"], "waivers": {"rtmr0": "not computed here"}}
    )
    ok = tdx_verify.verify_quote(raw, lab["coll"], NOW + 60, waived, NONCE, BINDING, lab["trust"])
    assert ok.ok, ok.reasons
    assert ok.to_dict()["unchecked"] == ["rtmr0"] and ok.to_dict()["waivers"] == {
        "rtmr0": "not computed here"
    }
    assert any("rtmr0 NOT checked" in w for w in ok.warnings)


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        ({"required": ["rtmr9"]}, "not a measurement"),
        ({"waivers": {"mrtd": "x"}}, "not a measurement"),
        ({"waivers": {"rtmr0": ""}}, "needs a reason"),
        ({"waivers": ["rtmr0"]}, "mapping"),
        ({"rtmr0": "bb" * 48, "waivers": {"rtmr0": "x"}}, "has an expected value"),
    ],
)
def test_bad_waivers_are_refused(policy: dict[str, Any], match: str) -> None:
    with pytest.raises(tdx_verify.PolicyError, match=match):
        tdx_verify.policy_from_mapping(policy)


def test_expired_simulated_collateral_fails(lab: dict[str, Any]) -> None:
    rd = tdx_verify.expected_report_data(NONCE, BINDING)
    raw = tdx_sim.make_quote(lab["pki"], lab["m"], rd)
    late = NOW + 31 * 86400
    verdict = tdx_verify.verify_quote(raw, lab["coll"], late, lab["policy"], NONCE, BINDING, lab["trust"])
    assert not verdict.ok and "dcap_qvl" in verdict.codes()


def test_report_data_must_be_64_bytes(lab: dict[str, Any]) -> None:
    with pytest.raises(tdx_sim.SimError, match="64 bytes"):
        tdx_sim.make_quote(lab["pki"], lab["m"], b"short")


def test_setup_replaces_a_pki_under_another_root(tmp_path: Any) -> None:
    tdx_sim.save_pki(tdx_sim.create_pki(NOW, fixed_root=False), tmp_path)
    pki = tdx_sim.setup_state(tmp_path, NOW)
    assert (tmp_path / "root.der").read_bytes() == pki.root_der == tdx_sim.create_pki(NOW).root_der


def test_state_round_trip(tmp_path: Any) -> None:
    pki = tdx_sim.setup_state(tmp_path, NOW)
    again = tdx_sim.setup_state(tmp_path, NOW + 10)
    assert again.root_der == pki.root_der
    assert (tmp_path / "attestation_key.pem").stat().st_mode & 0o077 == 0
    assert json.loads((tmp_path / "collateral.meta.json").read_text())["simulated"] is True
    coll = tdx_verify.load_collateral(tmp_path / "collateral.json")
    raw = tdx_sim.make_quote(again, tdx_sim.SimMeasurements(*(bytes(48),) * 4), bytes(64))
    trust = tdx_verify.TrustAnchors(True, (tmp_path / "root.der").read_bytes(), SIM_ROOT_PIN)
    verdict = tdx_verify.verify_quote(raw, coll, NOW + 20, trust=trust)
    assert verdict.ok and verdict.simulated
