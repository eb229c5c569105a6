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
