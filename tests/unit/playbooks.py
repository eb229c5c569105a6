"""Running the kit's playbooks from unit tests (the lab inventory, a build folder of the test's own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_prove(tmp_path: Path, extra: Mapping[str, object]) -> subprocess.CompletedProcess[str]:
    """playbooks/prove.yml with ``extra`` as its extra vars and KIT_BUILD_DIR under ``tmp_path``."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "KIT_BUILD_DIR": str(tmp_path / "build"),
    }
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ROOT / "inventories" / "lab")]
    argv += [str(ROOT / "playbooks" / "prove.yml"), "-e", json.dumps(extra)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
