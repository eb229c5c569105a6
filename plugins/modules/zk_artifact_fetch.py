#!/usr/bin/python
"""Ansible module: take a user's circuit artifact (path or URL) whose SHA-256 must match."""

from __future__ import annotations

DOCUMENTATION = r"""
module: zk_artifact_fetch
short_description: A user-supplied circuit artifact (wasm, zkey, vkey), checked by SHA-256
author:
  - tee-proof-kit developers (@tee-proof-kit)
description:
  - I(src) is a local path, a file:// URL or an http(s) URL. Downloads go to C(zk/downloads/<sha256>) in the
    cache and are kept only when their SHA-256 matches; a local file is checked in place.
  - A mismatch fails with both hashes in the message. Nothing is used unchecked.
options:
  src: {description: Path or URL., type: str, required: true}
  sha256: {description: Expected SHA-256 (64 hex digits)., type: str, required: true}
  cache_dir: {description: The kit's cache folder., type: path, required: true}
"""

EXAMPLES = r"""
- name: Fetch a user-supplied proving key, checked by SHA-256
  teeproof.kit.zk_artifact_fetch:
    src: https://example.org/semaphore/circuit_final.zkey
    sha256: 0f3c5e2a4b6d8f0a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b3d5f7a
    cache_dir: "{{ kit_cache_dir }}"
  register: zkey
"""

RETURN = r"""
path: {description: Local path of the checked artifact., type: str, returned: success}
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.zk_artifacts import ArtifactsError, fetch_artifact


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "str", "required": True},
            "sha256": {"type": "str", "required": True},
            "cache_dir": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        path, changed = fetch_artifact(
            p["src"], p["sha256"], Path(p["cache_dir"]), check_only=module.check_mode
        )
    except (ArtifactsError, OSError) as exc:
        module.fail_json(msg=str(exc))
    result = {"changed": changed, "path": str(path)}
    if module._diff:
        result["diff"] = {
            "before": "" if changed else f"{path}: sha256 {p['sha256']}\n",
            "after": f"{path}: sha256 {p['sha256']}\n",
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
