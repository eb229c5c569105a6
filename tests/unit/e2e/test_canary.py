"""The canary scanner finds what it must (files, chunk boundaries, process memory) and never prints it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import canary as ec
import pytest

CANARY = b"kit-canary-7f3a9c1e5b2d4f60a8e1"
SCRIPT = Path(ec.__file__)


def test_file_hit_miss_and_exclude(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "leak.log").write_bytes(b"x" * 100 + CANARY + b"y")
    (tmp_path / "clean.txt").write_bytes(b"nothing here " * 1000)
    (tmp_path / "input.json").write_bytes(b'{"secret": "' + CANARY + b'"}')
    res = ec.scan_files(CANARY, [str(tmp_path)], [str(tmp_path / "input.json")], 1 << 20)
    assert res["found"] == [str(tmp_path / "a" / "leak.log")]
    assert res["scanned"] == 2


def test_match_across_chunk_boundary() -> None:
    data = b"\0" * (ec.CHUNK - 5) + CANARY + b"\0" * 10
    assert ec.stream_contains(io.BytesIO(data), CANARY)
    assert not ec.stream_contains(io.BytesIO(data.replace(CANARY, b"-" * len(CANARY))), CANARY)


def test_limit_stops_reading() -> None:
    data = b"\0" * 100 + CANARY
    assert not ec.stream_contains(io.BytesIO(data), CANARY, limit=100)
    assert ec.stream_contains(io.BytesIO(data), CANARY, limit=200)


def test_short_canary_is_refused() -> None:
    with pytest.raises(ec.CanaryError):
        ec.check_canary(b"123")


def test_oversized_files_are_counted_as_skipped(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(CANARY * 100)
    res = ec.scan_files(CANARY, [str(tmp_path)], [], 10)
    assert res["found"] == [] and res["skipped"] == 1


def test_memory_of_another_process_is_searched() -> None:
    code = (
        "import sys, time; s = sys.stdin.buffer.read(); sys.stdout.write('ready\\n'); sys.stdout.flush(); "
        "time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(CANARY)
        proc.stdin.close()
        assert proc.stdout.readline() == b"ready\n"
        res = ec.scan_memory(CANARY)
        if os.geteuid() != 0 and res["scanned"] == 0:
            pytest.skip("process memory is not readable without root here")
        assert any(f"pid {proc.pid} " in hit for hit in res["found"])
    finally:
        proc.kill()
        proc.wait()
    # once that process is gone, it is not reported any more
    time.sleep(0)
    assert not any(f"pid {proc.pid} " in hit for hit in ec.scan_memory(CANARY)["found"])


def test_cli_never_prints_the_canary(tmp_path: Path) -> None:
    (tmp_path / "leak").write_bytes(CANARY)
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "files", str(tmp_path)], input=CANARY, capture_output=True, check=True
    )
    assert CANARY not in out.stdout + out.stderr
    assert json.loads(out.stdout)["found"] == [str(tmp_path / "leak")]


def test_maps_parsing_keeps_readable_regions_only() -> None:
    maps = (
        "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n"
        "00651000-00652000 ---p 00051000 08:02 173521 /usr/bin/dbus-daemon\n"
        "7fff5e1f0000-7fff5e1f2000 r--p 00000000 00:00 0 [vvar]\n"
        "01e00000-01e21000 rw-p 00000000 00:00 0 [heap]\n"
    )
    assert [r[2] for r in ec.readable_regions(maps)] == ["/usr/bin/dbus-daemon", "[heap]"]


def test_masked_canary_round_trip_and_the_clear_value_never_travels(tmp_path: Path) -> None:
    secret = "1234567890123456789012345678901234567890"
    (tmp_path / "input.json").write_text(json.dumps({"secret": secret, "message": "1"}))
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "mask", str(tmp_path / "input.json")], capture_output=True, check=True
    )
    assert secret.encode() not in out.stdout
    assert ec.unmask(out.stdout) == secret.encode()
    (tmp_path / "leak").write_text(secret)
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "files", str(tmp_path), "--exclude", str(tmp_path / "input.json")],
        input=out.stdout,
        capture_output=True,
        check=True,
    )
    assert json.loads(res.stdout)["found"] == [str(tmp_path / "leak")]


@pytest.mark.parametrize("bad", [b'{"mask": "00"}', b'{"mask": "0011", "masked": "00"}', b"{not json"])
def test_bad_masked_input_is_refused(bad: bytes) -> None:
    with pytest.raises(ec.CanaryError):
        ec.unmask(bad)


def fake_journalctl(tmp_path: Path, body: bytes, code: int = 0) -> dict[str, str]:
    """A PATH whose journalctl prints BODY and exits CODE (the journal the ``td`` mode exports)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "body").write_bytes(body)
    tool = bindir / "journalctl"
    tool.write_text(f"#!/bin/sh\ncat {bindir / 'body'}\nexit {code}\n")
    tool.chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def test_td_mode_searches_the_exported_journal_the_files_and_the_memory(tmp_path: Path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    (root / "clean").write_bytes(b"nothing")
    env = fake_journalctl(tmp_path, b"MESSAGE=" + CANARY + b"\n")
    journal = root / "journal.export"
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "td", "--journal", str(journal), str(root)],
        input=json.dumps(ec.mask(CANARY)).encode(),
        capture_output=True,
        check=True,
        env=env,
    )
    assert CANARY not in out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["files"]["found"] == [str(journal)]
    assert result["files"]["scanned"] == 2
    # this test process holds the canary (CANARY): the memory search finds it here
    assert any(hit.startswith(f"pid {os.getpid()} ") for hit in result["memory"]["found"])


def test_td_mode_without_memory_and_a_clean_journal(tmp_path: Path) -> None:
    env = fake_journalctl(tmp_path, b"MESSAGE=nothing\n")
    root = tmp_path / "run"
    root.mkdir()
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "td", str(root), "--journal", str(root / "j"), "--no-memory"],
        input=CANARY,
        capture_output=True,
        check=True,
        env=env,
    )
    clean = {"found": [], "scanned": 1, "skipped": 0, "errors": 0}
    assert json.loads(out.stdout) == {"files": clean, "memory": None}


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["td", "--journal", "{j}", "{root}"], 3, b"journalctl exited 3"),
        (["td", "--no-memory"], 0, b"no folder to search"),
        (["td", "{root}", "--journal"], 0, b"--journal takes the file"),
        (["files"], 0, b"no folder to search"),
        (["files", "{root}", "--max-bytes", "many"], 0, b"--max-bytes takes a number"),
    ],
)
def test_td_mode_errors_are_named(tmp_path: Path, args: list[str], code: int, needle: bytes) -> None:
    env = fake_journalctl(tmp_path, b"", code)
    root = tmp_path / "run"
    root.mkdir()
    argv = [a.format(j=root / "j", root=root) for a in args]
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], input=CANARY, capture_output=True, check=False, env=env
    )
    assert out.returncode == 2
    assert needle in out.stderr
    assert out.stdout == b""
