"""Who listens on a TCP port: a systemd unit's own process, a process this host cannot see, or nobody.

A service can show as active while another process holds its port (on a shared host network, another
container's service). The kit's service roles therefore wait until the unit's *own* processes listen:
the listening socket's inode (from /proc/net/tcp and tcp6) must belong to a process in the unit's
control group. Standard library only; the /proc root is a parameter so that tests use recorded files.
"""

from __future__ import annotations

import os
import subprocess
import sys
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


# Reading another user's /proc/PID/fd needs CAP_SYS_PTRACE, which a container's root usually lacks; the
# service's own user may read its own processes' descriptors. This runs the same scan as that user.
_SCAN_AS_USER = (
    "import os,sys\n"
    "for p in os.listdir(sys.argv[1]):\n"
    " if not p.isdigit(): continue\n"
    " d=os.path.join(sys.argv[1],p,'fd')\n"
    " try: fds=os.listdir(d)\n"
    " except OSError: continue\n"
    " for f in fds:\n"
    "  try: t=os.readlink(os.path.join(d,f))\n"
    "  except OSError: continue\n"
    "  if t.startswith('socket:['): print(t[8:-1],p)\n"
)


def socket_pids_as(proc: Path, uid: int, gid: int, python: str = sys.executable) -> dict[int, int]:
    """Socket inode -> pid as seen by ``uid``:``gid`` (a child process that drops to that user)."""
    done = subprocess.run(
        [python, "-c", _SCAN_AS_USER, str(proc)],
        user=uid,
        group=gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    owners: dict[int, int] = {}
    for line in done.stdout.splitlines():
        inode, _, pid = line.partition(" ")
        if inode.isdigit() and pid.isdigit():
            owners.setdefault(int(inode), int(pid))
    return owners


def process_ids(proc: Path, pid: int) -> tuple[int, int] | None:
    """(uid, gid) of a process, from /proc/PID/status (readable without privileges)."""
    try:
        text = (proc / str(pid) / "status").read_text(encoding="utf-8")
    except OSError:
        return None
    ids: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Uid", "Gid") and rest.split():
            ids[key] = int(rest.split()[0])
    return (ids["Uid"], ids["Gid"]) if len(ids) == 2 else None


def unit_cgroup(proc: Path, pid: int, unit: str = "") -> str:
    """The cgroup path of a process; with ``unit``, the line that names it (cgroup v1, v2 or hybrid)."""
    try:
        text = (proc / str(pid) / "cgroup").read_text(encoding="utf-8")
    except OSError:
        return ""
    paths = [parts[2] for parts in (line.split(":", 2) for line in text.splitlines()) if len(parts) == 3]
    if unit:
        want = _unit_name(unit)
        for path in paths:
            if path.endswith(f"/{want}") or f"/{want}/" in path:
                return path
    # cgroup v2: "0::/system.slice/x.service"; v1 and hybrid: the name=systemd line
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[1] == "name=systemd":
            return parts[2]
    return paths[-1] if paths else ""


def _unit_name(unit: str) -> str:
    return unit if unit.endswith(".service") else f"{unit}.service"


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
    want = f"/{_unit_name(unit)}"
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
        ours = [pid for pid, group in groups.items() if group.endswith(want) or f"{want}/" in group]
        if ours:
            result.append(PortOwner(port, "ours", ours[0], groups[ours[0]]))
        else:
            result.append(PortOwner(port, "other", seen[0], groups[seen[0]]))
    return result
