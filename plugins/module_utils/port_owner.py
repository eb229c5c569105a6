"""Who listens on a TCP port: a systemd unit's own process, a process this host cannot see, or nobody.

A service can show as active while another process holds its port (on a shared host network, another
container's service). The kit's service roles therefore wait until the unit's *own* processes listen:
the listening socket's inode (from /proc/net/tcp and tcp6) must belong to a process in the unit's
control group. Standard library only; the /proc root is a parameter so that tests use recorded files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class PortOwner:
    """The state of one port: ``ours`` (a process of the unit), ``other`` (another process we can see),
    ``hidden`` (listening, but no process of this host holds it) or ``free``."""

    port: int
    state: str
    pid: int | None = None
    cgroup: str = ""

    def describe(self, unit: str) -> str:
        if self.state == "ours":
            return f"{unit} listens on {self.port} (pid {self.pid})"
        if self.state == "other":
            return f"port {self.port} is held by pid {self.pid} ({self.cgroup or 'no cgroup'}), not by {unit}"
        if self.state == "hidden":
            return (
                f"port {self.port} is held by a process this host cannot see (another container on the same "
                f"host network, or the host itself), not by {unit}"
            )
        return f"nothing listens on port {self.port}"


def listening_inodes(table: str) -> dict[int, set[int]]:
    """Port -> inodes of the LISTEN sockets in one /proc/net/tcp or tcp6 table."""
    out: dict[int, set[int]] = {}
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        port = int(fields[1].rsplit(":", 1)[1], 16)
        out.setdefault(port, set()).add(int(fields[9]))
    return out


def socket_pids(proc: Path) -> dict[int, int]:
    """Socket inode -> pid, for every process whose file descriptors we may read."""
    owners: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owners.setdefault(int(target[8:-1]), int(entry.name))
    return owners


def unit_cgroup(proc: Path, pid: int) -> str:
    try:
        text = (proc / str(pid) / "cgroup").read_text(encoding="utf-8")
    except OSError:
        return ""
    # cgroup v2: "0::/system.slice/keylime_verifier.service"; v1: the name=systemd line
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and (parts[0] == "0" or parts[1] == "name=systemd"):
            return parts[2]
    return ""


def owners(ports: list[int], unit: str, proc: Path = Path("/proc")) -> list[PortOwner]:
    """The owner of each port, judged from ``proc`` (net/tcp, net/tcp6, fd links, cgroups)."""
    listening: dict[int, set[int]] = {}
    for name in ("tcp", "tcp6"):
        try:
            table = (proc / "net" / name).read_text(encoding="utf-8")
        except OSError:
            continue
        for port, inodes in listening_inodes(table).items():
            listening.setdefault(port, set()).update(inodes)
    pids = socket_pids(proc) if any(p in listening for p in ports) else {}
    want = f"/{unit}.service" if not unit.endswith(".service") else f"/{unit}"
    result: list[PortOwner] = []
    for port in ports:
        if port not in listening:
            result.append(PortOwner(port, "free"))
            continue
        seen = [pids[i] for i in sorted(listening[port]) if i in pids]
        if not seen:
            result.append(PortOwner(port, "hidden"))
            continue
        groups = {pid: unit_cgroup(proc, pid) for pid in seen}
        ours = [pid for pid, group in groups.items() if group.endswith(want) or f"{want}/" in group]
        if ours:
            result.append(PortOwner(port, "ours", ours[0], groups[ours[0]]))
        else:
            result.append(PortOwner(port, "other", seen[0], groups[seen[0]]))
    return result
