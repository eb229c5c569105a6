"""The session benchmark's arithmetic and its committed report (benchmarks/session.py).

The README and docs/session.md quote the committed report; these tests recompute its figures from its own raw
measurements, so a hand-edited or stale figure fails here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "benchmarks" / "session.py"
REPORT = ROOT / "benchmarks" / "results" / "session.json"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_session", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load()


def _report() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(REPORT.read_text())
    return loaded


def test_overhead_model_is_attestation_plus_requests_over_proving() -> None:
    assert bench.overhead_model(10.0, 0.5, 5.0, [1, 2]) == pytest.approx([2.1, 1.1])


@pytest.mark.parametrize(
    ("attestation", "per_request", "proving"),
    [(1.744, 0.0126, 0.589), (155.0, 0.126, 6.3), (0.0, 0.0, 1.0), (3.0, 0.04, 1.0)],
)
def test_n_for_goal_is_the_smallest_n_within_the_goal(
    attestation: float, per_request: float, proving: float
) -> None:
    n = bench.n_for_goal(attestation, per_request, proving)
    goal = bench.GOAL_OVERHEAD
    assert n is not None
    assert bench.overhead_model(attestation, per_request, proving, [n])[0] <= goal
    if n > 1:
        assert bench.overhead_model(attestation, per_request, proving, [n - 1])[0] > goal


def test_n_for_goal_is_none_when_each_request_alone_costs_more_than_the_goal() -> None:
    assert bench.n_for_goal(1.0, 0.06, 1.0) is None


def test_committed_report_amortisation_follows_from_its_measurements() -> None:
    report = _report()
    assert report["command"] == "bin/kit bench session --lab"
    assert [s["n"] for s in report["lab_sessions"]] == [1, 10, 50]
    assert bench.amortisation(report) == report["amortisation"]
    for run in report["lab_sessions"]:
        p = run["phases"]
        expected = (p["attestation_total_s"] + p["session_s"] - p["proving_s"]) / p["proving_s"]
        assert run["overhead"] == pytest.approx(expected, abs=1e-3)
        assert p["proofs"] == run["n"]


def test_committed_report_speedups_follow_from_its_medians() -> None:
    report = _report()
    cmp = report["resident_vs_snarkjs_cli"]
    assert cmp["snarkjs_cli_s"] == report["provers"]["snarkjs_cli"]["median_s"]
    assert cmp["speedup_latency"] == pytest.approx(cmp["snarkjs_cli_s"] / cmp["resident_latency_s"], abs=0.01)
    assert cmp["speedup_throughput"] == pytest.approx(
        cmp["snarkjs_cli_s"] / cmp["resident_throughput_s"], abs=0.01
    )


def _replot(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--replot", str(path)], capture_output=True, text=True, check=False
    )


def test_replot_draws_the_chart_from_a_report(tmp_path: Path) -> None:
    copy = tmp_path / "session.json"
    shutil.copy(REPORT, copy)
    done = _replot(copy)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "session.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the report"),
        ("{not json", "cannot read the report"),
        ('{"kit_bench": "rebuild"}', "not a session"),
    ],
)
def test_replot_refuses_a_missing_broken_or_foreign_report(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    done = _replot(path)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "report.png").exists()


def test_auth_cost_times_every_wire_and_the_reads_really_open() -> None:
    cost = bench.auth_cost_ms(repeat=3)
    assert set(cost) == {"base_mode_request_ms", "psk_mode_request_ms", "authenticated_read_ms", "lease_ms"}
    assert all(isinstance(v, float) and v > 0 for v in cost.values())
