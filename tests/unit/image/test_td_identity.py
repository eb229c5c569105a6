"""The TD's own claims (tdx-get-quote) and the identity its Keylime agent publishes (compat launcher)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import keylime_agent_compat as compat
import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import td_claims

from tests.unit.programs import load_program

ROOT = Path(__file__).resolve().parents[3]
QUOTE = ROOT / "roles" / "tdx_quote_service" / "files" / "tdx-get-quote"
RECEIPT = ROOT / "roles" / "tdx_quote_service" / "files" / "kit-receipt"


def _load(path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_program(path, "tdx_get_quote_" + path.name.replace("-", "_"))


@pytest.fixture
def guest(tmp_path: Path, td: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A guest's live state in tmp_path: boot keys, the agent's published identity, the image id."""
    keys = tmp_path / "run" / "kit-td"
    keys.mkdir(parents=True)
    (keys / "ssh_host_ed25519_key.pub").write_text(td["claims"]["ssh_host_key"] + " td-ssh-host\n")
    (keys / "receipt_ed25519_key.pub").write_text(td["claims"]["receipt_key"] + " td-receipt\n")
    (keys / "receipt_ed25519_key").write_bytes(td["receipt_private"])
    image = tmp_path / "image.json"
    image.write_text('{"kit": "image"}')
    agent_ca = tmp_path / "cv_ca" / "cacert.crt"
    agent_ca.parent.mkdir()
    agent_ca.write_text(td["ca_pem"])
    # the "agent" is a child process whose command line names keylime_agent
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "keylime_agent"])
    identity = tmp_path / "run" / "keylime-agent" / "identity.json"
    compat.write_identity({k: td["claims"]["agent"][k] for k in compat_fields()}, str(identity), agent.pid)
    env = {
        "KIT_TD_KEY_DIR": str(keys),
        "KIT_AGENT_IDENTITY": str(identity),
        "KIT_IMAGE_ID": str(image),
        "KIT_AGENT_CA": str(agent_ca),
        "KIT_GUEST_LIB": str(ROOT / "plugins" / "module_utils"),
        "TDX_GET_QUOTE_CONFIG": str(tmp_path / "absent.conf"),
        "TDX_TSM_ROOT": str(tmp_path / "no-tsm"),
    }
    yield {
        "env": env,
        "agent": agent,
        "identity": identity,
        "image": image,
        "keys": keys,
        "agent_ca": agent_ca,
    }
    agent.kill()
    agent.wait()


def _quote(guest: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """tdx-get-quote as the guest runs it, in the fake guest's environment."""
    argv = [sys.executable, str(QUOTE), *args]
    return subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **guest["env"]}, check=False
    )


def compat_fields() -> tuple[str, ...]:
    return ("uuid", "ek_tpm", "aik_tpm", "mtls_cert")


def _wait_cmdline(pid: int) -> None:
    import time

    for _unused in range(100):
        if b"keylime_agent" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        time.sleep(0.05)


def test_the_guest_claims_what_it_holds(
    guest: dict[str, Any], td: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _wait_cmdline(guest["agent"].pid)
    quote = _load(QUOTE, guest["env"], monkeypatch)
    claims = quote.live_claims()
    assert claims["agent"] == td["claims"]["agent"]
    assert claims["ssh_host_key"] == td["claims"]["ssh_host_key"]
    assert claims["image_id_sha256"] == td_claims.sha256_hex(guest["image"].read_bytes())
    assert claims["agent_ca_sha256"] == td["claims"]["agent_ca_sha256"]
    td_claims.compare_agent_ca(td_claims.parse_claims(claims), td["ca_pem"])


def test_the_guest_claims_the_ca_its_agent_trusts_now(
    guest: dict[str, Any], td: dict[str, Any], other_td: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CA swapped after it was installed is what the claims show, so the client refuses it."""
    _wait_cmdline(guest["agent"].pid)
    guest["agent_ca"].write_text(other_td["cert_pem"])
    quote = _load(QUOTE, guest["env"], monkeypatch)
    claims = td_claims.parse_claims(quote.live_claims())
    with pytest.raises(td_claims.ClaimsError, match="was replaced"):
        td_claims.compare_agent_ca(claims, td["ca_pem"])
    guest["agent_ca"].unlink()
    with pytest.raises(quote.ClaimsUnavailable, match="agent's CA missing"):
        quote.live_claims()
    guest["agent_ca"].write_text("not a certificate")
    with pytest.raises(quote.ClaimsUnavailable, match="not one PEM certificate"):
        quote.live_claims()


def test_no_caller_supplied_binding(guest: dict[str, Any]) -> None:
    run = _quote(guest, "--nonce", "00" * 32, "--binding=ff")
    assert run.returncode == 2 and "unrecognized arguments: --binding" in run.stderr


def test_an_agent_that_no_longer_runs_gives_no_claims(
    guest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    guest["agent"].kill()
    guest["agent"].wait()
    quote = _load(QUOTE, guest["env"], monkeypatch)
    with pytest.raises(quote.ClaimsUnavailable, match="no longer runs"):
        quote.live_claims()
    run = _quote(guest, "--nonce", "00" * 32)
    assert run.returncode == 3 and "restart the agent" in run.stderr


def test_missing_boot_key_or_identity_is_named(
    guest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _wait_cmdline(guest["agent"].pid)
    (guest["keys"] / "ssh_host_ed25519_key.pub").unlink()
    quote = _load(QUOTE, guest["env"], monkeypatch)
    with pytest.raises(quote.ClaimsUnavailable, match=r"ssh_host_ed25519_key\.pub"):
        quote.live_claims()
    guest["identity"].unlink()
    with pytest.raises(quote.ClaimsUnavailable, match="no registered Keylime agent"):
        quote.live_claims()


def test_a_quote_for_a_job_claims_a_fresh_job_key_and_a_later_quote_drops_it(guest: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    _wait_cmdline(guest["agent"].pid)
    key = guest["keys"] / "job_x25519.key"
    first = _quote(guest, "claims", "--job-key")
    assert first.returncode == 0, first.stderr
    claimed = td_claims.parse_claims(first.stdout).job_key
    raw = base64.b64decode(key.read_text().strip())
    public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    assert claimed == base64.b64encode(public).decode()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    second = _quote(guest, "claims", "--job-key")
    assert td_claims.parse_claims(second.stdout).job_key not in (None, claimed)
    # a quote without --job-key (here it fails for want of a provider) names no job key, and none is left
    assert _quote(guest, "--nonce", "00" * 32).returncode == 2
    assert not key.exists() and not key.with_suffix(".pub").exists()
    assert td_claims.parse_claims(_quote(guest, "claims").stdout).job_key is None


def test_without_tsm_or_provider_there_is_no_quote(guest: dict[str, Any]) -> None:
    _wait_cmdline(guest["agent"].pid)
    run = _quote(guest, "--nonce", "00" * 32)
    assert run.returncode == 2 and "no configfs-tsm and no simulated provider" in run.stderr
    short = _quote(guest, "--nonce", "00" * 8)
    assert short.returncode == 2 and "nonce" in short.stderr


def test_the_guest_signs_a_receipt_that_verifies(
    guest: dict[str, Any], td: dict[str, Any], tmp_path: Path
) -> None:
    _wait_cmdline(guest["agent"].pid)
    result = tmp_path / "result"
    result.mkdir()
    (result / "proof.json").write_text('{"pi_a": []}')
    (result / "public.json").write_text('["1"]')
    (tmp_path / "vkey.json").write_text("{}")
    (tmp_path / "input.json").write_text('{"secret": "1"}')
    key = os.urandom(32)
    (tmp_path / "job.json").write_text(json.dumps({"nonce": "ab" * 32, "commit_key": key.hex()}))
    argv = [
        sys.executable,
        str(RECEIPT),
        "sign",
        "--result",
        str(result),
        "--input",
        str(tmp_path / "input.json"),
    ]
    argv += ["--job", str(tmp_path / "job.json"), "--vkey", str(tmp_path / "vkey.json")]
    env = {**os.environ, **guest["env"], "KIT_QUOTE_COMMAND": str(QUOTE)}
    run = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stderr
    signed = json.loads((result / "receipt.json").read_text())
    body, signature = td_claims.parse_receipt(signed)
    td_claims.verify_receipt_signature(body, signature, td["claims"]["receipt_key"])
    assert body["input_commitment"] == td_claims.input_commitment(key, b'{"secret": "1"}')
    assert body["claims_sha512"] == td_claims.claims_digest(td["claims"]).hex()
    assert "secret" not in (result / "receipt.json").read_text()


def test_compat_publishes_the_identity_its_registrar_activated(tmp_path: Path, td: dict[str, Any]) -> None:
    args = ("10.0.2.100", 8890, "agent-1", b"RUs=", b"ekcert", b"QUs=", b"-----BEGIN CERTIFICATE-----\n")
    record = compat.identity_record(args, {})
    assert record == {
        "uuid": "agent-1",
        "ek_tpm": "RUs=",
        "aik_tpm": "QUs=",
        "mtls_cert": "-----BEGIN CERTIFICATE-----\n",
    }
    assert compat.identity_record(args[:6], {"mtls_cert": b"PEM"}) is not None
    assert compat.identity_record(args[:5], {}) is None  # no AK: no identity
    path = tmp_path / "run" / "identity.json"
    compat.write_identity(record, str(path), 4242)
    assert json.loads(path.read_text())["pid"] == 4242
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
