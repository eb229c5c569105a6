"""teeproof.kit.tdx_quote_verify with an RTMR0 reference: the event log the quote came with is checked, and
a missing, foreign or lengthened log is refused naming why (SIMULATED quotes from the lab's test PKI)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import tdx_sim
from ansible_collections.teeproof.kit.plugins.module_utils import rtmr0_reference as r0
from ansible_collections.teeproof.kit.plugins.module_utils import tdx_measure, tdx_verify
from ansible_collections.teeproof.kit.plugins.modules import tdx_quote_verify as mod
from test_sim import NONCE, NOW, SIM_ROOT_PIN, _fake_kernel

CMDLINE = "console=ttyS0 root=/dev/vda1"
INITRD = b"initrd" * 64
BINDING = b"\x42" * 64


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("lab")
    pki = tdx_sim.create_pki(NOW)
    (folder / "collateral.json").write_text(json.dumps(tdx_sim.make_collateral(pki, NOW)))
    (folder / "root.der").write_bytes(pki.root_der)
    expected = tdx_measure.expected_measurements(_fake_kernel(), INITRD, CMDLINE)
    return {"pki": pki, "folder": folder, "expected": expected}


def _log(lab: dict[str, Any], tables: tuple[bytes, ...] = ()) -> bytes:
    kernel = bytes.fromhex(lab["expected"]["kernel_authenticode_sha384"])
    return tdx_measure.write_event_log(
        r0.simulated_rtmr0_events(r0.simulated_shape(2048, 2), b"fw", tables)
        + tdx_measure.direct_boot_events(kernel, CMDLINE, INITRD)
    )


def _params(lab: dict[str, Any], quoted: bytes, sent: bytes | None, **change: Any) -> dict[str, Any]:
    rtmrs = tdx_measure.replay_log(quoted)
    m = tdx_sim.SimMeasurements(bytes.fromhex("aa" * 48), rtmrs[0], rtmrs[1], rtmrs[2])
    quote = tdx_sim.make_quote(lab["pki"], m, tdx_verify.expected_report_data(NONCE, BINDING))
    params: dict[str, Any] = {
        "quote_b64": base64.b64encode(quote).decode(),
        "collateral_path": str(lab["folder"] / "collateral.json"),
        "now": NOW + 60,
        "nonce": NONCE.hex(),
        "binding": BINDING.hex(),
        "claims": None,
        "allow_simulated": True,
        "sim_root": str(lab["folder"] / "root.der"),
        "sim_root_sha256": SIM_ROOT_PIN,
        "event_log_b64": base64.b64encode(sent).decode() if sent is not None else None,
        "policy": {
            "mr_td": "aa" * 48,
            "rtmr1": lab["expected"]["rtmr1"],
            "rtmr2": lab["expected"]["rtmr2"],
            "required": ["mr_td", "rtmr0", "rtmr1", "rtmr2"],
            "rtmr0_reference": r0.simulated_reference(2048, 2, b"fw"),
        },
    }
    return {**params, **change}


def test_the_quote_passes_with_its_own_event_log(lab: dict[str, Any]) -> None:
    out = mod.run(_params(lab, _log(lab), _log(lab)))
    assert out["verdict"]["ok"] and out["verdict"]["rtmr0_events"] == 4 and out["verdict"]["unchecked"] == []


@pytest.mark.parametrize(
    ("quoted_tables", "sent", "said"),
    [
        ((), None, "rtmr0: the policy checks RTMR0 by its events, and the quote came with no event log"),
        ((b"SSDT" + bytes(32),), "own", r"rtmr0: .*RTMR0 event 4 \(EV_PLATFORM_CONFIG_FLAGS 'ACPI DATA'"),
        ((b"SSDT" + bytes(32),), "reference", "rtmr0: .*not the log of this quote"),
    ],
)
def test_a_missing_lengthened_or_foreign_log_is_refused_naming_why(
    lab: dict[str, Any], quoted_tables: tuple[bytes, ...], sent: str | None, said: str
) -> None:
    quoted = _log(lab, quoted_tables)
    log = {None: None, "own": quoted, "reference": _log(lab)}[sent]
    with pytest.raises(mod.VerifyFailed, match=said) as caught:
        mod.run(_params(lab, quoted, log))
    assert [r["code"] for r in caught.value.out["reasons"]] == ["rtmr0"]


def test_a_log_that_is_not_base64_is_named(lab: dict[str, Any]) -> None:
    with pytest.raises(mod.VerifyFailed, match="event_log_b64 is not valid base64"):
        mod.run(_params(lab, _log(lab), None, event_log_b64="not base64!"))


def test_a_policy_with_a_reference_and_a_waiver_fails_before_the_quote(lab: dict[str, Any]) -> None:
    params = _params(lab, _log(lab), _log(lab))
    params["policy"]["waivers"] = {"rtmr0": "cannot"}
    with pytest.raises(mod.VerifyFailed, match="drop its waiver or value") as caught:
        mod.run(params)
    assert "verdict" not in caught.value.out


def test_the_cli_checks_the_log_too(lab: dict[str, Any], tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    quoted = _log(lab, (b"SSDT" + bytes(32),))
    params = _params(lab, quoted, quoted)
    (tmp_path / "q").write_bytes(base64.b64decode(params["quote_b64"]))
    (tmp_path / "log").write_bytes(quoted)
    (tmp_path / "policy.json").write_text(json.dumps(params["policy"]))
    cli = [sys.executable, str(root / "bin" / "tdx-quote")]
    argv = [
        *cli,
        "verify",
        str(tmp_path / "q"),
        *("--collateral", params["collateral_path"], "--now", str(NOW + 60)),
        *("--policy", str(tmp_path / "policy.json"), "--nonce", NONCE.hex(), "--binding", BINDING.hex()),
        *("--allow-simulated", "--sim-root", params["sim_root"], "--sim-root-sha256", SIM_ROOT_PIN, "--json"),
    ]
    log = ["--event-log", str(tmp_path / "log")]
    refused = subprocess.run([*argv, *log], capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and "ACPI DATA" in refused.stdout
    ref = tmp_path / "ref.json"
    simulated = [*cli, "rtmr0-simulated", "--memory-mib", "2048", "--smp", "2", "--out", str(ref)]
    made = subprocess.run(simulated, capture_output=True, text=True, check=False)
    assert made.returncode == 0 and "SIMULATED" in made.stderr
    assert json.loads(ref.read_text()) == r0.simulated_reference(2048, 2, b"")
