"""teeproof.kit.session_activation: the activation the payload carries, the credential the client keeps."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import prover_session as ps
from ansible_collections.teeproof.kit.plugins.module_utils import session_client as sc
from ansible_collections.teeproof.kit.plugins.modules import session_activation as mod


@pytest.fixture
def params(tmp_path: Path, nonce: bytes) -> dict[str, Any]:
    key = ps.public_key_text(ps.new_session_key()[0].public_key())
    return {
        "session_key": key,
        "nonce": nonce.hex(),
        "lifetime": 600,
        "lease_requests": 8,
        "lease_s": 120,
        "credential": str(tmp_path / "session" / "session.psk.json"),
    }


def test_the_activation_carries_the_psk_the_client_keeps(params: dict[str, Any], tmp_path: Path) -> None:
    out = mod.run(params, check_mode=False)
    act = ps.parse_activation(out["activation"])
    assert act.session_id == out["session_id"] and act.lifetime_s == 600
    assert abs(act.expires_at - (time.time() + 600)) < 5 and act.session_key == params["session_key"]
    cred = Path(params["credential"])
    assert cred.stat().st_mode & 0o777 == 0o600 and cred.parent.stat().st_mode & 0o777 == 0o700
    psk, lease_key = sc.read_credential(cred, act.session_id)
    assert psk == act.psk and act.lease_requests == 8 and act.lease_s == 120
    # the credential's lease key signs leases the TD takes: its public half is the activation's
    lease = ps.sign_lease(lease_key, act.session_id, 1, 0)
    assert ps.parse_lease(lease, act.lease_key, act.session_id).counter == 1
    assert out["activation"]["psk"] == base64.b64encode(act.psk).decode()
    again = mod.run(params, check_mode=False)  # every run is a new session with a new PSK
    assert again["session_id"] != out["session_id"] and again["activation"]["psk"] != out["activation"]["psk"]
    assert json.loads(cred.read_text())["session_id"] == again["session_id"]


def test_check_mode_writes_nothing(params: dict[str, Any]) -> None:
    assert mod.run(params, check_mode=True)["changed"]
    assert not Path(params["credential"]).exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lifetime": ps.MAX_SESSION_SECONDS + 1}, "lifetime"),
        ({"lifetime": 0}, "lifetime"),
        ({"nonce": "00"}, "nonce"),
        ({"nonce": "zz"}, "nonce"),
        ({"session_key": "not a key"}, "session_key"),
        ({"lease_requests": 0}, "lease_requests"),
        ({"lease_requests": ps.MAX_LEASE_REQUESTS + 1}, "lease_requests"),
        ({"lease_s": 0}, "lease_s"),
        ({"lease_s": ps.MAX_LEASE_SECONDS + 1}, "lease_s"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    params: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(mod.ActivationFailed, match=message):
        mod.run({**params, **change}, check_mode=False)
    assert not Path(params["credential"]).exists()


def test_an_unwritable_credential_folder_is_named(params: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(mod.ActivationFailed, match="could not be written"):
        mod.run({**params, "credential": str(tmp_path / "file" / "x.json")}, check_mode=False)
