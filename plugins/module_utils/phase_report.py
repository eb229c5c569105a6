"""The phase table of playbooks/prove.yml (shaped like the published benchmark's table)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# In the order prove.yml passes them: the agent registers first, then the TD's quote binds that agent's keys.
TIME_KEYS = (
    "start",
    "registered",
    "tdx_done",
    "bound",
    "keylime_start",
    "keylime_done",
    "delivered",
    "fetched",
    "verified",
)


class ReportError(ValueError):
    pass


def phases(times: Mapping[str, float], guest_proving_seconds: float) -> list[tuple[str, float]]:
    """Phase durations (seconds) from controller timestamps and the prover time measured in the guest."""
    missing = [k for k in TIME_KEYS if k not in times]
    if missing:
        raise ReportError(f"missing timestamps: {', '.join(missing)}")
    t = {k: float(times[k]) for k in TIME_KEYS}
    for a, b in itertools.pairwise(TIME_KEYS):
        if t[b] < t[a]:
            raise ReportError(f"timestamp {b} is before {a}")
    if guest_proving_seconds < 0:
        raise ReportError("guest_proving_seconds is negative")
    return [
        ("Keylime attestation", t["keylime_done"] - t["keylime_start"]),
        ("TDX attestation (quote over the claims)", t["tdx_done"] - t["registered"]),
        ("Binding (registrar, agent port, SSH pin)", t["bound"] - t["tdx_done"]),
        ("Payload delivery", t["delivered"] - t["keylime_done"]),
        ("Proving", guest_proving_seconds),
        ("Reference + agent start + registration", t["registered"] - t["start"]),
        ("Fetch + receipt and proof verification", t["verified"] - t["fetched"]),
        ("Total", t["verified"] - t["start"]),
    ]


def table(rows: list[tuple[str, float]], simulated: bool) -> str:
    width = max(len(name) for name, _unused in rows)
    lines = [f"{'phase'.ljust(width)} | seconds", f"{'-' * width}-|--------"]
    lines += [f"{name.ljust(width)} | {value:7.2f}" for name, value in rows]
    if simulated:
        lines.append(
            "SIMULATED: QEMU TCG guest, swtpm vTPM, SIMULATED TDX quotes (lab figures, not TDX hardware)"
        )
    lines.append(
        "Keylime attestation = tenant add -> verifier PASS seen; payload delivery = PASS seen -> autorun.sh "
        "started; proving = measured in the guest. Polling granularity ~1-3 s."
    )
    return "\n".join(lines)


def write_report(
    path: str, times: Mapping[str, float], guest_proving_seconds: float, simulated: bool
) -> dict[str, Any]:
    rows = phases(times, guest_proving_seconds)
    report: dict[str, Any] = {
        "simulated": simulated,
        "phases": [{"phase": name, "seconds": round(value, 3)} for name, value in rows],
        "timestamps": {k: float(times[k]) for k in TIME_KEYS},
        "table": table(rows, simulated),
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
