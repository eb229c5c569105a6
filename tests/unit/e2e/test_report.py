"""The prove.yml phase table: durations, order checks, SIMULATED label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import phase_report as er

TIMES = {
    "start": 100.0,
    "registered": 101.0,
    "tdx_done": 102.0,
    "bound": 103.5,
    "keylime_start": 110.0,
    "keylime_done": 113.0,
    "delivered": 115.0,
    "fetched": 160.0,
    "verified": 161.5,
}


def test_phases_and_json(tmp_path: Path) -> None:
    report = er.write_report(str(tmp_path / "p.json"), TIMES, 40.0, simulated=True)
    got = {p["phase"]: p["seconds"] for p in json.loads((tmp_path / "p.json").read_text())["phases"]}
    assert got["TDX attestation (quote over the claims)"] == 1.0
    assert got["Binding (registrar, agent port, SSH pin)"] == 1.5
    assert got["Reference + agent start + registration"] == 1.0
    assert got["Keylime attestation"] == 3.0
    assert got["Payload delivery"] == 2.0
    assert got["Proving"] == 40.0
    assert got["Total"] == 61.5
    assert "SIMULATED" in report["table"]
    assert [r["phase"] for r in report["phases"]][:5] == [
        "Keylime attestation",
        "TDX attestation (quote over the claims)",
        "Binding (registrar, agent port, SSH pin)",
        "Payload delivery",
        "Proving",
    ]


def test_not_simulated_says_nothing_simulated(tmp_path: Path) -> None:
    assert "SIMULATED" not in er.write_report(str(tmp_path / "p.json"), TIMES, 1.0, simulated=False)["table"]


@pytest.mark.parametrize("bad", [{"keylime_done": 109.0}, {"verified": 150.0}])
def test_out_of_order_timestamps_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(er.ReportError, match="before"):
        er.phases({**TIMES, **bad}, 1.0)


def test_missing_timestamp_and_negative_proving_are_refused() -> None:
    with pytest.raises(er.ReportError, match="missing"):
        er.phases({k: v for k, v in TIMES.items() if k != "delivered"}, 1.0)
    with pytest.raises(er.ReportError, match="negative"):
        er.phases(TIMES, -1.0)
