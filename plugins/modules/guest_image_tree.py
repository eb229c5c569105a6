#!/usr/bin/python
"""Ansible module: content digest and secret scan of an image root filesystem folder."""

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_image_tree
short_description: Digest an image's root filesystem folder and scan it for secrets
description:
  - Returns a SHA-256 over every entry's path, type, mode, owner and content (not timestamps).
  - Lists files that hold private keys or other secrets; never changes anything.
options:
  root: {description: Folder to read., type: path, required: true}
  scan_secrets: {description: Scan for secrets too., type: bool, default: true}
  allow: {description: Path regexes whose findings are accepted., type: list, elements: str, default: []}
  listing:
    description: Write every entry (path to type, mode, owner and content digest) to this JSON file.
    type: path
  exclude:
    description: Paths (in the tree) left out of the digest, e.g. a file written from the digest itself.
    type: list
    elements: str
    default: []
author:
  - tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: Digest the rootfs
  guest_image_tree:
    root: /work/main/build/image/rootfs
  register: tree
"""

RETURN = r"""
digest: {description: SHA-256 of the tree., type: str, returned: always}
files: {description: Regular files., type: int, returned: always}
bytes: {description: Bytes in regular files., type: int, returned: always}
secrets: {description: "Findings: path and reason.", type: list, returned: always}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.image_tree import tree_report


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "scan_secrets": {"type": "bool", "default": True},
            "allow": {"type": "list", "elements": "str", "default": []},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "listing": {"type": "path"},
        },
        supports_check_mode=True,
    )
    try:
        p = module.params
        report = tree_report(p["root"], p["scan_secrets"], p["allow"], p["exclude"])
        if p["listing"]:
            with open(p["listing"] + ".partial", "w", encoding="utf-8") as out:
                json.dump(report.entries, out, indent=0, sort_keys=True)
            os.replace(p["listing"] + ".partial", p["listing"])
    except OSError as exc:
        module.fail_json(msg=f"cannot read {module.params['root']}: {exc}")
    module.exit_json(
        changed=False,
        digest=report.digest,
        files=report.files,
        bytes=report.bytes,
        secrets=[{"path": f.path, "reason": f.reason} for f in report.findings],
    )


if __name__ == "__main__":
    main()
