"""port_owner: whose process listens on a port, from a recorded /proc tree and from the real one."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import port_owner

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def row(port: int, state: str, inode: int) -> str:
    local = f"0100007F:{port:04X}"
    return f"   0: {local} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000   994  0 {inode} 1\n"


def fake_proc(
    tmp_path: Path, tcp: str, tcp6: str = HEADER, procs: dict[int, tuple[int, str]] | None = None
) -> Path:
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "net" / "tcp").write_text(HEADER + tcp)
    (proc / "net" / "tcp6").write_text(tcp6)
    for pid, (inode, cgroup) in (procs or {}).items():
        (proc / str(pid) / "fd").mkdir(parents=True)
        os.symlink(f"socket:[{inode}]", proc / str(pid) / "fd" / "7")
        os.symlink("/dev/null", proc / str(pid) / "fd" / "0")
        (proc / str(pid) / "cgroup").write_text(f"0::{cgroup}\n")
    (proc / "self").mkdir()
    return proc


def test_the_units_own_listener_is_ours(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path, row(8881, "0A", 4242), procs={311: (4242, "/system.slice/keylime_verifier.service")}
    )
    [owner] = port_owner.owners([8881], "keylime_verifier", proc)
    assert (owner.state, owner.pid) == ("ours", 311)
    assert "listens on 8881" in owner.describe("keylime_verifier")


def test_a_listener_of_another_unit_is_not_ours(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path, row(8881, "0A", 4242), procs={311: (4242, "/system.slice/keylime_registrar.service")}
    )
    [owner] = port_owner.owners([8881], "keylime_verifier.service", proc)
    assert (owner.state, owner.pid) == ("other", 311)
    assert "keylime_registrar" in owner.describe("keylime_verifier")


def test_a_listener_no_process_here_holds_is_hidden(tmp_path: Path) -> None:
    """Another container on the host network: its socket shows in net/tcp, its process does not."""
    proc = fake_proc(
        tmp_path, row(8890, "0A", 999), procs={311: (4242, "/system.slice/keylime_registrar.service")}
    )
    [owner] = port_owner.owners([8890], "keylime_registrar", proc)
    assert owner.state == "hidden"
    assert "cannot see" in owner.describe("keylime_registrar")


def test_a_connected_socket_is_not_a_listener_and_tcp6_counts(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        row(8881, "01", 4242),
        HEADER + row(8891, "0A", 77),
        procs={5: (77, "/system.slice/keylime_registrar.service/worker")},
    )
    free, tls = port_owner.owners([8881, 8891], "keylime_registrar", proc)
    assert free.state == "free" and "nothing listens" in free.describe("x")
    assert (tls.state, tls.pid) == ("ours", 5)


def test_the_real_proc_sees_our_own_listener(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        [owner] = port_owner.owners([port], "no-such-unit-kit-test")
        assert (owner.state, owner.pid) == ("other", os.getpid())
    [after] = port_owner.owners([port], "no-such-unit-kit-test")
    assert after.state == "free"


@pytest.mark.parametrize("line", ["", "garbage", "  0: 0100007F:ZZZZ"])
def test_short_or_odd_lines_are_skipped(line: str) -> None:
    assert port_owner.listening_inodes(HEADER + line + "\n") == {}


def test_hybrid_cgroup_names_the_unit_on_the_systemd_line(tmp_path: Path) -> None:
    """cgroup v1/v2 hybrid (a podman container here): the unified line names the container, not the unit."""
    proc = fake_proc(tmp_path, row(8881, "0A", 4242), procs={311: (4242, "/libpod_parent/libpod-abc")})
    (proc / "311" / "cgroup").write_text(
        "9:name=systemd:/libpod_parent/libpod-abc/system.slice/keylime_verifier.service\n"
        "1:cpu:/libpod_parent/libpod-abc\n0::/libpod_parent/libpod-abc\n"
    )
    [owner] = port_owner.owners([8881], "keylime_verifier", proc)
    assert owner.state == "ours"


def test_process_ids_and_the_scan_as_a_user() -> None:
    assert port_owner.process_ids(Path("/proc"), os.getpid()) == (os.getuid(), os.getgid())
    assert port_owner.process_ids(Path("/proc"), 0) is None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        inode = os.stat(f"/proc/self/fd/{sock.fileno()}").st_ino
        seen = port_owner.socket_pids_as(Path("/proc"), os.getuid(), os.getgid())
        assert seen.get(inode) == os.getpid()
