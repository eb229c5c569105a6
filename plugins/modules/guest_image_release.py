#!/usr/bin/python
"""Ansible module: make the image build a version, with its change report and its signed reference bundle."""

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_image_release
short_description: Make a guest image build a version with a change report and a signed reference bundle
description:
- Reads the build's outputs (manifest.json, runtime-policy.json, the expected measurements) and names
  what a TD on this image measures and runs (the content id).
- When that differs from every version's, writes the next version's folder under I(releases_dir)
  (v1, v2, ...) with the boot files and disk linked in, the version record, the change report against
  the version before it, the runtime policy signed by C(keylime-policy sign) and the reference bundle
  signed by the operator's key (DSSE, ECDSA P-256).
- The same content as a version already made gives no new version; that version becomes the latest again.
options:
  output_dir:
    description: The build's output folder (manifest.json, the disk image, vmlinuz, initrd.img, cmdline).
    type: path
    required: true
  releases_dir:
    description: Folder of the versions (one sub-folder each) and index.json.
    type: path
    required: true
  measurements:
    description: 'The expected TDX measurements (bin/tdx-quote measure --json: mr_td, rtmr1, rtmr2).'
    type: dict
    required: true
  signing_key:
    description: The operator's EC P-256 private key (PEM) that signs the bundle and the runtime policy.
    type: path
    required: true
  firmware_sha256:
    description: SHA-256 of the TD firmware the expected MRTD was computed from (empty without one).
    type: str
    default: ''
  keylime_policy:
    description: The keylime-policy command that signs the runtime policy.
    type: path
    required: true
  circuits:
    description: 'Circuit artifact digests: circuit name to a mapping of file name to SHA-256.'
    type: dict
    default: {}
  policy_excludes:
    description: Exclude regexes added to the released runtime policy.
    type: list
    elements: str
    default: []
  entries:
    description: The root filesystem's entries (guest_image_tree's listing), compared for the change report.
    type: path
    required: true
  files:
    description: Build outputs linked (or copied) into the version folder.
    type: list
    elements: str
    required: true
author:
- tee-proof-kit developers (@tee-proof-kit)
"""

EXAMPLES = r"""
- name: Make the build a version
  teeproof.kit.guest_image_release:
    output_dir: /work/build/image
    releases_dir: /work/build/releases
    measurements: "{{ measured }}"
    signing_key: /root/.cache/tee-proof-kit/lab/operator-signing.pem
    keylime_policy: /root/.cache/tee-proof-kit/tools/keylime-7.14.3/bin/keylime-policy
    entries: /work/build/image/rootfs.entries.json
    files: [disk.raw, disk.raw.verity, vmlinuz, initrd.img, cmdline, manifest.json]
  register: release
"""

RETURN = r"""
version:
  description: The version this build is (new, or the one already made with the same content).
  type: str
  returned: always
previous:
  description: The version before it (none for the first).
  type: str
  returned: always
content_id:
  description: SHA-256 naming what the image measures and runs.
  type: str
  returned: always
folder:
  description: The version's folder.
  type: str
  returned: always
report:
  description: 'The change report: packages, files and measurements.'
  type: dict
  returned: always
lines:
  description: The change report as text lines.
  type: list
  returned: always
"""

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.teeproof.kit.plugins.module_utils import image_release as rel


def _link(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _sign_policy(cli: str, policy: Path, key: str, out: Path) -> None:
    argv = [cli, "sign", "runtime", "--runtime-policy", str(policy), "--keyfile", key, "--output", str(out)]
    env = dict(os.environ, KEYLIME_LOGGING_CONFIG="/dev/null")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise rel.ReleaseError(
            f"keylime-policy sign failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-400:]}"
        )


def run(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    out = Path(params["output_dir"])
    releases = Path(params["releases_dir"])
    manifest = rel.read_json(out / "manifest.json")
    policy = rel.read_json(out / "runtime-policy.json")
    policy["excludes"] = list(policy.get("excludes") or []) + [
        e for e in params["policy_excludes"] if e not in (policy.get("excludes") or [])
    ]
    policy_text = json.dumps(policy, sort_keys=True) + "\n"
    record = rel.release_record(
        manifest,
        params["measurements"],
        policy,
        params["circuits"],
        rel.sha256(policy_text.encode()),
        params.get("firmware_sha256") or "",
    )
    cid = rel.content_id(record)
    index_file = releases / "index.json"
    index = rel.read_json(index_file) if index_file.is_file() else {"versions": []}
    versions = index["versions"]
    last = versions[-1] if versions else None
    same = [v for v in versions if v["content_id"] == cid]
    if same:
        # The same content as a version already made (the newest or an older one): that version again.
        folder = releases / same[-1]["version"]
        report = rel.read_json(folder / "changes.json")
        moved = index.get("latest") != same[-1]["version"]
        if moved and not check_mode:
            index["latest"] = same[-1]["version"]
            rel.write_atomic(index_file, json.dumps(index, indent=1) + "\n")
        return {
            "changed": moved,
            "version": same[-1]["version"],
            "previous": report.get("from") or "",
            "content_id": cid,
            "folder": str(folder),
            "report": report,
            "lines": rel.format_report(report),
        }
    version = rel.next_version(v["version"] for v in versions)
    old_record: dict[str, Any] | None = None
    old_files: dict[str, Any] = {}
    entries = Path(params["entries"])
    new_files: dict[str, Any] = rel.read_json(entries)
    if last:
        old_folder = releases / last["version"]
        old_record = rel.read_json(old_folder / "release.json")["record"]
        if (old_folder / "entries.json").is_file():
            old_files = rel.read_json(old_folder / "entries.json")
        else:  # a version made before entries were kept: compare the runtime policies' file digests
            old_files = rel.read_json(old_folder / "runtime-policy.json").get("digests", {})
            new_files = policy.get("digests", {})
    report = rel.change_report(
        last["version"] if last else None, old_record, version, record, old_files, new_files
    )
    folder = releases / version
    result = {
        "changed": True,
        "version": version,
        "previous": last["version"] if last else "",
        "content_id": cid,
        "folder": str(folder),
        "report": report,
        "lines": rel.format_report(report),
    }
    if check_mode:
        return result
    for name in params["files"]:
        if not (out / name).is_file():
            raise rel.ReleaseError(
                f"the build output {out / name} is missing: run the whole build (playbooks/build-image.yml)"
            )
    releases.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=releases))
    try:
        for name in params["files"]:
            _link(out / name, work / name)
        shutil.copy(entries, work / "entries.json")
        rel.write_atomic(work / "runtime-policy.json", policy_text)
        _sign_policy(
            params["keylime_policy"],
            work / "runtime-policy.json",
            params["signing_key"],
            work / "runtime-policy.dsse.json",
        )
        policy_dsse = (work / "runtime-policy.dsse.json").read_bytes()
        bundle = rel.make_bundle(version, record, rel.sha256(policy_dsse))
        key_pem = Path(params["signing_key"]).read_bytes()
        rel.write_atomic(
            work / "bundle.dsse.json",
            rel.sign_envelope(rel.BUNDLE_TYPE, rel.canonical(bundle), key_pem) + "\n",
        )
        built = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        release = {
            "version": version,
            "previous": result["previous"],
            "content_id": cid,
            "built": built,
            "record": record,
        }
        rel.write_atomic(work / "release.json", json.dumps(release, indent=1, sort_keys=True) + "\n")
        rel.write_atomic(
            work / "lock.json",
            json.dumps({"version": version, "packages": record["packages"]}, indent=1, sort_keys=True) + "\n",
        )
        rel.write_atomic(work / "changes.json", json.dumps(report, indent=1, sort_keys=True) + "\n")
        work.chmod(0o755)
        work.rename(folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    versions.append({"version": version, "content_id": cid, "built": built})
    rel.write_atomic(index_file, json.dumps({"versions": versions, "latest": version}, indent=1) + "\n")
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "output_dir": {"type": "path", "required": True},
            "releases_dir": {"type": "path", "required": True},
            "measurements": {"type": "dict", "required": True},
            "firmware_sha256": {"type": "str", "default": ""},
            "signing_key": {"type": "path", "required": True, "no_log": False},
            "keylime_policy": {"type": "path", "required": True},
            "circuits": {"type": "dict", "default": {}},
            "policy_excludes": {"type": "list", "elements": "str", "default": []},
            "files": {"type": "list", "elements": "str", "required": True},
            "entries": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    if not rel.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"))
    try:
        result = run(module.params, module.check_mode)
    except (rel.ReleaseError, OSError) as exc:
        module.fail_json(msg=f"image release: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
