"""kit-agent-restart (roles/keylime_agent/files): the job's one call in the TD for step 2.

systemctl, journalctl and tpm2_dictionarylockout are stand-ins on PATH that record their calls; the program is
run as the job runs it.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.unit.programs import load_program

ROOT = Path(__file__).resolve().parents[3]
PROGRAM = ROOT / "roles" / "keylime_agent" / "files" / "kit-agent-restart"
CA = (
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=\n"
    "-----END CERTIFICATE-----\n"
)
FAKE = """#!{python}
import json, os, sys
with open(os.environ["FAKE_CALLS"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
if sys.argv[1:2] == ["show"]:
    ids = os.environ["FAKE_INVOCATIONS"]  # one id a line: each show takes the first, the last one stays
    lines = open(ids).read().split() if os.path.exists(ids) else ["f00dfeed"]
    print(lines[0])
    if len(lines) > 1:
        open(ids, "w").write(" ".join(lines[1:]))
elif os.path.basename(sys.argv[0]) == "journalctl":
    path = os.environ["FAKE_JOURNAL"]
    print(open(path).read() if os.path.exists(path) else "", end="")
elif (os.path.basename(sys.argv[0]) == "tpm2_dictionarylockout"
      and os.environ.get("TPM2TOOLS_TCTI") == "device:/dev/host"):
    sys.stderr.write("the host's TPM: a reset must never go there")
    sys.exit(9)
elif os.path.basename(sys.argv[0]) == "tpm2_dictionarylockout" and os.environ.get("FAKE_DA_FAIL"):
    sys.stderr.write("ERROR: Esys_DictionaryAttackLockReset(0x98E) - tpm:session(1):HMAC check failed")
    sys.exit(1)
"""


def _load() -> ModuleType:
    return load_program(PROGRAM, "kit_agent_restart")


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Path]:
    """Stand-in systemctl and journalctl; the journal file they read and the calls they record."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("systemctl", "journalctl", "tpm2_dictionarylockout"):
        path = bin_dir / name
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(0o755)
    return {
        "bin": bin_dir,
        "journal": tmp_path / "journal.txt",
        "calls": tmp_path / "calls.jsonl",
        "invocations": tmp_path / "invocations.txt",
    }


def run(
    tools: dict[str, Path], *args: str, stdin: str = "", env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{tools['bin']}{os.pathsep}{os.environ['PATH']}",
        "FAKE_JOURNAL": str(tools["journal"]),
        "FAKE_CALLS": str(tools["calls"]),
        "FAKE_INVOCATIONS": str(tools["invocations"]),
        **(env_extra or {}),
    }
    argv = [sys.executable, str(PROGRAM), *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)


def calls(tools: dict[str, Path]) -> list[list[str]]:
    if not tools["calls"].exists():
        return []
    return [json.loads(line) for line in tools["calls"].read_text().splitlines()]


@pytest.mark.parametrize(
    ("log", "said"),
    [
        ("INFO:keylime:Registration activated for agent abc\n", "registered"),
        ("ERROR: ... different TPM identity is forbidden\n", "refused"),
        ("ERROR: Registration failed: 500\n", "failed"),
        ("keylime.tpm - ERROR - Error decrypting AIK\nException: Activation failed\n", "failed"),
        ("INFO:keylime:Starting the agent\n", None),
    ],
)
def test_what_the_log_says(log: str, said: str | None) -> None:
    assert _load().outcome(log) == said


def test_registered_installs_the_ca_clears_the_result_and_follows_only_this_start(
    tools: dict[str, Path], tmp_path: Path
) -> None:
    tools["journal"].write_text("INFO: registrar at 10.0.2.100\nINFO: Registration activated for agent x\n")
    result = tmp_path / "run" / "kit-proof"
    (result / "result").mkdir(parents=True)
    ca = tmp_path / "var" / "cv_ca" / "cacert.crt"
    done = run(tools, "--ca-file", str(ca), "--clear", str(result), stdin=CA)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["outcome"] == "registered" and out["invocation"] == "f00dfeed"
    assert out["lines"] == ["INFO: registrar at 10.0.2.100", "INFO: Registration activated for agent x"]
    assert ca.read_text() == CA
    assert stat.S_IMODE(ca.stat().st_mode) == 0o644
    assert stat.S_IMODE(ca.parent.stat().st_mode) == 0o700
    assert not result.exists()
    assert out["da_reset"] == "ok"
    assert calls(tools)[:3] == [
        ["tpm2_dictionarylockout", "--clear-lockout"],  # before the agent uses its DA-protected keys
        ["systemctl", "restart", "keylime_agent"],
        ["systemctl", "show", "-p", "InvocationID", "--value", "keylime_agent"],
    ]
    assert calls(tools)[3] == ["journalctl", "_SYSTEMD_INVOCATION_ID=f00dfeed", "-o", "cat", "--no-pager"]


def test_a_da_reset_that_fails_is_reported_not_fatal_and_can_be_skipped(tools: dict[str, Path]) -> None:
    tools["journal"].write_text("INFO: Registration activated for agent x\n")
    done = run(tools, env_extra={"FAKE_DA_FAIL": "1"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["da_reset"].startswith("not reset (exit 1") and "0x98E" in done.stdout
    tools["calls"].unlink()
    done = run(tools, "--no-da-reset")
    assert json.loads(done.stdout)["da_reset"] == "skipped"
    assert ["tpm2_dictionarylockout", "--clear-lockout"] not in calls(tools)


def test_the_da_reset_goes_to_the_tpm_the_agent_uses(tools: dict[str, Path], tmp_path: Path) -> None:
    """With --tpm-env (the TD's vTPM), the reset reaches that TPM, whatever the caller's TCTI names."""
    tools["journal"].write_text("INFO: Registration activated for agent x\n")
    env_file = tmp_path / "tpm.env"
    env_file.write_text("TPM2TOOLS_TCTI=device:/dev/tpmrm1\nKIT_VTPM_STATE=/run/kit-vtpm\n")
    host = {"TPM2TOOLS_TCTI": "device:/dev/host"}
    assert json.loads(run(tools, env_extra=host).stdout)["da_reset"].startswith("not reset (exit 9")
    done = run(tools, "--tpm-env", str(env_file), env_extra=host)
    assert json.loads(done.stdout)["da_reset"] == "ok", done.stdout
    missing = run(tools, "--tpm-env", str(tmp_path / "none.env"))
    assert missing.returncode == 1 and "none.env" in missing.stderr


def test_a_start_that_ended_without_a_word_fails_at_once(tools: dict[str, Path]) -> None:
    """The agent died (systemd started another): no five-minute wait for a log line that cannot come."""
    tools["journal"].write_text(
        "INFO: Agent registration requested for x\nTraceback (most recent call last):\n"
    )
    tools["invocations"].write_text("f00dfeed\nf00dfeed\nbeefcafe\n")
    done = run(tools, "--timeout", "60")
    out = json.loads(done.stdout)
    assert done.returncode == 1 and out["outcome"] == "failed" and out["invocation"] == "f00dfeed"
    assert out["lines"] == ["INFO: Agent registration requested for x"]


def test_a_refusal_is_reported_for_the_controller_to_judge(tools: dict[str, Path]) -> None:
    tools["journal"].write_text("ERROR: registrar: a different TPM identity is forbidden\n")
    done = run(tools)
    assert done.returncode == 0
    assert json.loads(done.stdout)["outcome"] == "refused"


def test_a_failed_or_silent_registration_fails(tools: dict[str, Path]) -> None:
    tools["journal"].write_text("ERROR: Registration failed: connection refused\n")
    done = run(tools)
    assert done.returncode == 1 and json.loads(done.stdout)["outcome"] == "failed"
    tools["journal"].write_text("INFO: still starting\n")
    done = run(tools, "--timeout", "1.5")
    assert done.returncode == 1 and json.loads(done.stdout)["outcome"] == "failed"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--ca-file", "CA"], "not a certificate\n", "not one PEM certificate"),
        (["--ca-file", "CA"], CA + CA, "not one PEM certificate"),
        (["--session-unit", "kit-session"], "", "go together"),
        (["--clear", "relative/dir"], "", "absolute folders"),
        (["--clear", "/"], "", "absolute folders"),
    ],
)
def test_bad_input_changes_nothing(
    tools: dict[str, Path], tmp_path: Path, args: list[str], stdin: str, message: str
) -> None:
    ca = tmp_path / "cv_ca" / "cacert.crt"
    done = run(tools, *[str(ca) if a == "CA" else a for a in args], stdin=stdin)
    assert done.returncode == 2
    assert message in done.stderr
    assert not ca.exists()
    assert calls(tools) == []  # nothing restarted


def test_the_session_unit_restarts_first_and_must_listen(tools: dict[str, Path]) -> None:
    tools["journal"].write_text("INFO: Registration activated for agent x\n")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        done = run(tools, "--session-unit", "kit-session", "--session-port", str(port))
    assert done.returncode == 0, done.stderr
    assert calls(tools)[:3] == [
        ["systemctl", "restart", "kit-session"],
        ["tpm2_dictionarylockout", "--clear-lockout"],
        ["systemctl", "restart", "keylime_agent"],
    ]
    done = run(tools, "--session-unit", "kit-session", "--session-port", str(port), "--timeout", "1")
    assert done.returncode == 1 and "nothing listens" in done.stderr
