"""The zkEmail circuit on a small instance of its templates (circuits/zkemail/twitter_small.circom).

The same templates as the full-size benchmark (bin/kit bench zkemail), on a 256-byte header and a
128-byte body: compile, groth16py's setup (cached by content in KIT_CACHE_DIR), a DKIM-signed test email
proven and verified, and the bad emails refused. Each bad email is refused twice over: by the input checks
with a clear error, and, when those checks are bypassed, by the circuit itself (its witness cannot be
computed, so no proof exists).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import zk_artifacts, zk_prove, zkemail

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "tools" / "zk" / "node_modules"
SCRIPT = ROOT / "tools" / "zk" / "zkemail-input.js"
CIRCUIT = ROOT / "circuits" / "zkemail" / "twitter_small.circom"
ADDRESS = 0xC0FFEE
HANDLE = "kit_user"
FROM = zkemail.SMALL_EMAIL["from_addr"]


def _node() -> str:
    node = shutil.which("node")
    if not node or not (MODULES / "@zk-email" / "helpers").is_dir():
        pytest.fail("Node.js and tools/zk/node_modules are needed (bin/kit setup)")
    return node


@pytest.fixture(scope="module")
def circuit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zkemail") / "twitter_small"
    done = zk_artifacts.build_dev_artifacts(
        CIRCUIT, out, [MODULES], name="twitter_small", cpp=False, setup="groth16py", progress=print
    )
    assert done["manifest"]["constraints"] > 500_000  # the real templates, not a stand-in
    return out


@pytest.fixture(scope="module")
def key() -> zkemail.TestKey:
    return zkemail.TestKey.generate()


@pytest.fixture(scope="module")
def tools() -> zk_prove.Toolchain:
    return zk_prove.Toolchain.discover(_node(), str(MODULES / "snarkjs" / "build" / "cli.cjs"))


def _input(email: bytes, key: zkemail.TestKey) -> dict[str, Any]:
    return zkemail.circuit_input(email, key.txt, zkemail.SMALL, ADDRESS, _node(), SCRIPT)


def _unpack(values: list[str]) -> str:
    """PackBytes: 31 bytes per field element, the first byte lowest."""
    out = bytearray()
    for value in values:
        n = int(value)
        while n:
            out.append(n & 0xFF)
            n >>= 8
    return out.decode()


def test_a_signed_email_is_proven_and_the_proof_reveals_handle_and_sender(
    circuit: Path, key: zkemail.TestKey, tools: zk_prove.Toolchain, tmp_path: Path
) -> None:
    data = _input(zkemail.make_email(key, handle=HANDLE, **zkemail.SMALL_EMAIL), key)
    result = zk_prove.prove_job(
        circuit, json.dumps(data), tmp_path, backend="groth16py", tools=tools, progress=print
    )
    assert result.verifier and (tmp_path / "result.json").is_file()
    public = json.loads((tmp_path / "public.json").read_text())
    # outputs first (pubkeyHash, twitterUsername, fromEmailAddrPacks[9]), then the public input (address)
    assert len(public) == 12
    assert _unpack(public[1:2]) == HANDLE
    assert _unpack(public[2:11]) == FROM
    assert int(public[11]) == ADDRESS
    # snarkjs, independently of the backend that proved, accepts the proof under the circuit's key
    assert (
        zk_prove.verify_proof(
            circuit / zk_prove.VKEY, tmp_path / "proof.json", tmp_path / "public.json", "snarkjs", tools
        )
        == "snarkjs"
    )


BAD = {
    "signature": lambda key: zkemail.tamper(zkemail.make_email(key, **zkemail.SMALL_EMAIL), "signature"),
    "body-hash": lambda key: zkemail.tamper(zkemail.make_email(key, **zkemail.SMALL_EMAIL), "body"),
    "handle-too-long": lambda key: zkemail.make_email(key, handle="h" * 22, **zkemail.SMALL_EMAIL),
    "too-long": lambda key: zkemail.make_email(key, postscript="p" * 80, **zkemail.SMALL_EMAIL),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_bad_email_gets_a_clear_error_and_no_input(kind: str, key: zkemail.TestKey) -> None:
    with pytest.raises(zkemail.EmailInputError) as err:
        _input(BAD[kind](key), key)
    assert err.value.kind == kind
    assert str(err.value)


def _forged(key: zkemail.TestKey, how: str) -> dict[str, Any]:
    """A circuit input that the input checks would refuse, made by going round them."""
    good = _input(zkemail.make_email(key, handle=HANDLE, **zkemail.SMALL_EMAIL), key)
    if how == "signature":
        good["signature"][0] = str(int(good["signature"][0]) ^ 1)
    elif how == "body":
        at = int(good["twitterUsernameIndex"])
        good["emailBody"][at] = str(ord("x"))  # another handle than the one signed
    elif how == "handle-too-long":
        # the checks in Python refuse it; the helper alone makes an input, which the circuit must refuse
        email = zkemail.make_email(key, handle="h" * 22, **zkemail.SMALL_EMAIL)
        request = {
            "email": base64.b64encode(email).decode(),
            "dkim_txt": key.txt,
            "max_header_length": zkemail.SMALL.max_header,
            "max_body_length": zkemail.SMALL.max_body,
            "expose_from": True,
            "address": str(ADDRESS),
            "selector": zkemail.HANDLE_PREFIX,
        }
        done = subprocess.run(
            [_node(), str(SCRIPT)], input=json.dumps(request).encode(), capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))
    return good


@pytest.mark.parametrize("how", ["signature", "body", "handle-too-long"])
def test_the_circuit_itself_refuses_a_forged_input(
    how: str, circuit: Path, key: zkemail.TestKey, tools: zk_prove.Toolchain, tmp_path: Path
) -> None:
    with pytest.raises(zk_prove.ZkProveError):
        zk_prove.prove_job(circuit, json.dumps(_forged(key, how)), tmp_path, backend="groth16py", tools=tools)
    assert not any((tmp_path / name).exists() for name in ("proof.json", "public.json", "result.json"))
