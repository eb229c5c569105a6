#!/usr/bin/python
"""Ansible module: check a TD's quoted claims against the registrar, the agent port and the image."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: td_claims_check
short_description: Check the claims a TD bound into its quote before anything secret is sent to it
author:
  - tee-proof-kit developers (@tee-proof-kit)
description:
  - O(claims) is the document whose SHA-512 the TD put into REPORTDATA (tdx_quote_verify checks that binding).
  - The CA the TD's agent trusts (its claimed digest) must be O(agent_ca), the verifier's; the host installs
    that CA over SSH before the quote and could have put its own there.
  - The registrar's record of the claimed agent must hold the claimed AK, EK and mTLS certificate (a relay to
    an agent that registered elsewhere differs here); the agent that answers on O(agent_host):O(agent_port)
    must present the claimed mTLS certificate (a relay of the agent port differs here); the image identity
    must be the reference image's.
  - Fails naming the claim that differs (C(claim) in the result). Nothing is changed.
options:
  claims:
    description: The TD's claims document (as returned by tdx-get-quote).
    type: dict
    required: true
  registrar_record:
    description: >-
      The registrar's record of the claimed agent (M(teeproof.kit.keylime_agent_status) with
      C(service=registrar)).
    type: dict
    required: true
  image_id_sha256:
    description: SHA-256 of the reference image's identity file (manifest.json C(image_id.sha256)).
    type: str
    required: true
  agent_ca:
    description: The verifier's CA certificate (PEM), the one the TD's agent must trust.
    type: str
    required: true
  agent_host:
    description: Where the tenant will reach the agent.
    type: str
    default: 127.0.0.1
  agent_port:
    description: The agent's port as the tenant reaches it.
    type: int
    required: true
  timeout:
    description: Seconds for the TLS probe of the agent port.
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: Check the claims the TD bound into its quote against the registrar and the agent port
  teeproof.kit.td_claims_check:
    claims: "{{ attestation.claims }}"
    registrar_record: "{{ registrar_record.record }}"
    image_id_sha256: "{{ reference.image_id_sha256 }}"
    agent_ca: "{{ verifier_ca.content | b64decode }}"
    agent_host: 127.0.0.1
    agent_port: 9002
"""

RETURN = r"""
uuid: {description: The claimed (and checked) agent id., type: str, returned: success}
ssh_host_key:
  description: The TD's SSH host key (pin it for every later SSH step).
  type: str
  returned: success
receipt_key: {description: The TD's receipt key., type: str, returned: success}
claims_sha512: {description: SHA-512 of the canonical claims (hex)., type: str, returned: success}
claim: {description: The claim that failed (on failure)., type: str, returned: failure}
"""

import socket
import ssl

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.teeproof.kit.plugins.module_utils.td_claims import (
    ClaimsError,
    claims_digest,
    compare_agent_ca,
    compare_peer_certificate,
    compare_registrar,
    parse_claims,
)


def peer_certificate(host: str, port: int, timeout: float) -> bytes:
    """The DER certificate the TLS server on host:port presents (no verification: it is compared after)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ClaimsError("agent.mtls_cert", f"the agent port {host}:{port} presented no certificate")
    return der


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "claims": {"type": "dict", "required": True},
            "registrar_record": {"type": "dict", "required": True},
            "image_id_sha256": {"type": "str", "required": True},
            "agent_ca": {"type": "str", "required": True},
            "agent_host": {"type": "str", "default": "127.0.0.1"},
            "agent_port": {"type": "int", "required": True},
            "timeout": {"type": "float", "default": 10},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        claims = parse_claims(p["claims"])
        if claims.image_id_sha256 != p["image_id_sha256"]:
            raise ClaimsError(
                "image_id_sha256",
                f"the TD says it booted image {claims.image_id_sha256[:16]}..., the reference is "
                f"{p['image_id_sha256'][:16]}...",
            )
        compare_agent_ca(claims, p["agent_ca"])
        compare_registrar(claims, p["registrar_record"])
        try:
            der = peer_certificate(p["agent_host"], p["agent_port"], p["timeout"])
        except (OSError, ssl.SSLError) as exc:
            raise ClaimsError(
                "agent.mtls_cert",
                f"no TLS answer on the agent port {p['agent_host']}:{p['agent_port']}: {exc}",
            ) from None
        compare_peer_certificate(claims, der)
    except ClaimsError as exc:
        module.fail_json(msg=f"TD claims refused, nothing was sent: {exc}", claim=exc.field)
    module.exit_json(
        changed=False,
        uuid=claims.uuid,
        ssh_host_key=claims.ssh_host_key,
        receipt_key=claims.receipt_key,
        claims_sha512=claims_digest(claims.document()).hex(),
    )


if __name__ == "__main__":
    main()
