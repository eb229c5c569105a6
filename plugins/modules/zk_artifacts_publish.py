#!/usr/bin/python
"""Ansible module: write the circuit artifacts folder and its manifest (hashes), idempotently."""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.zk_artifacts import publish

DOCUMENTATION = r"""
module: zk_artifacts_publish
short_description: Copy circuit artifacts into one folder and write manifest.json with their SHA-256
description:
  - Copies each file only when its content or mode differs, writes manifest.json only when it differs,
    and removes files of an earlier publication that are no longer part of the set.
options:
  dest: {description: Output folder., type: path, required: true}
  files: {description: Name in dest -> source path., type: dict, required: true}
  info: {description: "Extra manifest fields: circuit, inputs, ceremony.", type: dict, default: {}}
"""

RETURN = r"""
manifest: {description: The manifest written., type: dict, returned: always}
"""


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
    try:
        manifest, changed = publish(Path(p["dest"]), files, dict(p["info"]), check_only=module.check_mode)
    except OSError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=changed, manifest=manifest)


if __name__ == "__main__":
    main()
