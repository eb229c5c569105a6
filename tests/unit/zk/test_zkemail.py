"""zkEmail inputs (plugins/module_utils/zkemail.py) and the large-circuit setup's guards (zk_artifacts)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import zk_artifacts, zk_prove, zkemail

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tools" / "zk" / "zkemail-input.js"


@pytest.fixture(scope="module")
def key() -> zkemail.TestKey:
    return zkemail.TestKey.generate()


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if not found or not (ROOT / "tools" / "zk" / "node_modules" / "@zk-email" / "helpers").is_dir():
        pytest.fail("Node.js and tools/zk/node_modules are needed (bin/kit setup)")
    return found


def test_a_test_email_verifies_and_each_tampering_is_named(key: zkemail.TestKey) -> None:
    email = zkemail.make_email(key)
    zkemail.check_dkim(email, key.txt)
    for how, kind in (("signature", "signature"), ("body", "body-hash")):
        with pytest.raises(zkemail.EmailInputError) as err:
            zkemail.check_dkim(zkemail.tamper(email, how), key.txt)
        assert err.value.kind == kind


def test_another_key_does_not_verify(key: zkemail.TestKey) -> None:
    with pytest.raises(zkemail.EmailInputError) as err:
        zkemail.check_dkim(zkemail.make_email(key), zkemail.TestKey.generate().txt)
    assert err.value.kind == "signature"


@pytest.mark.parametrize(
    ("handle", "kind"), [("a" * 21, None), ("a" * 22, "handle-too-long"), ("", "no-handle")]
)
def test_the_handle_limit_is_the_circuits(key: zkemail.TestKey, handle: str, kind: str | None) -> None:
    email = zkemail.make_email(key, handle=handle)
    if kind is None:
        assert zkemail.handle_of(email) == handle
        return
    with pytest.raises(zkemail.EmailInputError) as err:
        zkemail.handle_of(email)
    assert err.value.kind == kind


def test_the_input_fits_the_circuit_sizes(key: zkemail.TestKey, node: str) -> None:
    email = zkemail.make_email(key, **zkemail.SMALL_EMAIL)
    data = zkemail.circuit_input(email, key.txt, zkemail.SMALL, 7, node, SCRIPT)
    assert len(data["emailHeader"]) == zkemail.SMALL.max_header
    assert len(data["emailBody"]) == zkemail.SMALL.max_body
    assert int(data["emailHeaderLength"]) < zkemail.SMALL.max_header
    body = bytes(int(b) for b in data["emailBody"])
    at = int(data["twitterUsernameIndex"])
    assert body[at : at + 8] == b"kit_user"
    header = bytes(int(b) for b in data["emailHeader"])
    assert header[int(data["fromEmailIndex"]) :].startswith(zkemail.SMALL_EMAIL["from_addr"].encode())
    assert data["address"] == "7"


@pytest.mark.parametrize(
    ("over", "what"),
    [
        ({"signed_headers": ("from", "subject")}, "signed header is too long"),
        ({"postscript": "p" * 80}, "body is too long"),
    ],
)
def test_too_long_inputs_are_refused_with_the_limit(
    key: zkemail.TestKey, node: str, over: dict[str, str], what: str
) -> None:
    email = zkemail.make_email(key, **{**zkemail.SMALL_EMAIL, **over})
    with pytest.raises(zkemail.EmailInputError) as err:
        zkemail.circuit_input(email, key.txt, zkemail.SMALL, 7, node, SCRIPT)
    assert err.value.kind == "too-long"
    assert what in str(err.value) and "at most" in str(err.value)


def test_the_full_size_takes_a_long_email_the_small_one_refuses(key: zkemail.TestKey, node: str) -> None:
    email = zkemail.make_email(key, filler_lines=20, signed_headers=("from", "to", "subject"))
    with pytest.raises(zkemail.EmailInputError):
        zkemail.circuit_input(email, key.txt, zkemail.SMALL, 7, node, SCRIPT)
    data = zkemail.circuit_input(email, key.txt, zkemail.FULL, 7, node, SCRIPT)
    assert len(data["emailBody"]) == zkemail.FULL.max_body


def test_sizes_must_be_multiples_of_64() -> None:
    with pytest.raises(ValueError, match="multiple of 64"):
        zkemail.Sizes(300, 128)


def test_setup_refuses_early_when_memory_or_disk_will_not_suffice(tmp_path: Path) -> None:
    memory, disk = zk_artifacts.setup_needs(3_100_000)
    assert memory > 8 * 1024**3  # the full-size circuit: more than a small VM has
    with pytest.raises(zk_artifacts.ArtifactsError, match="GiB of memory"):
        zk_artifacts.check_resources("setup", memory, 0, tmp_path, mem_free=memory - 1)
    with pytest.raises(zk_artifacts.ArtifactsError, match="GiB of disk"):
        zk_artifacts.check_resources("setup", 0, 1 << 60, tmp_path / "not" / "yet", mem_free=1 << 40)
    zk_artifacts.check_resources("setup", memory, disk, tmp_path, mem_free=memory)


def test_a_long_child_reports_progress_and_its_failure(tmp_path: Path) -> None:
    lines: list[str] = []
    figures = zk_artifacts.run_watched(
        [sys.executable, "-c", "import time; time.sleep(0.3)"], "child", lines.append, every=0.1
    )
    assert figures["elapsed_s"] >= 0.3 and figures["peak_rss_mb"] > 0
    assert any(line.startswith("child: ") and "GiB resident" in line for line in lines)
    with pytest.raises(zk_artifacts.ArtifactsError, match=r"child failed \(exit 3\):\nboom"):
        zk_artifacts.run_watched(
            [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], "child", lines.append
        )


def test_a_groth16py_key_is_refused_by_the_other_backends(tmp_path: Path) -> None:
    pk = tmp_path / zk_prove.G16PK
    pk.write_bytes(b"not read")
    tools = zk_prove.Toolchain(node="node", snarkjs_cli="none", rapidsnark=None)
    for backend in ("snarkjs", "rapidsnark"):
        with pytest.raises(zk_prove.BackendUnavailable, match="only the groth16py backend reads"):
            zk_prove.backend_prove(backend, pk, tmp_path / "w", tmp_path / "p", tmp_path / "q", 1, tools)


def test_a_circuit_folder_needs_a_proving_key(tmp_path: Path) -> None:
    (tmp_path / zk_prove.MANIFEST).write_text("{}")
    (tmp_path / zk_prove.VKEY).write_text("{}")
    with pytest.raises(zk_prove.ArtifactError, match="no proving key"):
        zk_prove.Circuit.load(tmp_path)
    (tmp_path / zk_prove.G16PK).write_bytes(b"k")
    assert zk_prove.Circuit.load(tmp_path).proving_key.name == zk_prove.G16PK


def _wasm_module() -> bytes:
    # magic, version, then one custom section (id 0) of 3 bytes: name length 2, "kt"
    return b"\x00asm\x01\x00\x00\x00" + b"\x00\x03\x02kt"


def test_the_bench_takes_the_wasm_out_of_a_saved_key_by_its_length(tmp_path: Path) -> None:
    import struct

    import zkemail_bench

    module = _wasm_module()
    key = tmp_path / "k.g16pk"
    key.write_bytes(b"\x11" * 40 + struct.pack("<Q", len(module)) + module + b"\x22" * 40)
    assert zkemail_bench.wasm_from_g16pk(key) == module
    key.write_bytes(b"\x11" * 40 + struct.pack("<Q", len(module) + 1) + module + b"\x22" * 40)
    with pytest.raises(SystemExit, match="does not end at its stored length"):
        zkemail_bench.wasm_from_g16pk(key)
    key.write_bytes(b"\x11" * 80)
    with pytest.raises(SystemExit, match="no WASM module"):
        zkemail_bench.wasm_from_g16pk(key)
