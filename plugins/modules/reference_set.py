#!/usr/bin/python
"""Ansible module: the verifier side's set of accepted and retired image versions."""

from __future__ import annotations

DOCUMENTATION = r"""
module: reference_set
short_description: Accept, retire and look up signed image versions on the verifier side
description:
- The reference set file lists image versions, each C(accepted) or C(retired), with its signed reference
  bundle.
- C(accept) verifies a version's bundle (DSSE, signed by the trusted operator key) and its signed runtime
  policy, then adds it. An unsigned or foreign bundle, a changed policy, a retired version (rollback)
  or a version older than a retired one is refused and the file is not changed.
- C(retire) marks a version retired; the only accepted version cannot be retired.
- C(lookup) returns the accepted version whose image id a TD claims, or fails naming why (retired, unknown).
- C(policy) writes one runtime policy that accepts every accepted version's files (digests are lists).
options:
  path:
    description: The reference set file.
    type: path
    required: true
  action:
    description: What to do.
    type: str
    required: true
    choices:
    - accept
    - retire
    - lookup
    - policy
  trusted_key:
    description: The operator's public key (PEM) that must have signed bundles and policies.
    type: path
    required: true
  releases_dir:
    description: Folder of the versions (bundle.dsse.json and runtime-policy.dsse.json each).
    type: path
  version:
    description: The version to accept or retire.
    type: str
  image_id_sha256:
    description: The image id a TD claims (lookup).
    type: str
  dest:
    description: Where the merged runtime policy goes (policy).
    type: path
author:
- tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: Accept v2 next to v1
  teeproof.kit.reference_set:
    path: /work/build/lab/client/reference-set.json
    action: accept
    version: v2
    releases_dir: /work/build/releases
    trusted_key: /work/build/releases/operator.pub.pem
"""

RETURN = r"""
accepted:
  description: The accepted versions after the action.
  type: list
  returned: always
retired:
  description: The retired versions after the action.
  type: list
  returned: always
version:
  description: The version looked up (lookup).
  type: str
  returned: when action is lookup
bundle:
  description: Its reference bundle (lookup).
  type: dict
  returned: when action is lookup
"""

import datetime as dt
import json
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.teeproof.kit.plugins.module_utils import image_release as rel


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return rel.empty_set()
    state: dict[str, Any] = rel.read_json(path)
    rel.check_set(state)
    return state


def _version_files(releases: Path, version: str) -> Path:
    rel.version_number(version)
    folder = releases / version
    if not (folder / "bundle.dsse.json").is_file():
        raise rel.ReleaseError(
            f"unknown version {version}: {folder} holds no bundle.dsse.json (build it first)"
        )
    return folder


def _signed_policy(folder: Path, bundle: dict[str, Any], key: bytes) -> dict[str, Any]:
    raw = (folder / "runtime-policy.dsse.json").read_bytes()
    if rel.sha256(raw) != bundle["runtime_policy"]["dsse_sha256"]:
        raise rel.ReleaseError(f"{folder.name}: runtime-policy.dsse.json is not the policy its bundle signs")
    policy: dict[str, Any] = json.loads(
        rel.open_envelope(raw, rel.KEYLIME_POLICY_TYPE, key, f"{folder.name}'s runtime policy")
    )
    if rel.policy_content_sha256(policy) != bundle["runtime_policy"]["content_sha256"]:
        raise rel.ReleaseError(f"{folder.name}: the signed runtime policy's content is not the bundle's")
    return policy


def run(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    path = Path(params["path"])
    key = Path(params["trusted_key"]).read_bytes()
    state = _load(path)
    action = params["action"]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result: dict[str, Any] = {"changed": False}
    releases = Path(params["releases_dir"] or ".")
    if action in ("accept", "retire") and not params["version"]:
        raise rel.ReleaseError(f"{action} needs version")
    if action == "accept":
        folder = _version_files(releases, params["version"])
        bundle = rel.read_bundle((folder / "bundle.dsse.json").read_bytes(), key)
        if bundle["version"] != params["version"]:
            raise rel.ReleaseError(
                f"{folder}/bundle.dsse.json is signed as {bundle['version']}, not {params['version']}"
            )
        _signed_policy(folder, bundle, key)
        state, result["changed"] = rel.accept(state, bundle, now)
    elif action == "retire":
        state, result["changed"] = rel.retire(state, params["version"], now)
    elif action == "lookup":
        if not params["image_id_sha256"]:
            raise rel.ReleaseError("lookup needs image_id_sha256")
        result["version"], result["bundle"] = rel.lookup(state, params["image_id_sha256"])
    elif action == "policy":
        if not params["dest"]:
            raise rel.ReleaseError("policy needs dest")
        policies = []
        if not rel.accepted(state):
            raise rel.ReleaseError(
                f"{path} accepts no image version: accept one first (playbooks/rollout.yml, or site.yml)"
            )
        for version in rel.accepted(state):
            folder = _version_files(releases, version)
            policies.append(_signed_policy(folder, state["versions"][version]["bundle"], key))
        text = json.dumps(rel.merge_policies(policies), sort_keys=True) + "\n"
        dest = Path(params["dest"])
        result["changed"] = not dest.is_file() or dest.read_text() != text
        if result["changed"] and not check_mode:
            dest.write_text(text)
    if action in ("accept", "retire") and result["changed"] and not check_mode:
        path.parent.mkdir(parents=True, exist_ok=True)
        rel.write_atomic(path, json.dumps(state, indent=1, sort_keys=True) + "\n")
    result["accepted"] = rel.accepted(state)
    result["retired"] = sorted(
        (v for v, e in state["versions"].items() if e["state"] == "retired"), key=rel.version_number
    )
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "action": {"type": "str", "required": True, "choices": ["accept", "retire", "lookup", "policy"]},
            "trusted_key": {"type": "path", "required": True, "no_log": False},
            "releases_dir": {"type": "path"},
            "version": {"type": "str"},
            "image_id_sha256": {"type": "str"},
            "dest": {"type": "path"},
        },
        supports_check_mode=True,
    )
    if not rel.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"))
    try:
        result = run(module.params, module.check_mode)
    except (rel.ReleaseError, OSError) as exc:
        module.fail_json(msg=f"reference set: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
