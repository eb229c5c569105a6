"""Content digest and secret scan of an image's root filesystem folder.

The digest covers every entry's relative path, type, mode, owner and content (regular files: SHA-256;
symlinks: target; devices: major/minor) but not timestamps, so an unchanged tree gives the same digest
on every rebuild: the build packs the disk image and makes the runtime policy again only when it changes.

The same pass looks for private keys and other secrets that must never be baked into an image.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

CHUNK = 1 << 20
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    # A whole PEM block (header, base64 body, matching footer): programs that merely contain the header
    # string (ssh, libgnutls, ...) are not findings.
    (
        "PEM private key",
        re.compile(
            rb"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY)-----\r?\n(?:[A-Za-z-]+: [^\n]*\n)*\s*"
            rb"[A-Za-z0-9+/=\r\n]{40,}-----END \1-----"
        ),
    ),
    ("PuTTY private key", re.compile(rb"PuTTY-User-Key-File-\d+:")),
    ("AWS access key id", re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")),
)
# Cheap substrings that must be present before a pattern is tried on a chunk.
SECRET_HINTS: tuple[bytes, ...] = (b"PRIVATE KEY-----", b"PuTTY-User-Key-File-", b"AKIA", b"ASIA")
SECRET_NAMES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("SSH host private key", re.compile(r"(^|/)ssh_host_[a-z0-9]+_key$")),
    ("SSH user private key", re.compile(r"(^|/)id_(rsa|dsa|ecdsa|ed25519)(_sk)?$")),
    ("keylime/TLS private key file", re.compile(r"(^|/)[^/]*private[^/]*\.(pem|key)$")),
)


@dataclass
class Finding:
    path: str
    reason: str


@dataclass
class TreeReport:
    digest: str
    files: int = 0
    bytes: int = 0
    findings: list[Finding] = field(default_factory=list)
    # "/path" -> "type mode uid gid content": what the digest covers, one line per entry (the change report's
    # files, which also sees mode, owner and link changes)
    entries: dict[str, str] = field(default_factory=dict)


def walk(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (relative path, lstat) for every entry under root, depth first, in sorted order."""
    stack = [""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel) if rel else root
        subdirs: list[str] = []
        for name in sorted(os.listdir(full)):
            child = f"{rel}/{name}" if rel else name
            st = os.lstat(os.path.join(root, child))
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(child)
        stack.extend(reversed(subdirs))


def _scan_chunk(chunk: bytes, rel: str, findings: list[Finding], seen: set[str]) -> None:
    if not any(h in chunk for h in SECRET_HINTS):
        return
    for reason, pattern in SECRET_PATTERNS:
        if reason not in seen and pattern.search(chunk):
            seen.add(reason)
            findings.append(Finding("/" + rel, reason))


def file_digest(path: str, rel: str, findings: list[Finding] | None) -> str:
    """SHA-256 of a file; with ``findings`` also scan its content for secrets."""
    h = hashlib.sha256()
    seen: set[str] = set()
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            if findings is not None:
                # Keep an overlap so a marker split across two chunks is still found.
                _scan_chunk(tail + chunk, rel, findings, seen)
                tail = chunk[-64:]
    return h.hexdigest()


def allowed(path: str, allow: Iterable[str]) -> bool:
    return any(re.search(p, path) for p in allow)


def tree_report(
    root: str, scan_secrets: bool = True, allow: Iterable[str] = (), exclude: Iterable[str] = ()
) -> TreeReport:
    """Digest the tree at ``root`` (without the ``exclude`` paths) and, optionally, list its secrets."""
    allow = list(allow)
    skip = {p.strip("/") for p in exclude}
    outer = hashlib.sha256()
    report = TreeReport(digest="")
    raw: list[Finding] = []
    for rel, st in walk(root):
        if rel in skip:
            continue
        mode = st.st_mode
        head = f"{rel}\0{stat.S_IFMT(mode):o}\0{stat.S_IMODE(mode):o}\0{st.st_uid}\0{st.st_gid}\0"
        if stat.S_ISREG(mode):
            content = file_digest(os.path.join(root, rel), rel, raw if scan_secrets else None)
            report.files += 1
            report.bytes += st.st_size
            if scan_secrets:
                raw.extend(Finding("/" + rel, reason) for reason, rx in SECRET_NAMES if rx.search(rel))
        elif stat.S_ISLNK(mode):
            content = os.readlink(os.path.join(root, rel))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            content = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        else:
            content = ""
        outer.update((head + content + "\n").encode("utf-8", "surrogateescape"))
        report.entries["/" + rel] = (
            (head.split("\0", 1)[1].replace("\0", " ") + content)
            .encode("utf-8", "surrogateescape")
            .decode("utf-8", "replace")
        )
    report.digest = outer.hexdigest()
    report.findings = [f for f in raw if not allowed(f.path, allow)]
    return report
