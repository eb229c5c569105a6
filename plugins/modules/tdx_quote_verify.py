#!/usr/bin/python
"""Ansible module: verify a TDX quote (dcap-qvl + the kit's policy)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tdx_quote_verify
short_description: Verify an Intel TDX quote against stored collateral and a measurement policy
description:
  - Checks the quote's signature chain and TCB status with dcap-qvl (time given as a parameter),
    then the kit's policy (allowed TCB statuses, debug forbidden, SEPT_VE_DISABLE, expected MRTD and
    RTMR0-3, REPORTDATA = SHA-512(nonce || binding)).
  - Fails listing every reason the quote does not pass.
  - Exactly one root is trusted. Without O(allow_simulated), Intel's; a SIMULATED quote is refused with a
    reason that says so. With it (lab only), the SIMULATED test root in O(sim_root) and nothing else, and
    only when its SHA-256 equals O(sim_root_sha256).
  - Measurements listed in the policy's C(required) must have an expected value or a named waiver
    (C(waivers)); the verdict lists every waiver as unchecked.
options:
  quote_path:
    description: Path to the raw quote on the controller/host running the module.
    type: path
  quote_b64:
    description: The raw quote, base64. One of O(quote_path) or O(quote_b64) is required.
    type: str
  collateral_path:
    description: dcap-qvl QuoteCollateralV3 JSON.
    type: path
    required: true
  now:
    description: Verification time (Unix seconds).
    type: int
    required: true
  policy:
    description: Policy mapping (keys as in docs/tdx.md; unknown keys fail).
    type: dict
    default: {}
  nonce:
    description: Nonce (hex) the verifier sent; REPORTDATA must equal SHA-512(nonce || binding).
    type: str
    required: true
  binding:
    description: Binding data (hex), e.g. a public key the TD will use. Mutually exclusive with O(claims).
    type: str
    default: ""
  claims:
    description: >-
      The claims document the TD computed itself (tdx-get-quote); the binding is SHA-512 of its canonical
      JSON, so REPORTDATA must equal SHA-512(nonce || SHA-512(claims)). A malformed document fails before the
      quote is looked at, naming the claim.
    type: dict
  allow_simulated:
    description: Trust the SIMULATED lab root. Never enable outside the lab.
    type: bool
    default: false
  sim_root:
    description: DER certificate of the SIMULATED lab root.
    type: path
  sim_root_sha256:
    description: Pinned SHA-256 (hex) of O(sim_root); required with O(allow_simulated).
    type: str
  event_log_b64:
    description: >-
      The TD's CC event log (base64), as the quote came with it. Required when the policy has an
      C(rtmr0_reference): the log must replay to the quote's RTMR0-3, and RTMR0's events must be the
      reference's (a refusal names the event).
    type: str
author:
  - tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: Verify the guest's quote
  tdx_quote_verify:
    quote_b64: "{{ guest_quote.quote_b64 }}"
    collateral_path: /var/lib/kit/collateral.json
    now: "{{ ansible_date_time.epoch | int }}"
    nonce: "{{ attestation_nonce }}"
    policy:
      mr_td: "{{ expected.mr_td }}"
      rtmr1: "{{ expected.rtmr1 }}"
      rtmr2: "{{ expected.rtmr2 }}"
"""

RETURN = r"""
verdict:
  description: The full verdict (ok, simulated, authenticated, tcb_status, reasons, warnings, quote fields).
  returned: always
  type: dict
reasons:
  description: Every failure reason as code/message pairs.
  returned: always
  type: list
  elements: dict
simulated:
  description: True when the quote came from the SIMULATED lab provider.
  returned: always
  type: bool
"""

import base64
import binascii
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.teeproof.kit.plugins.module_utils.td_claims import (
    ClaimsError,
    claims_digest,
    parse_claims,
)
from ansible_collections.teeproof.kit.plugins.module_utils.tdx_verify import (
    DCAP_QVL_IMPORT_ERROR,
    HAS_DCAP_QVL,
    CollateralError,
    PolicyError,
    TrustAnchors,
    load_collateral,
    policy_from_mapping,
    reasons_text,
    verify_quote,
)


class VerifyFailed(Exception):
    """The module fails: msg, and what it returns beside it (the verdict when there is one)."""

    def __init__(self, msg: str, **out: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.out = out


def _b64(params: dict[str, Any], name: str) -> bytes | None:
    if not params.get(name):
        return None
    try:
        return base64.b64decode(params[name], validate=True)
    except (binascii.Error, ValueError):
        raise VerifyFailed(f"{name} is not valid base64") from None


def _quote_bytes(params: dict[str, Any]) -> bytes:
    raw = _b64(params, "quote_b64")
    if raw is not None:
        return raw
    with open(params["quote_path"], "rb") as handle:
        return handle.read()


def _hex(params: dict[str, Any], name: str) -> bytes:
    try:
        return bytes.fromhex(params[name] or "")
    except ValueError:
        raise VerifyFailed(f"{name} is not valid hex") from None


def _trust(params: dict[str, Any]) -> Any:
    root = None
    if params.get("sim_root"):
        with open(params["sim_root"], "rb") as handle:
            root = handle.read()
    if params.get("allow_simulated") and (root is None or not params.get("sim_root_sha256")):
        raise VerifyFailed("allow_simulated needs sim_root and its pin sim_root_sha256")
    return TrustAnchors(
        allow_simulated=bool(params.get("allow_simulated")),
        simulated_root_der=root,
        simulated_root_sha256=params.get("sim_root_sha256"),
    )


def _binding(params: dict[str, Any]) -> bytes:
    binding = _hex(params, "binding")
    if params.get("claims") is None:
        return binding
    if binding:
        raise VerifyFailed("binding and claims are mutually exclusive")
    try:
        parse_claims(params["claims"])
    except ClaimsError as exc:
        raise VerifyFailed(
            f"the TD's claims are malformed (nothing is sent to it): {exc}", claim=exc.field
        ) from None
    return claims_digest(params["claims"])


def run(params: dict[str, Any]) -> dict[str, Any]:
    """Verify the quote the parameters name; raise VerifyFailed with every reason when it does not pass."""
    binding = _binding(params)
    try:
        policy = policy_from_mapping(params.get("policy") or {})
        collateral = load_collateral(params["collateral_path"])
    except (PolicyError, CollateralError) as exc:
        raise VerifyFailed(str(exc)) from None
    verdict = verify_quote(
        _quote_bytes(params),
        collateral,
        params["now"],
        policy,
        _hex(params, "nonce"),
        binding,
        _trust(params),
        event_log=_b64(params, "event_log_b64"),
    )
    result = verdict.to_dict()
    out = {"changed": False, "verdict": result, "reasons": result["reasons"], "simulated": verdict.simulated}
    if not verdict.ok:
        raise VerifyFailed("TDX quote rejected: " + reasons_text(verdict.reasons), **out)
    return out


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "quote_path": {"type": "path"},
            "quote_b64": {"type": "str"},
            "collateral_path": {"type": "path", "required": True},
            "now": {"type": "int", "required": True},
            "policy": {"type": "dict", "default": {}},
            "nonce": {"type": "str", "required": True},
            "binding": {"type": "str", "default": ""},
            "claims": {"type": "dict"},
            "allow_simulated": {"type": "bool", "default": False},
            "sim_root": {"type": "path"},
            "sim_root_sha256": {"type": "str"},
            "event_log_b64": {"type": "str"},
        },
        required_one_of=[("quote_path", "quote_b64")],
        mutually_exclusive=[("quote_path", "quote_b64")],
        supports_check_mode=True,
    )
    if not HAS_DCAP_QVL:
        module.fail_json(msg=missing_required_lib("dcap-qvl"), exception=DCAP_QVL_IMPORT_ERROR)
    try:
        module.exit_json(**run(module.params))
    except VerifyFailed as exc:
        module.fail_json(msg=exc.msg, **exc.out)


if __name__ == "__main__":
    main()
