"""Fixtures for the zk tests: the tiny multiplier circuit with a tiny cached development ceremony."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import zk_artifacts, zk_prove

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ROOT / "tools" / "zk" / "node_modules"
MULTIPLIER = ROOT / "circuits" / "test" / "multiplier.circom"
# The tiny circuit's template is reached through this include path (as Semaphore's are).
MULTIPLIER_INCLUDES = [ROOT / "circuits" / "test" / "lib"]


def _guest_lib() -> Path:
    """The guest's layout (roles/zk_prover): zk_prove_cli.py with its libraries beside it (td_claims.py is in
    the guest's other library folder, KIT_GUEST_LIB)."""
    lib = Path(tempfile.mkdtemp(prefix="kit-zk-lib-"))
    atexit.register(shutil.rmtree, lib, True)
    shutil.copy2(ROOT / "roles" / "zk_prover" / "files" / "zk_prove_cli.py", lib)
    for name in ("zk_prove.py", "prover_session.py", "sealed_job.py"):
        shutil.copy2(ROOT / "plugins" / "module_utils" / name, lib)
    return lib


ENTRYPOINT = _guest_lib() / "zk_prove_cli.py"
# Values a test input carries; no output of the entrypoint may ever contain them.
SECRET_A = 987654321987
SECRET_B = 123456789123


def valid_input() -> dict[str, object]:
    return {"a": str(SECRET_A), "b": SECRET_B, "c": str(SECRET_A * SECRET_B), "pad": ["5", "6"]}


@pytest.fixture(scope="session")
def tools() -> zk_artifacts.Tools:
    if not (TOOLS / "snarkjs").is_dir() or not shutil.which("node"):
        pytest.skip("tools/zk/node_modules is not installed (bin/kit setup)")
    return zk_artifacts.Tools.from_kit(ROOT)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    # The kit's cache (the tiny ceremony costs ~10 s once, then nothing).
    return zk_artifacts.cache_root()


@pytest.fixture(scope="session")
def circuit_dir(tools: zk_artifacts.Tools, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts") / "multiplier"
    zk_artifacts.build_dev_artifacts(
        MULTIPLIER, out, MULTIPLIER_INCLUDES, name="multiplier", cache_dir=cache_dir, tools=tools
    )
    return out


@pytest.fixture(scope="session")
def toolchain(tools: zk_artifacts.Tools) -> zk_prove.Toolchain:
    return zk_prove.Toolchain(node=tools.node, snarkjs_cli=tools.snarkjs[1], rapidsnark=None)


@pytest.fixture
def env(toolchain: zk_prove.Toolchain) -> dict[str, str]:
    out = dict(os.environ)
    out["ZK_PROVER_SNARKJS"] = str(toolchain.snarkjs_cli)
    out.pop("ZK_PROVER_RAPIDSNARK", None)
    return out
