"""One SIMULATED provider per guest: it answers only connections that come through its own guest's forward."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tdx_sim
from test_sim import _fake_kernel

ROOT = Path(__file__).resolve().parents[3]


def test_tokens_tell_launches_apart(tmp_path: Path) -> None:
    a, b = tmp_path / "a.token", tmp_path / "b.token"
    tdx_sim.write_token(a)
    tdx_sim.write_token(b)
    assert oct(a.stat().st_mode & 0o777) == "0o600" and a.read_bytes() != b.read_bytes()
    assert tdx_sim.check_token(a.read_bytes(), a) == ""
    assert "another launch's token" in tdx_sim.check_token(b.read_bytes(), a)
    assert "not this provider's guest" in tdx_sim.check_token(b"POST /quote HTTP/1.1\r\n", a)
    assert "not launched" in tdx_sim.check_token(a.read_bytes(), tmp_path / "gone.token")


def _serve(tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    state = tmp_path / f"{name}-state"
    subprocess.run(
        [sys.executable, str(ROOT / "bin" / "tdx-sim-provider"), "setup", "--state", str(state)],
        check=True,
        capture_output=True,
    )
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(_fake_kernel())
    sock, token = tmp_path / f"{name}.sock", tmp_path / f"{name}.token"
    argv = [sys.executable, str(ROOT / "bin" / "tdx-sim-provider"), "serve", "--state", str(state)]
    argv += ["--kernel", str(kernel), "--listen-unix", str(sock), "--token-file", str(token)]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
    for _unused in range(100):
        if sock.exists():
            break
        time.sleep(0.1)
    return proc, sock, token


def _ask(sock: Path, first_line: bytes = b"") -> tuple[int, dict[str, object]]:
    body = json.dumps({"report_data": "00" * 64}).encode()
    request = b"POST /quote HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: "
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(first_line + request + str(len(body)).encode() + b"\r\n\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _unused, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


@pytest.mark.slow
def test_the_host_or_another_guest_is_refused_and_the_guest_is_answered(tmp_path: Path) -> None:
    mine, sock, token = _serve(tmp_path, "mine")
    other, _unused, other_token = _serve(tmp_path, "other")
    try:
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        code, answer = _ask(sock)  # the host, straight to the socket
        assert code == 403 and "not this provider's guest" in str(answer["error"])
        code, answer = _ask(sock, other_token.read_bytes())  # another guest's forward
        assert code == 403 and "another launch's token" in str(answer["error"])
        code, answer = _ask(sock, token.read_bytes())  # this guest's forward
        assert code == 200 and answer["simulated"] is True and "quote_b64" in answer
    finally:
        for proc in (mine, other):
            proc.terminate()
            proc.wait(timeout=10)
    assert b"refused a quote request" in (mine.stderr.read() if mine.stderr else b"")
