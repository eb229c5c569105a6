#!/usr/bin/python
"""Ansible module: the lab's SIMULATED TDX provider, on the controller (logic: module_utils/td_launch.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tdx_sim_provider
short_description: Start, stop or report the lab's SIMULATED TDX provider (the stand-in for the TDX module)
description:
  - SIMULATED, lab only. The provider stands where a TDX host's quoting enclave and the CPU's TDX module
    stand. It measures the kernel, initrd, command line and firmware a launch hands QEMU into MRTD and the
    RTMRs, and signs quotes with a test PKI (the simulated PCK key) kept in O(state_dir).
  - It runs on the controller, beside the TD host rather than in it, so the TD host never holds the key that
    signs quotes. A real host relays quotes but cannot forge them.
  - It answers on O(run_dir)/provider.sock only connections that carry the token it writes to
    O(run_dir)/provider.token, which the launch's guest forward sends (M(teeproof.kit.td_launch) with
    O(teeproof.kit.td_launch#module:provider_managed=false)).
  - O(state=started) is idempotent. The same spec keeps the running provider; another one restarts it, with a
    fresh token and fresh collateral. O(state=stopped) removes its socket and token and keeps its PKI.
options:
  state:
    description: Wanted state.
    type: str
    choices: [started, stopped, status]
    default: started
  state_dir:
    description: The provider's own folder on this machine (test PKI, collateral, log). Never the TD host's.
    type: path
    required: true
  run_dir:
    description: The launch's run folder, which the TD host shares (socket and token).
    type: path
    required: true
  image_dir:
    description: Folder with the vmlinuz and initrd.img the launch hands QEMU.
    type: path
    required: true
  cmdline:
    description: The kernel command line the launch hands QEMU.
    type: str
    required: true
  firmware:
    description: The firmware (TDVF) the launch names, measured into MRTD.
    type: str
    default: ""
  kit_root:
    description: The kit's checkout (bin/tdx-sim-provider).
    type: path
    required: true
  python:
    description: Python that runs the provider (needs cryptography and dcap-qvl; the kit's .venv).
    type: path
    required: true
  memory_mib:
    description: The launch's guest memory; the SIMULATED TD HOB event of RTMR0 names it.
    type: int
    default: 2048
  smp:
    description: The launch's vCPUs; the SIMULATED TD HOB event of RTMR0 names them.
    type: int
    default: 2
  acpi_tables:
    description: >-
      The ACPI tables the launch adds (M(teeproof.kit.td_launch) O(acpi_tables)); one RTMR0 event each.
    type: list
    elements: path
    default: []
author:
  - tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: The lab guest's provider, on the controller
  teeproof.kit.tdx_sim_provider:
    state_dir: /work/main/build/lab/site/tdx-sim
    run_dir: /work/main/build/lab/site/td-host
    image_dir: /work/main/build/image
    cmdline: "{{ lookup('ansible.builtin.file', '/work/main/build/image/cmdline') }}"
    kit_root: /work/main
    python: /work/main/.venv/bin/python
"""

RETURN = r"""
running:
  description: The provider runs and its socket is there.
  returned: always
  type: bool
collateral:
  description: The SIMULATED collateral the controller checks quotes with.
  returned: always
  type: str
root:
  description: The SIMULATED test root (DER) the controller trusts in the lab only.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.td_launch import (
    ProviderSpec,
    TdHostError,
    provider_start,
    provider_status,
    provider_stop,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["started", "stopped", "status"], "default": "started"},
            "state_dir": {"type": "path", "required": True},
            "run_dir": {"type": "path", "required": True},
            "image_dir": {"type": "path", "required": True},
            "cmdline": {"type": "str", "required": True},
            "firmware": {"type": "str", "default": ""},
            "kit_root": {"type": "path", "required": True},
            "python": {"type": "path", "required": True},
            "memory_mib": {"type": "int", "default": 2048},
            "smp": {"type": "int", "default": 2},
            "acpi_tables": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    spec = ProviderSpec.for_image(
        p["state_dir"],
        p["run_dir"],
        p["image_dir"],
        p["cmdline"].strip(),
        p["firmware"],
        p["kit_root"],
        p["memory_mib"],
        p["smp"],
        p["acpi_tables"],
    )
    current = provider_status(spec)
    try:
        if p["state"] == "status":
            changed = False
        elif p["state"] == "stopped":
            changed = bool(current["running"])
            if not module.check_mode:
                changed = provider_stop(spec) or changed
        elif module.check_mode:
            changed = not current["matches_spec"]
        else:
            changed = provider_start(spec, p["python"])
    except TdHostError as exc:
        module.fail_json(msg=str(exc), simulated=True)
    module.exit_json(changed=changed, **provider_status(spec))


if __name__ == "__main__":
    main()
