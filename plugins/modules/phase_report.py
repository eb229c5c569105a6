#!/usr/bin/python
"""Ansible module: write the phase table of playbooks/prove.yml as JSON (logic: module_utils)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: phase_report
short_description: Write the prove.yml phase table (Keylime, TDX, delivery, proving, total)
description:
  - Turns controller timestamps and the prover time measured in the guest into phase durations, writes
    them as JSON and returns the table as text.
options:
  path:
    description: JSON file to write.
    type: path
    required: true
  times:
    description: >-
      Unix timestamps start, registered, tdx_done, bound, keylime_start, keylime_done, delivered, fetched,
      verified.
    type: dict
    required: true
  guest_proving_seconds:
    description: Proving time measured inside the guest.
    type: float
    required: true
  simulated:
    description: The run used the SIMULATED lab (said in the table).
    type: bool
    default: false
author:
  - tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: Write the phase table
  teeproof.kit.phase_report:
    path: /work/main/build/lab/site/prove/phases.json
    times: {start: 1.0, registered: 1.5, tdx_done: 2.0, bound: 2.5, keylime_start: 3.0, keylime_done: 5.0,
            delivered: 6.0, fetched: 20.0, verified: 21.0}
    guest_proving_seconds: 12.5
"""

RETURN = r"""
table:
  description: The phase table as text.
  returned: success
  type: str
phases:
  description: Phase names and seconds.
  returned: success
  type: list
  elements: dict
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.phase_report import ReportError, write_report


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "times": {"type": "dict", "required": True},
            "guest_proving_seconds": {"type": "float", "required": True},
            "simulated": {"type": "bool", "default": False},
        },
        supports_check_mode=False,
    )
    p = module.params
    out = Path(p["path"])
    before = out.read_text(encoding="utf-8") if out.is_file() else ""
    try:
        times = {k: float(v) for k, v in p["times"].items()}
        report = write_report(p["path"], times, p["guest_proving_seconds"], p["simulated"])
    except (ReportError, ValueError, TypeError, OSError) as exc:
        module.fail_json(msg=str(exc))
    after = out.read_text(encoding="utf-8")
    result = {"changed": after != before, "table": report["table"], "phases": report["phases"]}
    if module._diff:
        result["diff"] = {
            "before": before,
            "after": after,
            "before_header": str(out),
            "after_header": str(out),
        }
    module.exit_json(simulated=p["simulated"], **result)


if __name__ == "__main__":
    main()
