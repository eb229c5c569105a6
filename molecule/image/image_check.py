#!/usr/bin/env python3
"""Checks of the built guest image, read from the DISK IMAGE itself (debugfs rdump, no mount).

1. the IMA policy, the Keylime agent (unit, launcher, compatibility module, keylime wheel, config),
   operator SSH access and, when included, the prover are in the image;
2. the runtime policy lists every file under the prover's and the agent's directories, and the IMA
   policy file, with the SHA-256 of the file in the image;
3. a scan of the whole image finds no private key or other secret.
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ansible_collections.teeproof.kit.plugins.module_utils import (
    image_tree,
    runtime_policy,
    verity_pack,
)

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = [
    "/etc/ima/ima-policy",
    "/etc/keylime/agent.conf",
    "/etc/keylime/logging.conf",
    "/etc/systemd/system/keylime_agent.service",
    "/etc/systemd/system/multi-user.target.wants/keylime_agent.service",
    "/opt/keylime-agent/bin/keylime_agent",
    "/opt/keylime-agent/lib/keylime_agent_compat.py",
    "/root/.ssh/authorized_keys",
    "/etc/ssh/sshd_config.d/50-tee-proof-kit.conf",
    "/etc/systemd/system/td-keys.service",
    "/etc/systemd/system/multi-user.target.wants/td-keys.service",
    "/usr/local/bin/tdx-get-quote",
    "/usr/local/bin/kit-receipt",
    "/usr/local/lib/tee-proof-kit/td_claims.py",
    "/etc/systemd/system/kit-session.service",
    "/etc/systemd/system/multi-user.target.wants/kit-session.service",
    "/opt/zk-prover/lib/kit_session.py",
    "/opt/zk-prover/lib/prover_session.py",
    "/opt/zk-prover/lib/sealed_job.py",
    "/etc/default/tdx-get-quote",
    "/etc/tee-proof-kit/image.json",
    "/usr/bin/tpm2_pcrread",
    # the TD's own vTPM and its IMA forwarder (roles/td_vtpm), started at boot before the agent
    "/usr/bin/swtpm",
    "/usr/local/sbin/kit-vtpm",
    "/usr/local/lib/tee-proof-kit/ima_forward.py",
    "/usr/local/lib/tee-proof-kit/ima_log.py",
    "/etc/systemd/system/kit-vtpm.service",
    "/etc/systemd/system/kit-ima-forward.service",
    "/etc/systemd/system/sysinit.target.wants/kit-vtpm.service",
    "/etc/systemd/system/sysinit.target.wants/kit-ima-forward.service",
]
POLICY_RULES = [
    "func=BPRM_CHECK",
    "func=MMAP_CHECK mask=MAY_EXEC",
    "func=MODULE_CHECK",
    "func=FIRMWARE_CHECK",
    "func=FILE_CHECK mask=^MAY_READ",
    "dont_measure fsmagic=0x01021994",
    "template=ima-ng",
]


def extract(disk: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["debugfs", "-R", f"rdump / {dest}", str(disk)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not (dest / "etc").is_dir():
        raise SystemExit(f"debugfs could not extract {disk}: {result.stderr[-1000:]}")


def check_verity(image_dir: Path, disk: Path, root: Path, report: dict[str, Any]) -> list[str]:
    """The whole disk verifies against the manifest's root hash, which is the one on the command line; the
    filesystem's writable places are tmpfs."""
    problems: list[str] = []
    verity = json.loads((image_dir / "manifest.json").read_text()).get("verity") or {}
    cmdline = (image_dir / "cmdline").read_text()
    root_hash = verity.get("root_hash", "")
    report["verity_root_hash"] = root_hash
    if not root_hash or f"kit.verity.roothash={root_hash}" not in cmdline.split():
        problems.append(f"the command line does not carry the manifest's root hash {root_hash or '(none)'}")
    if "ro" not in cmdline.split() or "rw" in cmdline.split():
        problems.append("the command line does not mount the root read-only")
    try:
        verity_pack.verify(disk, verity_pack.VerityImage(**verity_fields(verity)))
        report["verity_verified"] = True
    except (verity_pack.PackError, TypeError) as exc:
        problems.append(f"veritysetup verify of {disk.name} failed: {exc}")
    fstab = (root / "etc/fstab").read_text() if (root / "etc/fstab").exists() else ""
    mounts = [line.split()[1:3] for line in fstab.splitlines() if len(line.split()) > 2]
    for mount in ("/var", "/tmp"):
        if [mount, "tmpfs"] not in mounts:
            problems.append(f"{mount} is not tmpfs in /etc/fstab")
    return problems


def verity_fields(verity: dict[str, Any]) -> dict[str, Any]:
    names = ("root_hash", "salt", "hash_algorithm", "data_blocks", "hash_offset", "size_bytes")
    return {k: verity[k] for k in names}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-dir", type=Path, required=True)
    ap.add_argument("--zk", action="store_true", help="the prover must be in the image")
    ap.add_argument("--allow", action="append", default=[], help="secret-scan allow regex")
    ap.add_argument("--report", type=Path)
    args = ap.parse_args()
    disk = next(p for p in (args.image_dir / "disk.raw", args.image_dir / "disk.qcow2") if p.exists())
    work = Path(tempfile.mkdtemp(prefix="kit-image-check-"))
    report: dict[str, Any] = {"disk": str(disk), "problems": []}
    problems: list[str] = report["problems"]
    try:
        root = work / "root"
        extract(disk, root)
        required = REQUIRED + (["/opt/zk-prover/bin/zk-prove"] if args.zk else [])
        for path in required:
            if not (root / path.lstrip("/")).exists() and not (root / path.lstrip("/")).is_symlink():
                problems.append(f"missing in the image: {path}")
        if not glob.glob(
            str(root / "opt/keylime-agent/venv/lib/python3*/site-packages/keylime/keylime_agent.py")
        ):
            problems.append("keylime's Python agent is not installed in /opt/keylime-agent/venv")
        policy_text = (
            (root / "etc/ima/ima-policy").read_text() if (root / "etc/ima/ima-policy").exists() else ""
        )
        for rule in POLICY_RULES:
            if rule not in policy_text:
                problems.append(f"IMA policy lacks '{rule}'")
        sshd = root / "etc/ssh/sshd_config.d/50-tee-proof-kit.conf"
        if sshd.exists() and "PasswordAuthentication no" not in sshd.read_text():
            problems.append("sshd drop-in does not turn password login off")
        if sshd.exists() and "HostKey /run/" not in sshd.read_text():
            problems.append("sshd's host key is not the TD's tmpfs key (HostKey /run/...)")
        on_disk = sorted(p.name for p in (root / "etc/ssh").glob("ssh_host_*"))
        if on_disk:
            problems.append(f"SSH host keys on the disk the host can read: {', '.join(on_disk)}")

        problems += check_verity(args.image_dir, disk, root, report)

        policy = runtime_policy.load(args.image_dir / "runtime-policy.json")
        checked: list[str] = ["/etc/ima/ima-policy"]
        for directory in ("/opt/zk-prover", "/opt/keylime-agent"):
            checked += runtime_policy.files_under(root, directory)
        report["runtime_policy_files_checked"] = len(checked)
        report["prover_files_checked"] = sum(p.startswith("/opt/zk-prover/") for p in checked)
        problems += runtime_policy.check_files(policy, root, checked)

        scan = image_tree.tree_report(str(root), scan_secrets=True, allow=args.allow)
        report["scanned_files"] = scan.files
        report["secrets"] = [f"{f.path}: {f.reason}" for f in scan.findings]
        problems += [f"secret in the image: {s}" for s in report["secrets"]]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["passed"] = not problems
    out = json.dumps(report, indent=2)
    if args.report:
        args.report.write_text(out + "\n")
    print(out)
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
