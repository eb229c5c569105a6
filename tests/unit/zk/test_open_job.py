"""zk-prove open-job, as the TD's prover unit runs it: the job key serves once; only it opens the job."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import sealed_job, td_claims
from conftest import ENTRYPOINT, SECRET_A, valid_input

ROOT = Path(__file__).resolve().parents[3]
NONCE = "5e" * 32
COMMIT = "c0" * 32


def _job_folder(tmp_path: Path, seal_to: str | None = None) -> tuple[Path, bytes]:
    """A payload's folder as autorun.sh leaves it: job.key (moved from the TD's key folder) and job.sealed."""
    private, public = td_claims.new_x25519_key()
    data = json.dumps(valid_input()).encode()
    sealed = sealed_job.seal(seal_to or public, sealed_job.Job(NONCE, COMMIT, data))
    here = tmp_path / "unzipped"
    here.mkdir()
    (here / "job.key").write_text(base64.b64encode(private).decode() + "\n")
    (here / "job.sealed").write_text(base64.b64encode(sealed).decode() + "\n")
    return here, data


def _open(here: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(ENTRYPOINT), "--prefix", "/nonexistent", "open-job"]
    argv += ["--sealed", str(here / "job.sealed"), "--key", str(here / "job.key"), "--out", str(here)]
    env = {**os.environ, "KIT_GUEST_LIB": str(ROOT / "plugins" / "module_utils")}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_the_job_opens_into_the_input_and_the_job_and_the_key_is_gone(tmp_path: Path) -> None:
    here, data = _job_folder(tmp_path)
    done = _open(here)
    assert done.returncode == 0, done.stderr
    assert (here / "input.json").read_bytes() == data
    assert json.loads((here / "job.json").read_text()) == {"nonce": NONCE, "commit_key": COMMIT}
    for name in ("input.json", "job.json"):
        assert stat.S_IMODE((here / name).stat().st_mode) == 0o600
    assert not (here / "job.key").exists() and not (here / "job.sealed").exists()
    assert str(SECRET_A) not in done.stdout + done.stderr


def test_a_job_sealed_to_another_key_exits_3_writes_nothing_and_the_key_is_gone(tmp_path: Path) -> None:
    _unused, other = td_claims.new_x25519_key()
    here, _unused_data = _job_folder(tmp_path, seal_to=other)
    done = _open(here)
    assert done.returncode == 3
    assert "error [sealed_job]" in done.stderr and "does not open with this TD's job key" in done.stderr
    assert not (here / "input.json").exists() and not (here / "job.json").exists()
    assert not (here / "job.key").exists()


def test_a_second_opening_finds_no_key(tmp_path: Path) -> None:
    here, _unused = _job_folder(tmp_path)
    sealed = (here / "job.sealed").read_text()
    assert _open(here).returncode == 0
    for name in ("input.json", "job.json"):
        (here / name).unlink()
    (here / "job.sealed").write_text(sealed)  # the same payload replayed
    done = _open(here)
    assert done.returncode == 3 and "error [job_key]" in done.stderr and "or it was used" in done.stderr
    assert not (here / "input.json").exists()


@pytest.mark.parametrize("content", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_bad_key_or_sealed_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    here, _unused = _job_folder(tmp_path)
    (here / "job.sealed").write_text(content)
    done = _open(here)
    assert done.returncode == 3 and "error [sealed_job]" in done.stderr
    assert not (here / "input.json").exists() and not (here / "job.key").exists()
