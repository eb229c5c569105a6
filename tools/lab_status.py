#!/usr/bin/env python3
"""``bin/kit status``: what the local lab runs, as one report (the way ``systemctl status`` prints a unit).

Reads the JSON that ``ansible-playbook playbooks/lab.yml -e kit_lab_action=status`` prints with Ansible's
``ansible.posix.json`` output on standard input, and prints the lab's name, its guest (QEMU, vTPM and the
SIMULATED provider), its ports, folder, serial log and client containers, without Ansible's task recap.
Exit status as ``systemctl status``: 0 when the whole lab runs (its guest and every client container), 3 when
it does not or only in part, 1 when the status run failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

RUNNING, STOPPED, FAILED = 0, 3, 1
# The headline's marks, as systemctl status draws them.
MARK_RUNNING, MARK_STOPPED, MARK_FAILED = "\u25cf", "\u25cb", "\u00d7"
GUEST_ACTION = "teeproof.kit.td_launch"
CONTAINERS_ACTION = "containers.podman.podman_container_info"
# The guest's ports in the launcher's result, and their names in the lab's table (kit_lab_ports).
GUEST_PORTS = (("ssh", "ssh_port"), ("agent", "agent_port"), ("session", "session_port"))
# The order the report lists processes and ports in (Ansible's JSON output sorts them by name).
PROCESS_ORDER = ("qemu", "provider")
PORT_ORDER = ("verifier", "registrar", "registrar_tls", "guest_ssh", "guest_agent", "guest_session")


@dataclass
class LabStatus:
    """What the status run found: the lab's table, the guest's status, the containers, failed tasks."""

    lab: dict[str, Any] = field(default_factory=dict)
    guest: dict[str, Any] = field(default_factory=dict)
    containers: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _results(run: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for play in run.get("plays", []):
        for task in play.get("tasks", []):
            name = str(task.get("task", {}).get("name", ""))
            for result in task.get("hosts", {}).values():
                if isinstance(result, dict):
                    yield name, result


def parse(run: dict[str, Any]) -> LabStatus:
    """The lab's status from an ``ansible.posix.json`` run of playbooks/lab.yml (status)."""
    if not isinstance(run, dict) or "plays" not in run:
        raise ValueError("not the JSON output of an ansible-playbook run (no 'plays')")
    status = LabStatus()
    for name, result in _results(run):
        if result.get("unreachable"):
            # the TD host's container is gone (playbooks/lab.yml ignores it): nothing of the guest runs there
            if result.get("action", GUEST_ACTION) == GUEST_ACTION and not status.guest:
                status.guest = {"running": False, "processes": {}, "td_host_gone": True}
            continue
        if result.get("failed"):
            status.errors.append(f"{name}: {result.get('msg', 'failed')}")
            continue
        action = result.get("action")
        msg = result.get("msg")
        if action == "ansible.builtin.debug" and isinstance(msg, dict) and "kit_lab" in msg:
            status.lab = msg
        elif action == GUEST_ACTION:
            status.guest = result
        elif action == CONTAINERS_ACTION:
            status.containers = [c for c in result.get("containers", []) if isinstance(c, dict)]
    if not status.errors and not status.lab:
        raise ValueError("the run holds no report of the lab's table (playbooks/lab.yml's first play)")
    return status


def _guest_lines(guest: dict[str, Any]) -> list[str]:
    if not guest:
        return ["not reported"]
    if guest.get("td_host_gone"):
        return ["not running (the TD host's container is not there)"]
    procs = guest.get("processes", {})
    names = sorted(
        procs, key=lambda n: (PROCESS_ORDER.index(n) if n in PROCESS_ORDER else len(PROCESS_ORDER), n)
    )
    parts = ", ".join(f"{name} {'up' if procs[name] else 'down'}" for name in names)
    if guest.get("running"):
        state = f"running ({parts})" + (
            ", SSH answers" if guest.get("ssh_ready") else ", SSH does not answer yet"
        )
        if not guest.get("matches_spec"):
            state += "; launched from another spec than this checkout's (bin/kit site relaunches it)"
    elif any(procs.values()):
        state = f"partly running ({parts}): bin/kit stop cleans up"
    else:
        state = f"not running ({parts})" if parts else "not running"
    lines = [state]
    if guest.get("simulated"):
        lines.append(str(guest.get("notice", "SIMULATED")))
    return lines


def _port_line(lab: dict[str, Any], guest: dict[str, Any]) -> str:
    ports = dict(lab.get("ports", {}))
    for name, key in GUEST_PORTS:
        if key in guest:
            ports.setdefault(f"guest_{name}", guest[key])
    names = sorted(ports, key=lambda n: (PORT_ORDER.index(n) if n in PORT_ORDER else len(PORT_ORDER), n))
    return ", ".join(f"{name} 127.0.0.1:{ports[name]}" for name in names)


def _container_line(container: dict[str, Any]) -> str:
    state = container.get("State", {})
    line = f"{container.get('Name', '?')}: {state.get('Status', 'unknown')}"
    if state.get("Running") and state.get("StartedAt"):
        line += f" since {state['StartedAt']}"
    return line


def _parts(status: LabStatus) -> list[bool]:
    """Whether each part of the lab runs: the guest, then each client container."""
    return [bool(status.guest.get("running"))] + [
        bool(c.get("State", {}).get("Running")) for c in status.containers
    ]


def running(status: LabStatus) -> bool:
    """The whole lab runs: its guest and every client container."""
    return all(_parts(status)) and bool(status.containers)


def anything_runs(status: LabStatus) -> bool:
    return any(_parts(status)) or any(status.guest.get("processes", {}).values())


def render(status: LabStatus) -> str:
    """The report: one headline, then one labelled line per part (as ``systemctl status`` does)."""
    name = status.lab.get("kit_lab", "?")
    if status.errors:
        head = f"{MARK_FAILED} kit lab {name!r}: the status run failed"
    elif running(status):
        head = f"{MARK_RUNNING} kit lab {name!r}: running"
    elif anything_runs(status):
        head = f"{MARK_RUNNING} kit lab {name!r}: partly running"
    else:
        head = f"{MARK_STOPPED} kit lab {name!r}: stopped"
    rows: list[tuple[str, str]] = []
    guest = _guest_lines(status.guest)
    rows.append(("Guest", guest[0]))
    rows += [("", line) for line in guest[1:]]
    rows.append(("Ports", _port_line(status.lab, status.guest)))
    if status.lab.get("folder"):
        rows.append(("Folder", str(status.lab["folder"])))
    if status.guest.get("serial_log"):
        rows.append(("Serial log", str(status.guest["serial_log"])))
    containers = [_container_line(c) for c in status.containers] or ["none"]
    rows.append(("Container", containers[0]))
    rows += [("", line) for line in containers[1:]]
    rows += [("Error", error) for error in status.errors]
    if anything_runs(status):
        rows.append(("Stop", "bin/kit stop"))
    if not running(status) and not status.errors:
        rows.append(("Start", "bin/kit site"))
    width = max(len(label) for label, _unused in rows)
    body = [f"  {label.rjust(width)}{':' if label else ' '} {text}" for label, text in rows]
    return "\n".join([head, *body])


def main(argv: list[str] | None = None, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args(argv)
    text = stdin.read()
    try:
        status = parse(json.loads(text))
    except ValueError as err:
        print(f"bin/kit status: cannot read the status run: {err}", file=sys.stderr)
        print(text[-2000:], file=sys.stderr)
        return FAILED
    print(render(status), file=stdout)
    if status.errors:
        return FAILED
    return RUNNING if running(status) else STOPPED


if __name__ == "__main__":
    sys.exit(main())
