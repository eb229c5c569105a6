"""The artifact pipeline through ansible-playbook, started from a folder outside the repository.

A clean clone with warm caches hid this once: circom2 (WASI) could not reach an include path that lay
above its working directory, so every fresh machine failed while every warm run (a cache hit) passed.
This runs the real playbook with the tiny circuit, whose template is found through an include path, into
an empty cache, from a folder that is neither the repository nor the playbook's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import zk_artifacts
from conftest import MULTIPLIER, MULTIPLIER_INCLUDES, ROOT


def test_circuit_artifacts_playbook_from_outside_the_repository(
    tmp_path: Path, tools: zk_artifacts.Tools
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache = tmp_path / "empty-cache"
    build = tmp_path / "build"
    env = {k: v for k, v in os.environ.items() if k not in ("KIT_ROOT", "ANSIBLE_LOG_PATH")}
    env.update(
        KIT_CACHE_DIR=str(cache),
        KIT_BUILD_DIR=str(build),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    extra = {
        "zk_circuit_artifacts_name": "multiplier",
        "zk_circuit_artifacts_circuit": str(MULTIPLIER),
        "zk_circuit_artifacts_include_paths": [str(p) for p in MULTIPLIER_INCLUDES],
        "zk_circuit_artifacts_cpp": False,
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            str(ROOT / "playbooks" / "circuit-artifacts.yml"),
            "-e",
            json.dumps(extra),
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        log = f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
        pytest.fail(f"circuit-artifacts.yml failed from {elsewhere}:\n{log}")
    out = build / "zk" / "multiplier"
    for name in ("circuit.wasm", "circuit_final.zkey", "verification_key.json"):
        assert (out / name).is_file(), f"{name} missing from {out}"
    assert any((cache / "zk" / "compile").iterdir()), "the compile did not fill the empty cache"
    assert not any(elsewhere.iterdir()), "the pipeline wrote into the folder it was started from"


def test_circom_workdir_holds_every_path(tmp_path: Path) -> None:
    a = tmp_path / "repo" / "circuits" / "main.circom"
    b = tmp_path / "repo" / "node_modules" / "lib"
    c = tmp_path / "cache" / "out"
    assert zk_artifacts.circom_workdir([a, b, c]) == tmp_path.resolve()
    assert zk_artifacts.circom_workdir([a, b]) == (tmp_path / "repo").resolve()
