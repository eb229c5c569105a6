"""The lab's SIMULATED provider writes the CC event log its quote's RTMRs replay from, and RTMR0's events
follow the launch's VM shape and its extra ACPI tables, so the lab's RTMR0 check is the real one."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import rtmr0_reference as r0
from ansible_collections.teeproof.kit.plugins.module_utils import tdx_measure, tdx_quote
from test_sim import _fake_kernel

ROOT = Path(__file__).resolve().parents[3]
CMDLINE = "console=ttyS0 root=/dev/vda1"


@pytest.fixture(scope="module")
def boot(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sim-log")
    state = d / "state"
    subprocess.run(
        [sys.executable, str(ROOT / "bin" / "tdx-sim-provider"), "setup", "--state", str(state)],
        check=True,
        capture_output=True,
    )
    (d / "vmlinuz").write_bytes(_fake_kernel())
    (d / "initrd.img").write_bytes(b"initrd" * 500)
    (d / "ssdt.aml").write_bytes(b"SSDT" + bytes(60))
    return {"dir": d, "state": state}


def _quote(boot: dict[str, Path], *extra: str) -> dict[str, Any]:
    argv = [sys.executable, str(ROOT / "bin" / "tdx-sim-provider"), "quote", "--state", str(boot["state"])]
    argv += ["--kernel", str(boot["dir"] / "vmlinuz"), "--initrd", str(boot["dir"] / "initrd.img")]
    argv += ["--cmdline", CMDLINE, "--report-data", "00" * 64, *extra]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _check(answer: dict[str, Any], memory_mib: int = 2048, smp: int = 2) -> dict[str, Any]:
    quote = tdx_quote.parse_quote(base64.b64decode(answer["quote_b64"]))
    rtmrs = [quote.report.rtmr(i) for i in range(4)]
    log = base64.b64decode(answer["event_log_b64"])
    return r0.check(log, rtmrs, r0.simulated_reference(memory_mib, smp, b""))


def test_the_quote_comes_with_the_log_its_rtmrs_replay_from(boot: dict[str, Path]) -> None:
    answer = _quote(boot)
    summary = _check(answer)
    assert summary["rtmr0_events"] == 4 and summary["shape"]["simulated"]
    expected = tdx_measure.expected_measurements(
        (boot["dir"] / "vmlinuz").read_bytes(), (boot["dir"] / "initrd.img").read_bytes(), CMDLINE
    )
    assert answer["rtmr"][1:] == [expected["rtmr1"], expected["rtmr2"]]


def test_an_extra_acpi_table_is_refused_on_rtmr0_naming_it(boot: dict[str, Path]) -> None:
    answer = _quote(boot, "--acpitable", str(boot["dir"] / "ssdt.aml"))
    with pytest.raises(r0.Rtmr0Error) as caught:
        _check(answer)
    assert caught.value.kind == "unknown" and "RTMR0 event 4 (EV_PLATFORM_CONFIG_FLAGS 'ACPI DATA'" in str(
        caught.value
    )


def test_another_vm_shape_is_refused_on_its_td_hob(boot: dict[str, Path]) -> None:
    answer = _quote(boot, "--memory-mib", "4096")
    with pytest.raises(r0.Rtmr0Error) as caught:
        _check(answer)
    assert caught.value.kind == "changed" and "'TdxTable'" in str(caught.value)
    assert _check(answer, memory_mib=4096)["rtmr0_events"] == 4
