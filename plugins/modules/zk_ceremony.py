#!/usr/bin/python
"""Ansible module: local development ceremony (powers of tau + phase 2), cached. FOR DEVELOPMENT ONLY."""

from __future__ import annotations

DOCUMENTATION = r"""
module: zk_ceremony
short_description: Local one-contributor Groth16 ceremony, cached by content (FOR DEVELOPMENT ONLY)
author:
  - tee-proof-kit developers (@tee-proof-kit)
description:
  - I(stage=ptau) makes phase 1 at I(power), prepared for phase 2, cached per power in C(zk/ptau).
  - I(stage=zkey) makes the circuit's zkey (one contribution) and verification key, cached by the circuit's
    compile key and the power in C(zk/ceremony). Runs phase 1 first if it is not cached.
  - I(stage=groth16py) makes a proving key with groth16py's single-party arkworks setup instead, cached by
    the compile key in C(zk/ceremony); only the groth16py backend reads that key. For large circuits, where
    snarkjs's powers of tau would take hours (the zkEmail circuit needs 2^22). It checks memory and disk
    first and fails before any work when they will not suffice.
  - The proving key of a one-contributor ceremony can be forged by whoever ran it; the module always warns.
options:
  stage: {description: Which part., type: str, choices: [ptau, zkey, groth16py], default: zkey}
  compiled_dir: {description: Folder returned by zk_circuit_compile (needed for stage=zkey)., type: path}
  power: {description: Powers-of-tau power; 0 means the circuit's own need., type: int, default: 0}
  node_modules: {description: tools/zk/node_modules with snarkjs., type: path, required: true}
  cache_dir: {description: The kit's cache folder., type: path, required: true}
"""

EXAMPLES = r"""
- name: Powers of tau (phase 1) at the circuit's own power, cached
  teeproof.kit.zk_ceremony:
    stage: ptau
    compiled_dir: "{{ compiled.dir }}"
    node_modules: "{{ kit_root }}/tools/zk/node_modules"
    cache_dir: "{{ kit_cache_dir }}"

- name: The circuit's proving and verification key (phase 2, one contribution)
  teeproof.kit.zk_ceremony:
    stage: zkey
    compiled_dir: "{{ compiled.dir }}"
    node_modules: "{{ kit_root }}/tools/zk/node_modules"
    cache_dir: "{{ kit_cache_dir }}"
  register: ceremony
"""

RETURN = r"""
dir:
  description: Folder with the zkey (stage=zkey) or the groth16py key (stage=groth16py), and the vkey.
  type: str
  returned: success
ptau: {description: The prepared phase-1 file (stage=ptau)., type: str, returned: success}
stages:
  description: "Stages run, with seconds (none on a cache hit)."
  type: list
  elements: dict
  returned: always
"""

import json
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.zk_artifacts import (
    DEV_ONLY_WARNING,
    ArtifactsError,
    Compiled,
    Tools,
    ensure_groth16py_key,
    ensure_ptau,
    ensure_zkey,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "stage": {"type": "str", "choices": ["ptau", "zkey", "groth16py"], "default": "zkey"},
            "compiled_dir": {"type": "path"},
            "power": {"type": "int", "default": 0},
            "node_modules": {"type": "path", "required": True},
            "cache_dir": {"type": "path", "required": True},
        },
        required_if=[("stage", "zkey", ["compiled_dir"]), ("stage", "groth16py", ["compiled_dir"])],
        supports_check_mode=True,
    )
    p = module.params
    cache = Path(p["cache_dir"])
    module.warn(DEV_ONLY_WARNING)
    try:
        tools = Tools.from_kit(node_modules=Path(p["node_modules"]))
        compiled = None
        power = p["power"]
        info_file = Path(p["compiled_dir"] or "/nonexistent") / "info.json"
        if info_file.is_file():
            meta = json.loads(info_file.read_text())
            compiled = Compiled(
                meta["key"], info_file.parent, meta["r1cs"], meta["inputs"], meta["compiler"], True, False
            )
            power = power or compiled.power
        elif not module.check_mode and p["stage"] in ("zkey", "groth16py"):
            module.fail_json(msg=f"{info_file} not found: run zk_circuit_compile first")
        if p["stage"] == "ptau":
            if not power:
                if module.check_mode:
                    module.exit_json(changed=True, stages=[])
                module.fail_json(msg="power is 0 and no compiled circuit tells which power is needed")
            ptau, changed, stages = ensure_ptau(power, cache, tools, check_only=module.check_mode)
            module.exit_json(changed=changed, ptau=str(ptau), power=power, stages=stages)
        if compiled is None:  # check mode before the first compile
            module.exit_json(changed=True, stages=[])
            return
        if p["stage"] == "groth16py":
            zdir, changed, stages = ensure_groth16py_key(compiled, cache, check_only=module.check_mode)
            module.exit_json(changed=changed, dir=str(zdir), power=None, stages=stages)
        zdir, changed, stages = ensure_zkey(compiled, power, cache, tools, check_only=module.check_mode)
    except (ArtifactsError, OSError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=changed, dir=str(zdir), power=power, stages=stages)


if __name__ == "__main__":
    main()
