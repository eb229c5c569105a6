#!/usr/bin/python
"""Ansible module: write the flat allowlist that completes keylime-policy's runtime policy."""

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_image_allowlist
short_description: Write a flat allowlist of an image's measured data files
description:
  - keylime-policy create runtime --rootfs lists only root-owned files; the kit's measured data files
    (prover, agent code) have the measured owner. This writes their SHA-256 as a flat allowlist
    (C(sha256  path)) for keylime-policy's C(--allowlist), plus aliases (files IMA sees under another path).
options:
  root: {description: Image root filesystem folder., type: path, required: true}
  dirs: {description: In-image directories whose files are listed., type: list, elements: str, default: []}
  aliases: {description: In-image file to the other paths it is measured under., type: dict, default: {}}
  tpm_bypass:
    description: >-
      IMA starts without a TPM (the TD's vTPM starts after it): list its boot_aggregate, all zeros, so that
      any other value is refused.
    type: bool
    default: false
  dest: {description: File to write., type: path, required: true}
author:
  - tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: Allowlist of the prover's files
  guest_image_allowlist:
    root: build/image/rootfs
    dirs: [/opt/zk-prover]
    aliases: {/etc/fstab: [/root/etc/fstab]}
    dest: build/image/runtime-policy.allowlist
"""

RETURN = r"""
entries: {description: Lines written., type: int, returned: always}
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.runtime_policy import flat_allowlist


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "dirs": {"type": "list", "elements": "str", "default": []},
            "aliases": {"type": "dict", "default": {}},
            "tpm_bypass": {"type": "bool", "default": False},
            "dest": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        text = flat_allowlist(
            p["root"], p["dirs"], {k: list(v) for k, v in p["aliases"].items()}, p["tpm_bypass"]
        )
        old = None
        if os.path.exists(p["dest"]):
            with open(p["dest"], encoding="utf-8") as f:
                old = f.read()
        changed = old != text
        if changed and not module.check_mode:
            tmp = p["dest"] + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, p["dest"])
    except OSError as exc:
        module.fail_json(msg=f"cannot write the allowlist: {exc}")
    result: dict[str, Any] = {"changed": changed, "entries": text.count("\n")}
    if module._diff:
        result["diff"] = {
            "before": old or "",
            "after": text,
            "before_header": p["dest"],
            "after_header": p["dest"],
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
