#!/usr/bin/python
"""Ansible module: pack an image root filesystem into ext4 + its dm-verity hash tree (reproducibly)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_image_pack
short_description: Pack a root filesystem folder into an ext4 disk image followed by its dm-verity hash tree
description:
  - mkfs.ext4 -d (no loop mount) then veritysetup format on the same file (hash tree after the filesystem),
    then veritysetup verify of the result.
  - Reproducible - the filesystem UUID, hash seed and time (O(epoch))
    and the verity salt and UUID are fixed, so the same folder gives the same bytes and root hash.
  - The output is written to a partial file and moved into place only when complete.
options:
  rootfs: {description: Folder to pack., type: path, required: true}
  dest: {description: Disk image to write., type: path, required: true}
  size_mib:
    description: Size of the filesystem in MiB (the hash tree comes on top).
    type: int
    required: true
  label: {description: ext4 label., type: str, default: root}
  fs_uuid: {description: UUID of the filesystem and of the verity superblock., type: str, required: true}
  salt: {description: Verity salt (64 hex digits)., type: str, required: true}
  epoch:
    description: Time mke2fs writes (superblock, lost+found); also the time clamped entries get.
    type: int
    required: true
  clamp_after:
    description: Entries whose mtime is later than this (seconds) get the time I(epoch); unset keeps all.
    type: float
author:
  - tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: Pack the rootfs
  guest_image_pack:
    rootfs: /work/main/build/image/rootfs
    dest: /work/main/build/image/disk.raw
    size_mib: 800
    fs_uuid: 7e3c5b1e-6a4f-4c8e-9b0d-2f1a3c4d5e6f
    salt: "{{ 'my salt' | hash('sha256') }}"
    epoch: 1704067200
  register: packed
"""

RETURN = r"""
verity:
  description: root_hash, salt, hash_algorithm, data_blocks, hash_offset (bytes) and size_bytes of the image.
  type: dict
  returned: success
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.verity_pack import PackError, pack, verify


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "rootfs": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "size_mib": {"type": "int", "required": True},
            "label": {"type": "str", "default": "root"},
            "fs_uuid": {"type": "str", "required": True},
            "salt": {"type": "str", "required": True},
            "epoch": {"type": "int", "required": True},
            "clamp_after": {"type": "float"},
        },
        supports_check_mode=False,
    )
    p = module.params
    try:
        info = pack(
            Path(p["rootfs"]),
            Path(p["dest"]),
            p["size_mib"],
            label=p["label"],
            fs_uuid=p["fs_uuid"],
            salt=p["salt"],
            epoch=p["epoch"],
            clamp_after=p["clamp_after"],
        )
        verify(Path(p["dest"]), info)
    except (PackError, OSError) as exc:
        module.fail_json(msg=f"packing {p['rootfs']} into {p['dest']} failed: {exc}")
    module.exit_json(changed=True, verity=info.to_dict())


if __name__ == "__main__":
    main()
