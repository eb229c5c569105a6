#!/usr/bin/python
"""Ansible module: start, stop or inspect the TD guest (logic in module_utils/td_launch.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: td_launch
short_description: Start, stop or report the TD guest (real TDX host or the SIMULATED lab launch)
description:
  - O(state=started) launches the guest unless the same launch (same spec) already runs, then waits
    until its SSH port answers; a guest that does not come up fails with the tail of its serial log.
  - O(state=stopped) stops QEMU, the vTPM and the SIMULATED provider; the serial log is kept.
  - O(state=status) only reports.
  - O(mode=lab) is SIMULATED (QEMU TCG, test-PKI TDX quotes) and says so in every result.
  - No mode attaches a TPM; the TD's vTPM runs inside the TD.
options:
  state:
    description: Wanted state.
    type: str
    choices: [started, stopped, status]
    default: started
  mode:
    description: C(lab) (QEMU TCG + SIMULATED TDX provider) or C(tdx) (real TDX host).
    type: str
    choices: [lab, tdx]
    default: lab
  image_dir:
    description: Folder with vmlinuz, initrd.img and disk.raw (or disk.qcow2).
    type: path
    required: true
  run_dir:
    description: Folder for the overlay, pid files, serial log, vTPM state and its CA.
    type: path
    required: true
  cmdline:
    description: Kernel command line given to the guest.
    type: str
    required: true
  memory_mib:
    description: Guest memory (the SIMULATED provider's RTMR1 assumes 2048).
    type: int
    default: 2048
  smp:
    description: Guest vCPUs.
    type: int
    default: 2
  ssh_port:
    description: Loopback port forwarded to the guest's SSH.
    type: int
    default: 2222
  agent_port:
    description: Loopback port forwarded to the guest's Keylime agent.
    type: int
    default: 9002
  agent_guest_port:
    description: The port the agent listens on inside the guest (the image's C(keylime_agent_port)).
    type: int
    default: 9002
  session_port:
    description: Loopback port forwarded to the guest's session service (session mode).
    type: int
    default: 9010
  session_guest_port:
    description: The port the session service listens on inside the guest (C(zk_prover_session_port)).
    type: int
    default: 9010
  provider_guest_ip:
    description: >-
      Address of QEMU's user network at which the guest finds its own SIMULATED provider (lab); forwarded
      to the provider's unix socket in O(run_dir), which answers only this launch's QEMU.
    type: str
    default: 10.0.2.101
  provider_guest_port:
    description: Port of O(provider_guest_ip).
    type: int
    default: 8479
  registrar_host:
    description: Where the host forwards the guest's registrar connections (the client side's registrar).
    type: str
    default: 127.0.0.1
  registrar_port:
    description: The registrar's port on O(registrar_host).
    type: int
    default: 8890
  registrar_guest_ip:
    description: >-
      Address of QEMU's user network at which the guest finds its registrar (the image's
      C(keylime_agent_registrar_ip)); forwarded to O(registrar_host):O(registrar_port).
    type: str
    default: 10.0.2.100
  registrar_guest_port:
    description: Port at which the guest finds its registrar (the image's C(keylime_agent_registrar_port)).
    type: int
    default: 8890
  firmware:
    description: TDX firmware (TDVF) for O(mode=tdx); optional in the lab (changes the simulated MRTD).
    type: str
    default: ""
  acpi_tables:
    description: >-
      ACPI tables (absolute paths) the launch adds to QEMU's own (C(-acpitable file=...)). Host-chosen
      firmware configuration: TDVF measures each into RTMR0 (in the lab, the launch's SIMULATED provider,
      which must be given the same list). Empty for the reference launch.
    type: list
    elements: str
    default: []
  qgs_socket:
    description: Unix socket of the host's quote generation service (O(mode=tdx)).
    type: str
    default: /var/run/tdx-qgs/qgs.socket
  provider_managed:
    description: >-
      O(mode=lab): C(true) the launch runs its own SIMULATED provider (its state in O(run_dir)); C(false)
      the provider runs elsewhere (the lab's controller, M(teeproof.kit.tdx_sim_provider), so that the TD
      host never holds the key that signs quotes) and the launch only forwards its guest to the socket in
      O(run_dir), refusing to start without it.
    type: bool
    default: true
  kit_root:
    description: The kit's checkout (for bin/tdx-sim-provider).
    type: path
    required: true
  python:
    description: Python that runs the SIMULATED provider (needs cryptography and dcap-qvl).
    type: path
    required: true
  boot_timeout:
    description: Seconds to wait for SSH.
    type: int
    default: 420
author:
  - tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: Launch the lab guest
  teeproof.kit.td_launch:
    image_dir: /work/main/build/image
    run_dir: /work/main/build/lab/site/td-host
    cmdline: "{{ lookup('ansible.builtin.file', '/work/main/build/image/cmdline') }}"
    kit_root: /work/main
    python: /work/main/.venv/bin/python
"""

RETURN = r"""
running:
  description: QEMU (and in the lab the provider) run.
  returned: always
  type: bool
simulated:
  description: True for the lab launch.
  returned: always
  type: bool
serial_tail:
  description: End of the serial log (on failure and for O(state=status)).
  returned: when available
  type: str
boot_attempts:
  description: >-
    Boots it took (0 when the same guest already ran). In the lab a boot that dies of TCG's code-patching race
    (C(Oops: int3)) is launched once more; no other failure is.
  returned: O(state=started)
  type: int
retried_because:
  description: Why the lab launched a second boot.
  returned: when a boot was retried
  type: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.td_launch import (
    LaunchSpec,
    TdHostError,
    serial_tail,
    start,
    status,
    stop,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["started", "stopped", "status"], "default": "started"},
            "mode": {"type": "str", "choices": ["lab", "tdx"], "default": "lab"},
            "image_dir": {"type": "path", "required": True},
            "run_dir": {"type": "path", "required": True},
            "cmdline": {"type": "str", "required": True},
            "memory_mib": {"type": "int", "default": 2048},
            "smp": {"type": "int", "default": 2},
            "ssh_port": {"type": "int", "default": 2222},
            "agent_port": {"type": "int", "default": 9002},
            "agent_guest_port": {"type": "int", "default": 9002},
            "session_port": {"type": "int", "default": 9010},
            "session_guest_port": {"type": "int", "default": 9010},
            "provider_guest_ip": {"type": "str", "default": "10.0.2.101"},
            "provider_guest_port": {"type": "int", "default": 8479},
            "registrar_host": {"type": "str", "default": "127.0.0.1"},
            "registrar_port": {"type": "int", "default": 8890},
            "registrar_guest_ip": {"type": "str", "default": "10.0.2.100"},
            "registrar_guest_port": {"type": "int", "default": 8890},
            "firmware": {"type": "str", "default": ""},
            "acpi_tables": {"type": "list", "elements": "str", "default": []},
            "qgs_socket": {"type": "str", "default": "/var/run/tdx-qgs/qgs.socket"},
            "provider_managed": {"type": "bool", "default": True},
            "kit_root": {"type": "path", "required": True},
            "python": {"type": "path", "required": True},
            "boot_timeout": {"type": "int", "default": 420},
        },
        supports_check_mode=True,
    )
    p = module.params
    spec = LaunchSpec(
        mode=p["mode"],
        image_dir=p["image_dir"],
        run_dir=p["run_dir"],
        cmdline=p["cmdline"].strip(),
        memory_mib=p["memory_mib"],
        smp=p["smp"],
        ssh_port=p["ssh_port"],
        agent_port=p["agent_port"],
        agent_guest_port=p["agent_guest_port"],
        session_port=p["session_port"],
        session_guest_port=p["session_guest_port"],
        provider_guest_ip=p["provider_guest_ip"],
        provider_guest_port=p["provider_guest_port"],
        registrar_host=p["registrar_host"],
        registrar_port=p["registrar_port"],
        registrar_guest_ip=p["registrar_guest_ip"],
        registrar_guest_port=p["registrar_guest_port"],
        firmware=p["firmware"],
        qgs_socket=p["qgs_socket"],
        acpi_tables=tuple(p["acpi_tables"]),
        kit_root=p["kit_root"],
        provider_managed=p["provider_managed"],
    )
    try:
        spec.validate()
        current = status(spec)
        result: dict[str, Any]
        if p["state"] == "status":
            result = {**current, "changed": False, "serial_tail": serial_tail(spec.run)}
        elif p["state"] == "stopped":
            changed = any(current["processes"].values())
            if changed and not module.check_mode:
                stop(spec)
            result = {**status(spec), "changed": changed}
        elif module.check_mode:
            result = {**current, "changed": not (current["running"] and current["matches_spec"])}
        else:
            result = start(spec, p["python"], float(p["boot_timeout"]))
    except TdHostError as exc:
        module.fail_json(msg=str(exc), serial_tail=exc.serial_tail, simulated=spec.mode == "lab")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
