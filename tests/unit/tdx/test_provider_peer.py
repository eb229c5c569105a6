"""One SIMULATED provider per guest: it answers only connections its own guest's QEMU opens."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tdx_sim
from test_sim import _fake_kernel

ROOT = Path(__file__).resolve().parents[3]


def _fake_proc(tmp_path: Path, tree: dict[int, int]) -> Path:
    proc = tmp_path / "proc"
    for pid, ppid in tree.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "status").write_text(f"Name:\tx\nPPid:\t{ppid}\n")
    return proc


def test_descends_from_follows_parents_a_few_levels(tmp_path: Path) -> None:
    # nc (30) <- sh (20) <- qemu (10) <- init (1); another guest's nc (31) <- qemu (11)
    proc = _fake_proc(tmp_path, {30: 20, 20: 10, 10: 1, 31: 11, 11: 1, 40: 30})
    assert tdx_sim.descends_from(30, 10, proc)
    assert not tdx_sim.descends_from(31, 10, proc)
    assert not tdx_sim.descends_from(10, 10, proc)  # QEMU itself is not its own guest's forward
    assert not tdx_sim.descends_from(99, 10, proc)  # gone
    assert tdx_sim.descends_from(40, 10, proc, depth=3) and not tdx_sim.descends_from(40, 10, proc, depth=2)


def _serve(tmp_path: Path, guest_pid: int) -> tuple[subprocess.Popen[bytes], Path]:
    state = tmp_path / "state"
    subprocess.run(
        [sys.executable, str(ROOT / "bin" / "tdx-sim-provider"), "setup", "--state", str(state)],
        check=True,
        capture_output=True,
    )
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(_fake_kernel())
    sock = tmp_path / "provider.sock"
    pidfile = tmp_path / "qemu.pid"
    pidfile.write_text(f"{guest_pid}\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bin" / "tdx-sim-provider"),
            "serve",
            "--state",
            str(state),
            "--kernel",
            str(kernel),
            "--listen-unix",
            str(sock),
            "--guest-pid-file",
            str(pidfile),
        ],
        stderr=subprocess.PIPE,
    )
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.1)
    return proc, sock


def _ask(sock: Path) -> tuple[int, dict[str, object]]:
    body = json.dumps({"report_data": "00" * 64}).encode()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(
            b"POST /quote HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


@pytest.mark.slow
def test_the_host_or_another_guest_is_refused_and_the_guest_is_answered(tmp_path: Path) -> None:
    # The "guest's QEMU" is this test process's parent-to-be: a child of ours asks, so we stand for QEMU.
    proc, sock = _serve(tmp_path, guest_pid=os.getpid())
    try:
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        # this test process is not a descendant of itself: refused, like the host or another guest's forward
        code, answer = _ask(sock)
        assert code == 403 and "not this provider's guest" in str(answer["error"])
        # a child of "QEMU" (as the guestfwd's netcat is) is answered
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r});"
                f"import test_provider_peer as t, pathlib; print(t._ask(pathlib.Path({str(sock)!r}))[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "plugins" / "module_utils")},
        )
        assert child.stdout.strip() == "200", child.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert b"refused a quote request" in (proc.stderr.read() if proc.stderr else b"")
