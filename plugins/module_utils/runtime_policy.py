"""Checks of a Keylime runtime policy (format of keylime-policy 7.x) against a root filesystem.

The policy maps absolute paths to lists of accepted hex digests (``digests``) and lists path regexes
it ignores (``excludes``). These helpers answer: does the policy accept every file under some
directories with the file's true SHA-256?
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def load(path: str | Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("digests"), dict):
        raise ValueError(f"{path} is not a Keylime runtime policy (no 'digests' map)")
    return data


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def files_under(root: str | Path, directory: str) -> list[str]:
    """Absolute in-image paths of the regular files under ``directory`` of the image at ``root``."""
    base = Path(root) / directory.lstrip("/")
    found: list[str] = []
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            full = Path(dirpath) / name
            if full.is_file() and not full.is_symlink():
                found.append("/" + str(full.relative_to(root)))
    return sorted(found)


def check_files(policy: dict[str, Any], root: str | Path, paths: Iterable[str]) -> list[str]:
    """Problems: every path must be listed with the SHA-256 of its content in the image at ``root``."""
    digests: dict[str, list[str]] = policy["digests"]
    excludes = [re.compile(x) for x in policy.get("excludes", [])]
    problems: list[str] = []
    for path in paths:
        if any(x.search(path) for x in excludes):
            problems.append(f"{path}: excluded from the policy")
            continue
        true = sha256_file(Path(root) / path.lstrip("/"))
        listed = digests.get(path)
        if listed is None:
            problems.append(f"{path}: not in the policy")
        elif true not in listed:
            problems.append(f"{path}: policy lists {listed}, file has {true}")
    return problems


# IMA's boot_aggregate when no TPM exists as IMA starts (TPM-bypass): all zeros. The TD's own vTPM starts
# after IMA (roles/td_vtpm), so this is every TD's boot_aggregate; the pre-kernel boot is the TDX quote's
# (MRTD, RTMR0-2).
TPM_BYPASS_BOOT_AGGREGATE = "0" * 64


def flat_allowlist(
    root: str | Path,
    dirs: Iterable[str],
    aliases: dict[str, list[str]] | None = None,
    tpm_bypass: bool = False,
) -> str:
    """A flat allowlist ("sha256  path" lines, as keylime-policy's ``--allowlist`` reads) for

    * every regular file under ``dirs`` of the image at ``root``: keylime-policy's ``--rootfs`` lists only
      files owned by root, while the kit's measured data files have their own owner (IMA matches by owner);
    * ``aliases``: in-image files that IMA also sees under another path, e.g. ``/etc/fstab`` read by the
      initramfs as ``/root/etc/fstab`` before the switch to the real root;
    * with ``tpm_bypass``, IMA's boot_aggregate of a kernel that found no TPM (all zeros): any other value (a
      TPM attached from outside at boot) is then refused.
    """
    lines: set[str] = {f"{TPM_BYPASS_BOOT_AGGREGATE}  boot_aggregate"} if tpm_bypass else set()
    for directory in dirs:
        for path in files_under(root, directory):
            lines.add(f"{sha256_file(Path(root) / path.lstrip('/'))}  {path}")
    for source, seen_as in (aliases or {}).items():
        digest = sha256_file(Path(root) / source.lstrip("/"))
        lines.update(f"{digest}  {alias}" for alias in seen_as)
    return "".join(f"{line}\n" for line in sorted(lines, key=lambda x: x.split("  ", 1)[1]))
