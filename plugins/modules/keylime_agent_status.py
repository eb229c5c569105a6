#!/usr/bin/python
"""Ansible module: an agent's record at the Keylime registrar or verifier, read with the tenant CLI."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: keylime_agent_status
short_description: Read (and optionally wait for) an agent's registrar record or verifier verdict
author:
  - tee-proof-kit developers (@tee-proof-kit)
description:
  - Runs C(keylime_tenant -c regstatus) or C(-c cvstatus) for one agent and parses its answer
    (module_utils keylime_status) instead of matching log text in playbooks. The verifier's key share
    C(v) is never returned.
  - With O(wait_for), polls until the agent is registered (O(service=registrar)) or has a verdict
    (O(service=verifier)), up to O(timeout) seconds.
options:
  service:
    description: C(registrar) (regstatus), C(verifier) (cvstatus) or C(agents) (cvlist, the agent ids).
    type: str
    choices: [registrar, verifier, agents]
    required: true
  uuid:
    description: The agent's id (required unless O(service=agents)).
    type: str
  tenant:
    description: The keylime_tenant executable.
    type: path
    default: /opt/keylime/venv/bin/keylime_tenant
  wait_for:
    description: >-
      C(none), C(present) (registrar record exists), C(verdict) (verifier says pass or fail) or C(fail)
      (verifier says fail: a test waits for a tampered agent to be flagged).
    type: str
    choices: [none, present, verdict, fail]
    default: none
  timeout:
    description: Seconds to wait.
    type: int
    default: 120
  interval:
    description: Seconds between polls.
    type: float
    default: 1.0
  ek_tpm:
    description: >-
      An EK (base64 TPM2B_PUBLIC) that a verified claim named: the result says whether the registrar's record
      holds that EK (C(ek_matches)), compared as bytes. O(service=registrar) only.
    type: str
"""

EXAMPLES = r"""
- name: Wait until the registrar holds the agent's record
  teeproof.kit.keylime_agent_status:
    service: registrar
    uuid: "{{ agent_uuid }}"
    wait_for: present
    timeout: 120
  register: registrar_record

- name: Wait for the verifier's verdict on the agent
  teeproof.kit.keylime_agent_status:
    service: verifier
    uuid: "{{ agent_uuid }}"
    wait_for: verdict
    timeout: 90
  register: verdict
"""

RETURN = r"""
uuids: {description: The verifier's agent ids (service agents)., type: list, returned: when service is agents}
exists: {description: The service knows the agent., type: bool, returned: when service is not agents}
record:
  description: "The service's record (aik_tpm, ek_tpm, mtls_cert, ... or operational_state, ...), without v."
  type: dict
  returned: when service is not agents
verdict:
  description: "verifier: pass, fail, pending or absent."
  type: str
  returned: when service is not agents
operational_state: {description: The verifier's state name., type: str, returned: when service is not agents}
ek_matches:
  description: The registrar's record holds O(ek_tpm) (false when there is no record).
  type: bool
  returned: when ek_tpm is given
elapsed: {description: Seconds waited., type: float, returned: when service is not agents}
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.keylime_status import (
    AgentStatus,
    StatusError,
    parse,
    parse_list,
)
from ansible_collections.teeproof.kit.plugins.module_utils.td_claims import same_ek


def _done(status: AgentStatus, service: str, wait_for: str) -> bool:
    if wait_for == "present":
        return bool(status.exists)
    if wait_for == "verdict":
        return bool(status.verdict() in ("pass", "fail"))
    if wait_for == "fail":
        return bool(status.verdict() == "fail")
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "service": {"type": "str", "choices": ["registrar", "verifier", "agents"], "required": True},
            "uuid": {"type": "str"},
            "tenant": {"type": "path", "default": "/opt/keylime/venv/bin/keylime_tenant"},
            "wait_for": {"type": "str", "choices": ["none", "present", "verdict", "fail"], "default": "none"},
            "timeout": {"type": "int", "default": 120},
            "interval": {"type": "float", "default": 1.0},
            "ek_tpm": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["service"] == "agents":
        rc, out, err = module.run_command([p["tenant"], "-c", "cvlist"])
        try:
            module.exit_json(changed=False, uuids=parse_list(out + "\n" + err))
        except StatusError as exc:
            module.fail_json(msg=f"keylime_tenant -c cvlist (rc {rc}): {exc}")
    if not p["uuid"]:
        module.fail_json(msg=f"service={p['service']} needs uuid")
    if p["ek_tpm"] and p["service"] != "registrar":
        module.fail_json(msg="ek_tpm is compared with the registrar's record: it needs service=registrar")
    command = "regstatus" if p["service"] == "registrar" else "cvstatus"
    started = time.monotonic()
    while True:
        rc, out, err = module.run_command([p["tenant"], "-c", command, "-u", p["uuid"]])
        try:
            status = parse(out + "\n" + err, p["uuid"])
        except StatusError as exc:
            module.fail_json(msg=f"keylime_tenant -c {command} (rc {rc}): {exc}")
        if _done(status, p["service"], p["wait_for"]) or time.monotonic() - started > p["timeout"]:
            break
        time.sleep(p["interval"])
    elapsed = round(time.monotonic() - started, 2)
    result = {
        "changed": False,
        "exists": status.exists,
        "record": status.record,
        "verdict": status.verdict()
        if p["service"] == "verifier"
        else ("present" if status.exists else "absent"),
        "operational_state": status.operational_state,
        "elapsed": elapsed,
    }
    if p["ek_tpm"]:
        registered = (status.record or {}).get("ek_tpm")
        result["ek_matches"] = bool(status.exists) and same_ek(p["ek_tpm"], registered)
    if not _done(status, p["service"], p["wait_for"]):
        module.fail_json(
            msg=f"agent {p['uuid']}: no {p['wait_for']} from the {p['service']} within {p['timeout']} s",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
