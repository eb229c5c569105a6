#!/usr/bin/python
"""Ansible module: a job sealed to the TD's quoted job key (logic: module_utils/sealed_job)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: job_seal
short_description: Seal a job's input, nonce and commit key to the job key a TD's verified quote claims
description:
  - Job mode, on the controller, after the TD's quote and claims checked out. Reads the client's input and
    seals it, with the quote's nonce and the receipt's commit key, to the TD's C(job_key) claim, with HPKE
    (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305 (C(pyhpke)).
  - Only the TD that drew the key can open the result, and only once (its payload deletes the key). So the
    Keylime payload, the verifier's host that assembles it and the TD's agent, which keeps what it decrypted
    in its memory, hold only ciphertext.
  - Writes nothing; returns the sealed job (base64, not secret). Run it with C(no_log), since its arguments
    hold the commit key. Each run seals anew (fresh HPKE ephemeral key), so it reports changed.
options:
  job_key:
    description: The job key the TD's verified claims name (base64 X25519 public key).
    type: str
    required: true
  nonce:
    description: The nonce of the quote that named the job key (32 to 128 lower-case hex digits).
    type: str
    required: true
  commit_key:
    description: The receipt's commit key (64 lower-case hex digits; secret).
    type: str
    required: true
  input:
    description: The client's private input (JSON) on the controller; sealed as its exact bytes.
    type: path
    required: true
author:
  - tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: Seal the job to the TD's quoted job key
  teeproof.kit.job_seal:
    job_key: "{{ tdx_attestation_claims.job_key }}"
    nonce: "{{ tdx_attestation_nonce }}"
    commit_key: "{{ prove_commit_key }}"
    input: /work/private/input.json
  register: __sealed
  no_log: true
"""

RETURN = r"""
sealed:
  description: The sealed job, base64 (enc || ciphertext); not secret.
  returned: always
  type: str
size:
  description: Bytes of the sealed job.
  returned: always
  type: int
"""

import base64
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils import sealed_job

ARGUMENT_SPEC: dict[str, Any] = {
    "job_key": {"type": "str", "required": True, "no_log": False},  # a public key
    "nonce": {"type": "str", "required": True},
    "commit_key": {"type": "str", "required": True, "no_log": True},
    "input": {"type": "path", "required": True},
}


class SealFailed(Exception):
    """Nothing was sealed; the message never quotes the input."""


def run(p: dict[str, Any]) -> dict[str, Any]:
    path = Path(p["input"])
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SealFailed(f"cannot read the input {path}: {exc.strerror}") from None
    try:
        job = sealed_job.check_job(p["nonce"], p["commit_key"], data)
        sealed = sealed_job.seal(p["job_key"], job)
    except ValueError as exc:  # SealedJobError, SessionError (the key): each names the part, never the input
        raise SealFailed(f"the job was not sealed: {exc}") from None
    return {"changed": True, "sealed": base64.b64encode(sealed).decode(), "size": len(sealed)}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**run(module.params))
    except SealFailed as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
