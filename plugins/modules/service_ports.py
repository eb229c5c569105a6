#!/usr/bin/python
"""Ansible module: wait until a systemd unit's own processes listen on its TCP ports."""

from __future__ import annotations

DOCUMENTATION = r"""
module: service_ports
short_description: Wait until a systemd unit's own processes listen on its TCP ports
description:
  - A service can show as active while another process holds its port; on a shared host network that may
    be another container's service, which a plain port probe would take for this one. This module waits
    until each port's listening socket belongs to a process in the unit's control group.
  - On time-out it fails with the reason (the port is free, held by another process, or held by a process
    this host cannot see) and the end of the unit's journal.
options:
  unit: {description: The systemd unit (with or without C(.service))., type: str, required: true}
  ports: {description: TCP ports the unit must listen on., type: list, elements: int, required: true}
  timeout: {description: Seconds to wait., type: int, default: 60}
author:
  - tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: Wait until the verifier itself listens on its port
  service_ports:
    unit: keylime_verifier
    ports: [8881]
    timeout: 60
"""

RETURN = r"""
listening: {description: Port -> pid of the unit's process that listens., type: dict, returned: success}
"""

import time
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.port_owner import owners


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "ports": {"type": "list", "elements": "int", "required": True},
            "timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    unit: str = module.params["unit"]
    ports: list[int] = module.params["ports"]
    bad = [p for p in ports if not 1 <= p <= 65535]
    if bad or not ports:
        module.fail_json(msg=f"ports: {bad or 'empty'} are not TCP ports (1-65535)")
    deadline = time.monotonic() + max(0, module.params["timeout"])
    while True:
        _rc, main_pid, _err = module.run_command(["systemctl", "show", "-p", "MainPID", "--value", unit])
        state = owners(ports, unit, Path("/proc"), int(main_pid.strip() or 0) or None)
        if all(o.state == "ours" for o in state):
            module.exit_json(changed=False, listening={str(o.port): o.pid for o in state})
        if time.monotonic() >= deadline:
            break
        time.sleep(1)
    problems = [o.describe(unit) for o in state if o.state != "ours"]
    _rc, journal, _err = module.run_command(["journalctl", "-u", unit, "-n", "15", "--no-pager", "-o", "cat"])
    _rc, active, _err = module.run_command(["systemctl", "is-active", unit])
    module.fail_json(
        msg=f"{unit} ({active.strip() or 'unknown'}) does not serve its ports: {'; '.join(problems)}",
        journal_tail=journal.splitlines()[-15:],
    )


if __name__ == "__main__":
    main()
