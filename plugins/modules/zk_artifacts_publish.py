#!/usr/bin/python
"""Ansible module: write the circuit artifacts folder and its manifest (hashes), idempotently."""

from __future__ import annotations

DOCUMENTATION = r"""
module: zk_artifacts_publish
short_description: Copy circuit artifacts into one folder and write manifest.json with their SHA-256
author:
  - tee-proof-kit developers (@tee-proof-kit)
description:
  - Copies each file only when its content or mode differs, writes manifest.json only when it differs,
    and removes files of an earlier publication that are no longer part of the set.
options:
  dest: {description: Output folder., type: path, required: true}
  files: {description: Name in dest -> source path., type: dict, required: true}
  info: {description: "Extra manifest fields: circuit, inputs, ceremony.", type: dict, default: {}}
"""

EXAMPLES = r"""
- name: Publish the circuit's artifacts with their manifest
  teeproof.kit.zk_artifacts_publish:
    dest: "{{ kit_build_dir }}/zk/semaphore20"
    files:
      circuit.wasm: "{{ compiled.dir }}/circuit_js/circuit.wasm"
      circuit_final.zkey: "{{ ceremony.dir }}/circuit_final.zkey"
      verification_key.json: "{{ ceremony.dir }}/verification_key.json"
    info:
      circuit: semaphore20
      ceremony: development
"""

RETURN = r"""
manifest: {description: The manifest written., type: dict, returned: always}
"""

import json
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.zk_artifacts import publish
from ansible_collections.teeproof.kit.plugins.module_utils.zk_prove import MANIFEST


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            "files": {"type": "dict", "required": True},
            "info": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    p = module.params
    files = {str(k): Path(v) for k, v in p["files"].items()}
    missing = [str(v) for v in files.values() if not v.is_file()]
    if missing and not module.check_mode:
        module.fail_json(msg=f"missing artifact(s): {', '.join(missing)}")
    if missing:
        module.exit_json(changed=True, manifest={})
    manifest_path = Path(p["dest"]) / MANIFEST
    before = manifest_path.read_text() if manifest_path.is_file() else ""
    try:
        manifest, changed = publish(Path(p["dest"]), files, dict(p["info"]), check_only=module.check_mode)
    except OSError as exc:
        module.fail_json(msg=str(exc))
    result = {"changed": changed, "manifest": manifest}
    if module._diff:
        after = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        result["diff"] = {
            "before": before,
            "after": after,
            "before_header": str(manifest_path),
            "after_header": str(manifest_path),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
