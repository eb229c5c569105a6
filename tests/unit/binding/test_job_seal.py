"""teeproof.kit.job_seal: the job sealed on the controller to the TD's quoted job key; bad input named."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import sealed_job, td_claims
from ansible_collections.teeproof.kit.plugins.modules import job_seal as mod

INPUT = b'{"secret": "canary-51ee"}'


@pytest.fixture
def key_and_params(tmp_path: Path) -> tuple[bytes, dict[str, Any]]:
    private, public = td_claims.new_x25519_key()
    path = tmp_path / "input.json"
    path.write_bytes(INPUT)
    return private, {"job_key": public, "nonce": "ab" * 16, "commit_key": "cd" * 32, "input": str(path)}


def test_the_td_opens_what_the_module_sealed(key_and_params: tuple[bytes, dict[str, Any]]) -> None:
    private, params = key_and_params
    out = mod.run(params)
    sealed = base64.b64decode(out["sealed"])
    assert out["changed"] and out["size"] == len(sealed)
    job = sealed_job.open_sealed(private, sealed)
    assert (job.input, job.nonce, job.commit_key) == (INPUT, params["nonce"], params["commit_key"])
    assert b"canary-51ee" not in sealed and "canary-51ee" not in str(out)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"job_key": "AAAA"}, "job_key: not a base64 X25519 public key"),
        ({"nonce": "xyz"}, "nonce: must be"),
        ({"commit_key": "00"}, "commit_key: must be"),
        ({"input": "/nonexistent/input.json"}, "cannot read the input /nonexistent/input.json"),
    ],
)
def test_bad_input_is_named_and_nothing_is_sealed(
    key_and_params: tuple[bytes, dict[str, Any]], change: dict[str, Any], said: str
) -> None:
    _unused, params = key_and_params
    with pytest.raises(mod.SealFailed, match=said) as caught:
        mod.run({**params, **change})
    assert params["commit_key"] not in str(caught.value)


def test_the_commit_key_argument_is_never_logged() -> None:
    assert mod.ARGUMENT_SPEC["commit_key"]["no_log"] is True
