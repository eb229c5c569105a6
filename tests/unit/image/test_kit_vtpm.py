"""kit-vtpm (roles/td_vtpm/files): the TD's own vTPM is the device swtpm's vTPM proxy got, and only that one.

swtpm, modprobe and tpm2_createek are stand-ins on PATH that record their calls; the program runs as the unit
runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.programs import load_program

ROOT = Path(__file__).resolve().parents[3]
PROGRAM = ROOT / "roles" / "td_vtpm" / "files" / "kit-vtpm"
LIB = ROOT / "plugins" / "module_utils"
FAKE = """#!{python}
import json, os, sys
with open(os.environ["FAKE_CALLS"], "a") as log:
    tcti = os.environ.get("TPM2TOOLS_TCTI", "")
    log.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:] + [tcti]) + "\\n")
if os.path.basename(sys.argv[0]) == "swtpm":
    print(os.environ.get("FAKE_SWTPM_SAYS", "New TPM device: /dev/tpm1 (major/minor = 10/225)"))
"""


@pytest.fixture
def program(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("KIT_GUEST_LIB", str(LIB))
    return load_program(PROGRAM, "kit_vtpm")


def _run(
    tmp_path: Path, *args: str, says: str | None = None
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name in ("swtpm", "modprobe", "tpm2_createek"):
        (bindir / name).write_text(FAKE.format(python=sys.executable))
        (bindir / name).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "FAKE_CALLS": str(tmp_path / "calls"),
        "KIT_GUEST_LIB": str(LIB),
    }
    if says is not None:
        env["FAKE_SWTPM_SAYS"] = says
    done = subprocess.run(
        [sys.executable, str(PROGRAM), *args], capture_output=True, text=True, env=env, check=False
    )
    calls = (
        [json.loads(x) for x in (tmp_path / "calls").read_text().splitlines()]
        if (tmp_path / "calls").exists()
        else []
    )
    return done, calls


def test_the_device_swtpm_names_is_the_one_every_user_is_pointed_at(program: object, tmp_path: Path) -> None:
    assert program.device_from("New TPM device: /dev/tpm3 (major/minor = 10/227)\n") == 3  # type: ignore[attr-defined]
    with pytest.raises(program.Failed, match="named no vTPM proxy device"):  # type: ignore[attr-defined]
        program.device_from("swtpm: could not open /dev/vtpmx")  # type: ignore[attr-defined]
    state = tmp_path / "state"
    program.write_env(tmp_path / "tpm.env", 1, state)  # type: ignore[attr-defined]
    text = (tmp_path / "tpm.env").read_text()
    assert f"TPM2TOOLS_TCTI=device:/dev/tpmrm1\nKIT_VTPM_STATE={state}\n" in text
    sysfs = tmp_path / "sysfs"
    for name in ("tpm0", "tpm1"):
        (sysfs / name).mkdir(parents=True)
    assert program.foreign_tpms(1, sysfs) == ["tpm0"]  # type: ignore[attr-defined]


def test_start_makes_the_ek_in_its_own_device_only(
    program: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The host attached a TPM of its own (tpm0): swtpm's proxy got tpm1; the EK is made there, every user is
    pointed there, and the host's TPM is named as never used."""
    _run(tmp_path, "--help")  # writes the stand-ins
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls"))
    dev, sysfs, state = tmp_path / "dev", tmp_path / "sysfs", tmp_path / "state"
    dev.mkdir()
    (dev / "tpmrm1").touch()
    for name in ("tpm0", "tpm1"):
        (sysfs / name).mkdir(parents=True)
    assert program.start(state, state / "tpm.env", "0x81010001", dev, sysfs) == 0  # type: ignore[attr-defined]
    calls = [json.loads(x) for x in (tmp_path / "calls").read_text().splitlines()]
    assert [c[0] for c in calls] == ["modprobe", "swtpm", "tpm2_createek"]
    assert (
        calls[1][:4] == ["swtpm", "chardev", "--vtpm-proxy", "--tpm2"] and f"dir={state / 'tpm'}" in calls[1]
    )
    assert calls[2][1:3] == ["--ek-context", "0x81010001"] and calls[2][-1] == "device:/dev/tpmrm1"
    assert "TPM2TOOLS_TCTI=device:/dev/tpmrm1" in (state / "tpm.env").read_text()
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert "tpm0 is not the TD's vTPM (attached from outside): never used" in capsys.readouterr().err


def test_bad_input_and_a_silent_swtpm_are_named(tmp_path: Path) -> None:
    done, calls = _run(
        tmp_path,
        "start",
        "--state",
        str(tmp_path / "s"),
        "--env-file",
        str(tmp_path / "e"),
        "--ek-handle",
        "0x1",
    )
    assert done.returncode == 2 and "not a persistent handle" in done.stderr and calls == []
    done, _calls = _run(
        tmp_path, "start", "--state", str(tmp_path / "s"), "--env-file", str(tmp_path / "e"), says=""
    )
    assert done.returncode == 1 and "swtpm named no vTPM proxy device" in done.stderr
    done, _calls = _run(tmp_path, "sync", "--state", str(tmp_path / "nothing"))
    assert done.returncode == 1 and "the TD's vTPM has not started" in done.stderr
    (tmp_path / "started").mkdir()
    done, _calls = _run(tmp_path, "sync", "--state", str(tmp_path / "started"))
    assert done.returncode == 1 and "no forwarded position" in done.stderr
