"""tools/lab_status.py (bin/kit status): the status run's JSON as one report, exit 0 / 3 / 1."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import lab_status
import pytest

VECTORS = Path(__file__).parent / "vectors"
TABLE = {
    "kit_lab": "site",
    "ports": {"verifier": 8881, "registrar": 8890, "registrar_tls": 8891},
    "folder": "/kit/build/lab/site",
}


def guest(running: bool, **kw: Any) -> dict[str, Any]:
    procs = {"qemu": running, "provider": running}
    return {
        "action": "teeproof.kit.td_launch",
        "running": running,
        "processes": procs,
        "matches_spec": running,
        "ssh_port": 2222,
        "agent_port": 9002,
        "session_port": 9010,
        "serial_log": "/kit/build/lab/site/td-host/serial.log",
        "simulated": True,
        "notice": "SIMULATED: lab launch",
        **({"ssh_ready": True} if running else {}),
        **kw,
    }


def containers(*states: tuple[str, bool]) -> dict[str, Any]:
    return {
        "action": "containers.podman.podman_container_info",
        "containers": [
            {"Name": name, "State": {"Status": "up" if up else "exited", "Running": up, "StartedAt": "T0"}}
            for name, up in states
        ],
    }


def run_of(*results: dict[str, Any]) -> dict[str, Any]:
    table = {"action": "ansible.builtin.debug", "msg": TABLE}
    tasks = [
        {"task": {"name": f"task {i}"}, "hosts": {"build-host": result}}
        for i, result in enumerate([table, *results])
    ]
    return {"plays": [{"play": {"name": "lab"}, "tasks": tasks}], "stats": {}}


def report(run: object) -> tuple[int, str]:
    out = io.StringIO()
    rc = lab_status.main([], stdin=io.StringIO(json.dumps(run)), stdout=out)
    return rc, out.getvalue()


def test_a_running_lab_is_one_report_with_its_ports_and_container() -> None:
    rc, text = report(run_of(guest(True), containers(("kit-client", True))))
    assert rc == lab_status.RUNNING
    lines = text.splitlines()
    assert lines[0] == f"{lab_status.MARK_RUNNING} kit lab 'site': running"
    assert "Guest: running (qemu up, provider up), SSH answers" in text
    assert "SIMULATED" in text
    ports = next(line for line in lines if "Ports:" in line)
    for part in ("verifier 127.0.0.1:8881", "registrar_tls 127.0.0.1:8891", "guest_session 127.0.0.1:9010"):
        assert part in ports
    assert "Container: kit-client: up since T0" in text
    assert "Stop: bin/kit stop" in text
    assert "TASK" not in text and "PLAY RECAP" not in text


def test_a_stopped_lab_says_how_to_start_it() -> None:
    rc, text = report(run_of(guest(False), containers()))
    assert rc == lab_status.STOPPED
    assert text.startswith(f"{lab_status.MARK_STOPPED} kit lab 'site': stopped")
    assert "Guest: not running (qemu down, provider down)" in text
    assert "Container: none" in text and "Start: bin/kit site" in text


def test_a_half_stopped_lab_and_a_stale_guest_are_named() -> None:
    half = guest(False, processes={"qemu": False, "provider": True})
    assert "partly running (qemu down, provider up): bin/kit stop cleans up" in report(run_of(half))[1]
    stale = guest(True, matches_spec=False)
    assert "launched from another spec" in report(run_of(stale))[1]


def test_a_lab_whose_td_host_container_is_gone_is_stopped_not_failed() -> None:
    """playbooks/lab.yml ignores an unreachable TD host (its container removed): nothing of the guest runs."""
    gone = {"action": "teeproof.kit.td_launch", "unreachable": True, "msg": "no such container"}
    rc, text = report(run_of(gone, containers()))
    assert rc == lab_status.STOPPED
    assert "Error" not in text and "Guest: not running (the TD host's container is not there)" in text


def test_a_failed_status_run_names_the_task() -> None:
    failed = {"action": "teeproof.kit.td_launch", "failed": True, "msg": "no image"}
    rc, text = report(run_of(failed))
    assert rc == lab_status.FAILED
    assert text.startswith(f"{lab_status.MARK_FAILED} kit lab 'site': the status run failed")
    assert "Error: task 1: no image" in text


@pytest.mark.parametrize(
    "text",
    ["", "PLAY [x] ***", json.dumps({"plays": [], "stats": {}}), json.dumps([1])],
)
def test_output_that_is_not_a_status_run_is_refused(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert lab_status.main([], stdin=io.StringIO(text), stdout=out) == lab_status.FAILED
    assert out.getvalue() == ""
    assert "bin/kit status: cannot read the status run" in capsys.readouterr().err


def _vector(name: str) -> str:
    return (VECTORS / name).read_text()


def test_a_recorded_run_beside_a_running_site_lab() -> None:
    """bin/kit status's JSON, recorded on 2026-12-05 beside the lab bin/kit site left running."""
    out = io.StringIO()
    rc = lab_status.main([], stdin=io.StringIO(_vector("lab-status-running.json")), stdout=out)
    text = out.getvalue()
    assert rc == lab_status.RUNNING
    assert text.startswith(f"{lab_status.MARK_RUNNING} kit lab 'site': running")
    # recorded before the TD's vTPM moved into the guest: an older kit's swtpm is listed after the known ones
    assert "Guest: running (qemu up, provider up, swtpm up), SSH answers" in text
    assert "verifier 127.0.0.1:8881, registrar 127.0.0.1:8890" in text
    assert "guest_session 127.0.0.1:9010" in text
    assert "Container: kit-client: running since 2026-12-05T" in text


def test_a_recorded_run_with_the_guest_stopped_and_the_container_up() -> None:
    out = io.StringIO()
    rc = lab_status.main([], stdin=io.StringIO(_vector("lab-status-guest-stopped.json")), stdout=out)
    assert rc == lab_status.STOPPED
    text = out.getvalue()
    assert text.startswith(f"{lab_status.MARK_RUNNING} kit lab 'site': partly running")
    assert "Guest: not running (qemu down, provider down, swtpm down)" in text
    assert "Stop: bin/kit stop" in text and "Start: bin/kit site" in text
