"""The lab's TD host is a container of its own that sees only the TD host's folders (inventories/lab).

The TD host is the party the kit distrusts. Its container must never mount the checkout, the prove folder
(the client's input, proof and commit key) or the SIMULATED provider's folder (the key that signs quotes), and
it mounts the image and the releases read-only, each folder at its own path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
QUERY = (
    "{{ {'volumes': lab_containers_host_volumes, 'packages': lab_containers_host_packages,"
    " 'container': ansible_host, 'connection': ansible_connection,"
    " 'provider_host': td_host_provider_host, 'provider_dir': td_host_provider_dir,"
    " 'run_dir': td_host_run_dir, 'prove_dir': kit_lab_prove_dir, 'build_dir': kit_build_dir,"
    " 'controller': groups['controller']} | to_json }}"
)


def _under(path: str, folder: str) -> bool:
    return Path(path) == Path(folder) or Path(folder) in Path(path).parents


@pytest.fixture(scope="module", params=["site", "e2e"])
def td_host(request: pytest.FixtureRequest) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_LOG_PATH",)}
    env.update(KIT_LAB=request.param, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), KIT_ROOT=str(ROOT))
    env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    argv = [str(BIN / "ansible"), "-i", str(ROOT / "inventories" / "lab"), "td_host", "-m", "debug"]
    run = subprocess.run(
        [*argv, "-a", f"msg={QUERY}"], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    # (the JSON report sits between the profiling callback's lines)
    report, _end = json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("{") :])
    hosts = report["plays"][0]["tasks"][0]["hosts"]
    assert list(hosts) == ["kit-td-host"]
    values: dict[str, Any] = json.loads(hosts["kit-td-host"]["msg"])
    values["lab"] = request.param
    return values


def test_the_td_host_is_a_container_of_its_own_with_qemu(td_host: dict[str, Any]) -> None:
    assert td_host["connection"] == "containers.podman.podman"
    assert td_host["container"] == f"kit-td-host-{td_host['lab']}"
    assert "kit-td-host" not in td_host["controller"]
    assert {"qemu-system-x86", "netcat-openbsd"} <= set(td_host["packages"])
    assert not {"swtpm", "swtpm-tools"} & set(td_host["packages"])  # the TD's vTPM is not the host's


def test_the_td_host_container_sees_only_the_td_hosts_folders(td_host: dict[str, Any]) -> None:
    secret_holders = [td_host["prove_dir"], td_host["provider_dir"], str(ROOT)]
    volumes = [v.split(":") for v in td_host["volumes"]]
    assert any(_under(td_host["run_dir"], v[0]) for v in volumes), "the run folder is not mounted"
    for volume in volumes:
        source, dest = volume[0], volume[1]
        assert source == dest, f"{source} is mounted at another path ({dest})"
        for folder in secret_holders:
            assert not _under(folder, source), f"the TD host's container would see {folder} (mount {source})"
        if _under(source, td_host["build_dir"] + "/image") or source.endswith("/releases"):
            assert volume[2:] == ["ro"], f"{source} must be read-only for the TD host"


def test_the_simulated_provider_runs_on_the_controller_outside_the_td_hosts_folders(
    td_host: dict[str, Any],
) -> None:
    assert td_host["provider_host"] in td_host["controller"]
    assert not any(_under(td_host["provider_dir"], v.split(":")[0]) for v in td_host["volumes"])
