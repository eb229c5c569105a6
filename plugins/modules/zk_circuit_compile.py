#!/usr/bin/python
"""Ansible module: compile a circom circuit with circom2 (r1cs, wasm, C++ witness generator), cached."""

from __future__ import annotations

DOCUMENTATION = r"""
module: zk_circuit_compile
short_description: Compile a circom circuit into the kit's content-addressed cache
author:
  - tee-proof-kit developers (@tee-proof-kit)
description:
  - Compiles with the pinned circom2 (tools/zk) into C($KIT_CACHE_DIR/zk/compile/<key>), where the key is the
    SHA-256 of the sources (main file and every include, by content), the compiler version and the flags.
  - Builds the C++ witness generator with make when I(cpp) is true. A cache hit changes nothing.
options:
  circuit: {description: Main .circom file., type: path, required: true}
  include_paths: {description: Include folders (circom -l)., type: list, elements: path, default: []}
  node_modules: {description: tools/zk/node_modules with circom2 and snarkjs., type: path, required: true}
  cache_dir: {description: The kit's cache folder., type: path, required: true}
  cpp: {description: Also build the C++ witness generator., type: bool, default: true}
  optimize: {description: circom optimisation flag., type: str, default: --O2, choices: [--O0, --O1, --O2]}
"""

EXAMPLES = r"""
- name: Compile the circuit with circom2, cached by sources, compiler and flags
  teeproof.kit.zk_circuit_compile:
    circuit: "{{ kit_root }}/circuits/semaphore/semaphore20.circom"
    include_paths: ["{{ kit_root }}/tools/zk/node_modules"]
    node_modules: "{{ kit_root }}/tools/zk/node_modules"
    cache_dir: "{{ kit_cache_dir }}"
    cpp: true
  register: compiled
"""

RETURN = r"""
key: {description: Compile cache key., type: str, returned: always}
dir: {description: Cache folder of the compiled circuit., type: str, returned: always}
constraints: {description: Constraint count., type: int, returned: success}
power: {description: Powers-of-tau power the circuit needs., type: int, returned: success}
inputs: {description: Main input signals and dimensions., type: dict, returned: success}
stages:
  description: "Stages run, with seconds (none on a cache hit)."
  type: list
  elements: dict
  returned: always
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.zk_artifacts import (
    ArtifactsError,
    Tools,
    compile_circuit,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "circuit": {"type": "path", "required": True},
            "include_paths": {"type": "list", "elements": "path", "default": []},
            "node_modules": {"type": "path", "required": True},
            "cache_dir": {"type": "path", "required": True},
            "cpp": {"type": "bool", "default": True},
            "optimize": {"type": "str", "default": "--O2", "choices": ["--O0", "--O1", "--O2"]},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        tools = Tools.from_kit(node_modules=Path(p["node_modules"]))
        compiled = compile_circuit(
            Path(p["circuit"]),
            [Path(x) for x in p["include_paths"]],
            Path(p["cache_dir"]),
            tools,
            cpp=p["cpp"],
            optimize=p["optimize"],
            check_only=module.check_mode,
        )
    except (ArtifactsError, OSError) as exc:
        module.fail_json(msg=str(exc))
    result = {
        "changed": compiled.changed,
        "key": compiled.key,
        "dir": str(compiled.dir),
        "stages": compiled.stages,
        "inputs": compiled.inputs,
        "compiler": compiled.compiler,
    }
    if compiled.info:
        result.update(constraints=compiled.info["constraints"], power=compiled.power, r1cs=compiled.info)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
