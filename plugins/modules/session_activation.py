#!/usr/bin/python
"""Ansible module: a session's activation and the client's credential (logic: module_utils/prover_session)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: session_activation
short_description: Make a session's activation for the TD and write the client's credential (PSK, lease key)
description:
  - Session mode, on the controller, after the TD's quote and claims checked out. Draws the session id and a
    fresh 32-byte PSK and a fresh Ed25519 lease key, and makes the activation that the Keylime payload carries
    to the TD's session service (C(kit_session), C(session_id), C(session_key), C(nonce), C(expires_at),
    C(lifetime_s), C(psk), C(lease_key) (the public half), C(lease_requests), C(lease_s)).
  - The activation is the session's first lease. The TD wipes the session when the lease it holds has served
    O(lease_requests) requests or is O(lease_s) seconds old on the TD's own clock, unless the client sent a
    newer one, which it signs only after its verifier said PASS.
  - Refuses a lifetime over C(MAX_SESSION_SECONDS) (7 days), the cap the TD enforces as well.
  - Writes the PSK and the lease key's private half to O(credential), mode 0600 from its first byte, for
    C(bin/session-client). Every request
    and every read of the session is sealed with it, so the host, which sees the session key, the session id
    and the next number, can neither submit nor read.
  - The returned C(activation) holds the PSK. Run the task with C(no_log) and pass it on only to the payload.
  - Each run makes a new session (always changed). In check mode nothing is written.
options:
  session_key:
    description: The session key the TD's verified claims name (base64 X25519 public key).
    type: str
    required: true
  nonce:
    description: The nonce of the quote that named the session key (hex).
    type: str
    required: true
  lifetime:
    description: Seconds the session lives (1 to 604800).
    type: int
    required: true
  lease_requests:
    description: Requests one lease is good for (1 to 100000).
    type: int
    required: true
  lease_s:
    description: Seconds one lease is good for on the TD's monotonic clock (1 to 86400).
    type: int
    required: true
  credential:
    description: Where the client's credential (PSK, lease key) goes; its folder is made 0700 if missing.
    type: path
    required: true
author:
  - tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: The session's activation and the client's credential
  teeproof.kit.session_activation:
    session_key: "{{ tdx_attestation_claims.session_key }}"
    nonce: "{{ tdx_attestation_nonce }}"
    lifetime: 3600
    lease_requests: 32
    lease_s: 300
    credential: /work/main/build/lab/site/prove/session/session.psk.json
  register: __session
  no_log: true
"""

RETURN = r"""
activation:
  description: The activation for the payload (secret, it holds the PSK).
  returned: always
  type: dict
session_id:
  description: The new session's id (32 hex digits).
  returned: always
  type: str
expires_at:
  description: When the session ends (unix time, the controller's clock).
  returned: always
  type: int
"""

from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils import prover_session as ps
from ansible_collections.teeproof.kit.plugins.module_utils import session_client as sc
from ansible_collections.teeproof.kit.plugins.module_utils import td_claims

ARGUMENT_SPEC: dict[str, Any] = {
    "session_key": {"type": "str", "required": True, "no_log": False},  # a public key
    "nonce": {"type": "str", "required": True},
    "lifetime": {"type": "int", "required": True},
    "lease_requests": {"type": "int", "required": True},
    "lease_s": {"type": "int", "required": True},
    "credential": {"type": "path", "required": True},
}


class ActivationFailed(Exception):
    """No activation was made, or its credential could not be kept; nothing was written."""


def run(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    lease_key, lease_public = ps.new_lease_key()
    try:
        activation = ps.make_activation(
            p["session_key"],
            td_claims.nonce_from_hex(p["nonce"]),
            p["lifetime"],
            lease_key=lease_public,
            lease_requests=p["lease_requests"],
            lease_s=p["lease_s"],
        )
    except (ps.SessionError, td_claims.ClaimsError) as exc:
        raise ActivationFailed(f"no activation made: {exc}") from None
    if not check_mode:
        path = Path(p["credential"])
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            sc.write_credential(path, activation.session_id, activation.psk, lease_key)
        except OSError as exc:
            raise ActivationFailed(f"the credential could not be written to {path}: {exc}") from None
    return {
        "changed": True,
        "activation": activation.document(),
        "session_id": activation.session_id,
        "expires_at": activation.expires_at,
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**run(module.params, module.check_mode))
    except ActivationFailed as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
