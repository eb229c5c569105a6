"""inventories/local (the starting point for real use) never turns simulation on; only the lab does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]


def _values(node: Any, key: str) -> list[Any]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == key]
        return found + [x for v in node.values() for x in _values(v, key)]
    if isinstance(node, list):
        return [x for v in node for x in _values(v, key)]
    return []


def _inventory(name: str) -> list[Any]:
    folder = ROOT / "inventories" / name
    files = [folder / "hosts.yml", *sorted((folder / "group_vars").rglob("*.yml"))]
    return [yaml.safe_load(f.read_text()) for f in files]


def test_local_never_simulates() -> None:
    values = [v for doc in _inventory("local") for v in _values(doc, "kit_tdx_simulated")]
    assert values == []
    hosts = yaml.safe_load((ROOT / "inventories" / "local" / "hosts.yml").read_text())
    assert _values(hosts, "td_host_mode") == ["tdx"]


def test_the_lab_turns_simulation_on_in_its_own_hosts_file_only() -> None:
    lab = yaml.safe_load((ROOT / "inventories" / "lab" / "hosts.yml").read_text())
    assert _values(lab, "kit_tdx_simulated") == [True]
    shared = ROOT / "inventories" / "local" / "group_vars"
    assert (ROOT / "inventories" / "lab" / "group_vars").resolve() == shared


def test_the_boot_chain_pins_are_set_once() -> None:
    kit_tdx = yaml.safe_load((ROOT / "inventories/local/group_vars/all/kit_tdx.yml").read_text())
    assert len(kit_tdx["kit_tdx_firmware_source"]["sha256"]) == 64
    assert set(kit_tdx["kit_tdx_required_measurements"]) == {"mr_td", "rtmr0", "rtmr1", "rtmr2"}
    # nothing is waived by default: RTMR0 is checked event by event (a recorded reference, or the lab's)
    assert kit_tdx["kit_tdx_waivers"] == {}
    assert kit_tdx["kit_tdx_rtmr0_reference"] == ""
    assert set(kit_tdx["kit_tdx_vm_shape"]) == {"memory_mib", "smp"}
    td_host = yaml.safe_load((ROOT / "inventories/local/group_vars/td_host/lab.yml").read_text())
    assert td_host["td_host_memory_mib"] == "{{ kit_tdx_vm_shape.memory_mib }}"
    assert td_host["td_host_smp"] == "{{ kit_tdx_vm_shape.smp }}"
