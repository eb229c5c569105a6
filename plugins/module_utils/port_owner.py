"""Who listens on a TCP port: a systemd unit's own process, a process this host cannot see, or nobody.

A service can show as active while another process holds its port (on a shared host network, another
container's service). The kit's service roles therefore wait until the unit's *own* processes listen:
the listening socket's inode (from /proc/net/tcp and tcp6) must belong to a process in the unit's
control group. Standard library only; the /proc root is a parameter so that tests use recorded files.
"""

from __future__ import annotations

import json
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


def socket_pids_as(proc: Path, uid: int, gid: int) -> dict[int, int]:
    """``socket_pids`` as seen by ``uid``:``gid``: a forked child drops to that user and runs the same scan.

    Reading another user's /proc/PID/fd needs CAP_SYS_PTRACE, which a container's root usually lacks; the
    service's own user may read its own processes' descriptors.
    """
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # the child: never returns
        status = 1
        try:
            os.close(read_fd)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            with os.fdopen(write_fd, "w", encoding="utf-8") as out:
                json.dump(socket_pids(proc), out)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, encoding="utf-8") as inp:
        data = inp.read()
    os.waitpid(child, 0)
    try:
        return {int(inode): int(pid) for inode, pid in json.loads(data).items()}
    except ValueError:
        return {}


def process_ids(proc: Path, pid: int) -> tuple[int, int] | None:
    """(uid, gid) of a process, from /proc/PID/status (readable without privileges)."""
    try:
        text = (proc / str(pid) / "status").read_text(encoding="utf-8")
    except OSError:
        return None
    ids: dict[str, int] = {}
    for line in text.splitlines():
        key, _unused, rest = line.partition(":")
        if key in ("Uid", "Gid") and rest.split():
            ids[key] = int(rest.split()[0])
    return (ids["Uid"], ids["Gid"]) if len(ids) == 2 else None


def unit_cgroup(proc: Path, pid: int, unit: str = "") -> str:
    """The cgroup path of a process; with ``unit``, the line that names it (cgroup v1, v2 or hybrid)."""
    try:
        text = (proc / str(pid) / "cgroup").read_text(encoding="utf-8")
    except OSError:
        return ""
    lines = [parts for parts in (line.split(":", 2) for line in text.splitlines()) if len(parts) == 3]
    for _unused, _unused, path in lines:
        if unit and in_unit(path, unit):
            return path
    # cgroup v2: "0::/system.slice/x.service"; v1 and hybrid: the name=systemd line
    for _unused, controllers, path in lines:
        if controllers == "name=systemd":
            return path
    return lines[-1][2] if lines else ""


def in_unit(cgroup: str, unit: str) -> bool:
    """True when the cgroup path is the unit's own or one below it."""
    want = "/" + (unit if unit.endswith(".service") else f"{unit}.service")
    return cgroup.endswith(want) or f"{want}/" in cgroup


def owners(
    ports: list[int], unit: str, proc: Path = Path("/proc"), main_pid: int | None = None
) -> list[PortOwner]:
    """The owner of each port, judged from ``proc`` (net/tcp, net/tcp6, fd links, cgroups).

    ``main_pid`` (the unit's main process) lets root scan as the service's user as well, for hosts where
    root may not read other users' descriptors (a container without CAP_SYS_PTRACE).
    """
    listening: dict[int, set[int]] = {}
    for name in ("tcp", "tcp6"):
        try:
            table = (proc / "net" / name).read_text(encoding="utf-8")
        except OSError:
            continue
        for port, inodes in listening_inodes(table).items():
            listening.setdefault(port, set()).update(inodes)
    pids: dict[int, int] = {}
    if any(p in listening for p in ports):
        pids = socket_pids(proc)
        ids = process_ids(proc, main_pid) if main_pid else None
        if ids and os.geteuid() == 0 and ids[0] != 0:
            pids = {**socket_pids_as(proc, *ids), **pids}
    result: list[PortOwner] = []
    for port in ports:
        if port not in listening:
            result.append(PortOwner(port, "free"))
            continue
        seen = [pids[i] for i in sorted(listening[port]) if i in pids]
        if not seen:
            result.append(PortOwner(port, "hidden"))
            continue
        groups = {pid: unit_cgroup(proc, pid, unit) for pid in seen}
        ours = [pid for pid, group in groups.items() if in_unit(group, unit)]
        if ours:
            result.append(PortOwner(port, "ours", ours[0], groups[ours[0]]))
        else:
            result.append(PortOwner(port, "other", seen[0], groups[seen[0]]))
    return result
