"""prove.yml refuses bad inputs in its first step, on the controller, before any host is touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.playbooks import run_prove


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (
            {"prove_mode": "session", "prove_session_inputs": ["/nope/in.json"]},
            "cannot statx '/nope/in.json'",
        ),
        (
            {"prove_mode": "session", "prove_session_inputs": ["IN"], "prove_session_expected": ["IN", "IN"]},
            "prove_session_expected empty or one file per input",
        ),
        ({"prove_mode": "session", "prove_session_concurrency": 0}, "prove_session_concurrency >= 1"),
        ({"prove_mode": "session", "prove_session_lifetime": 5}, "prove_session_lifetime 60 to 604800"),
        (
            {"prove_mode": "session", "prove_session_lifetime": 8 * 24 * 3600},
            "prove_session_lifetime 60 to 604800 seconds (the TD's cap)",
        ),
        ({"prove_mode": "session", "prove_session_lease_s": 0}, "prove_session_lease_s 1 to 86400"),
        ({"prove_mode": "session", "prove_session_lease_requests": 0}, "prove_session_lease_requests 1 to"),
        (
            {"prove_mode": "session", "prove_session_attestation_bound_s": 0},
            "prove_session_attestation_bound_s >= 1",
        ),
        ({"prove_mode": "batch"}, "prove_mode must be one of: job, session"),
        ({}, "job mode needs prove_input_file (the path of your private input JSON)"),
    ],
)
def test_bad_prove_inputs_stop_the_first_step(tmp_path: Path, extra: dict[str, object], reason: str) -> None:
    real = tmp_path / "in.json"
    real.write_text("{}")
    extra = json.loads(json.dumps(extra).replace('"IN"', json.dumps(str(real))))
    done = run_prove(tmp_path, extra)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert reason in " ".join(out.split()), out[-3000:]
    assert "Read the verifier's CA the agent must trust" not in out  # no later step ran
