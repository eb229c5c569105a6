#!/usr/bin/env python3
"""Search files and process memory for a canary value (Python standard library only).

The e2e scenario puts a unique canary in the client's secret input and then looks for it where it must
never be: files (guest, host, the client container's disk) and the readable memory of every process.
The canary is never printed; only where it was found is reported. It travels masked: ``mask`` reads
it from the secret input file (a JSON field) and prints {"mask": hex, "masked": hex} (canary XOR mask),
and the scanners take that JSON on standard input and unmask it in their own memory only. So the clear
canary never passes through SSH, Ansible or the shell that runs a scanner (which would be found in their
memory and make the memory search meaningless).

  python3 e2e_canary.py mask INPUT_JSON [--field secret]
  python3 e2e_canary.py files ROOT... [--exclude PATH]... [--max-bytes N]   (masked canary on stdin)
  python3 e2e_canary.py memory                                               (masked canary on stdin)
  python3 e2e_canary.py td ROOT... [--exclude PATH]... [--journal FILE] [--no-memory]
                                                        (masked canary on stdin)

Prints one JSON object: {"found": [...], "scanned": N, "skipped": N, "errors": N}. ``td`` is the whole search
of a TD in one run (each remote command costs seconds under TCG): the journal exported to FILE first (journald
compresses long fields on disk, so its files alone would hide the canary), then the files, then (unless
--no-memory) the memory; it prints {"files": {...}, "memory": {...} or null}. Exit 0 always (the caller
decides); 2 on usage errors.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
PSEUDO_FS_ROOTS = ("/proc", "/sys", "/dev")
MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")


class CanaryError(ValueError):
    pass


def check_canary(canary: bytes) -> bytes:
    canary = canary.strip()
    if len(canary) < 16:
        raise CanaryError("the canary must be at least 16 bytes (a short one matches by chance)")
    return canary


def mask(canary: bytes, key: bytes | None = None) -> dict[str, str]:
    canary = check_canary(canary)
    key = key if key is not None else os.urandom(len(canary))
    if len(key) != len(canary):
        raise CanaryError("mask and canary differ in length")
    return {"mask": key.hex(), "masked": bytes(a ^ b for a, b in zip(canary, key, strict=True)).hex()}


def unmask(text: bytes) -> bytes:
    """The scanners' standard input: the masked JSON (or, for tests, the raw canary)."""
    stripped = text.strip()
    if not stripped.startswith(b"{"):
        return check_canary(stripped)
    try:
        data = json.loads(stripped)
        key, masked = bytes.fromhex(data["mask"]), bytes.fromhex(data["masked"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CanaryError("standard input is not a masked canary") from exc
    if len(key) != len(masked):
        raise CanaryError("mask and canary differ in length")
    return check_canary(bytes(a ^ b for a, b in zip(masked, key, strict=True)))


def canary_from_input(path: str, field: str) -> bytes:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        value = data[field]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CanaryError(f"cannot read field {field!r} of {path}") from exc
    if isinstance(value, list | dict):
        raise CanaryError(f"field {field!r} is not a scalar")
    return str(value).encode()


def stream_contains(handle: Any, canary: bytes, limit: int | None = None) -> bool:
    """Search a binary stream in chunks; a match across a chunk boundary is found too."""
    tail = b""
    read = 0
    while True:
        size = CHUNK if limit is None else min(CHUNK, limit - read)
        if size <= 0:
            return False
        block = handle.read(size)
        if not block:
            return False
        read += len(block)
        if canary in tail + block:
            return True
        tail = block[-(len(canary) - 1) :]


def walk_files(roots: Iterable[str], excludes: Iterable[str]) -> Iterator[Path]:
    ex = {os.path.realpath(e) for e in excludes}
    for root in roots:
        if os.path.realpath(root) in ex or not os.path.exists(root):
            continue
        if os.path.isfile(root):
            yield Path(root)
            continue
        for current, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = [
                d
                for d in dirs
                if os.path.realpath(os.path.join(current, d)) not in ex
                and os.path.join(current, d) not in PSEUDO_FS_ROOTS
            ]
            for name in files:
                path = os.path.join(current, name)
                if os.path.realpath(path) not in ex:
                    yield Path(path)


def scan_files(
    canary: bytes, roots: Iterable[str], excludes: Iterable[str], max_bytes: int
) -> dict[str, Any]:
    canary = check_canary(canary)
    found: list[str] = []
    scanned = skipped = errors = 0
    for path in walk_files(roots, excludes):
        try:
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_size > max_bytes:
                skipped += 1
                continue
            with path.open("rb") as handle:
                if stream_contains(handle, canary):
                    found.append(str(path))
            scanned += 1
        except OSError:
            errors += 1
    return {"found": found, "scanned": scanned, "skipped": skipped, "errors": errors}


def readable_regions(maps_text: str) -> list[tuple[int, int, str]]:
    regions = []
    for line in maps_text.splitlines():
        m = MAPS_LINE.match(line)
        if not m or m.group(3)[0] != "r":
            continue
        name = m.group(4).strip()
        if name in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
            continue
        regions.append((int(m.group(1), 16), int(m.group(2), 16), name))
    return regions


def scan_memory(canary: bytes, proc: str = "/proc", skip_pids: Iterable[int] = ()) -> dict[str, Any]:
    """Every readable mapping of every process (root reads /proc/PID/mem of all of them)."""
    canary = check_canary(canary)
    skip = set(skip_pids) | {os.getpid()}
    found: list[str] = []
    names: list[str] = []
    scanned = skipped = errors = 0
    for entry in sorted(os.listdir(proc)):
        if not entry.isdigit() or int(entry) in skip:
            continue
        try:
            maps = Path(proc, entry, "maps").read_text(encoding="utf-8", errors="replace")
            comm = Path(proc, entry, "comm").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            errors += 1  # gone meanwhile, or not readable
            continue
        regions = readable_regions(maps)
        if not regions:
            skipped += 1  # kernel threads have no user memory
            continue
        hit = False
        try:
            with open(os.path.join(proc, entry, "mem"), "rb", buffering=0) as mem:
                for start, end, _name in regions:
                    try:
                        mem.seek(start)
                        if stream_contains(mem, canary, end - start):
                            hit = True
                            break
                    except (OSError, OverflowError, ValueError):
                        continue
        except OSError:
            errors += 1
            continue
        scanned += 1
        names.append(comm)
        if hit:
            found.append(f"pid {entry} ({comm})")
    return {
        "found": found,
        "scanned": scanned,
        "skipped": skipped,
        "errors": errors,
        "processes": sorted(set(names)),
    }


def export_journal(dest: str) -> None:
    """The whole journal in export format, written where the file search will read it."""
    with open(dest, "wb") as out:
        done = subprocess.run(["journalctl", "--no-pager", "-o", "export"], stdout=out, check=False)
    if done.returncode != 0:
        raise CanaryError(f"journalctl exited {done.returncode}: the journal was not exported to {dest}")


def search_td(canary: bytes, args: list[str]) -> dict[str, Any]:
    """The ``td`` mode: journal export, files, memory (its two options taken; the rest as for ``files``)."""
    memory = "--no-memory" not in args
    rest = [a for a in args if a != "--no-memory"]
    if "--journal" in rest:
        i = rest.index("--journal")
        if i + 1 >= len(rest):
            raise CanaryError("--journal takes the file to export the journal to")
        export_journal(rest[i + 1])
        del rest[i : i + 2]
    roots, excludes, max_bytes = file_args(rest)
    return {
        "files": scan_files(canary, roots, excludes, max_bytes),
        "memory": scan_memory(canary) if memory else None,
    }


def file_args(rest: list[str]) -> tuple[list[str], list[str], int]:
    """ROOT... [--exclude PATH]... [--max-bytes N]."""
    roots: list[str] = []
    excludes: list[str] = []
    max_bytes = 256 << 20
    i = 0
    while i < len(rest):
        if rest[i] == "--exclude" and i + 1 < len(rest):
            excludes.append(rest[i + 1])
            i += 2
        elif rest[i] == "--max-bytes" and i + 1 < len(rest):
            try:
                max_bytes = int(rest[i + 1])
            except ValueError as exc:
                raise CanaryError(f"--max-bytes takes a number, not {rest[i + 1]!r}") from exc
            i += 2
        else:
            roots.append(rest[i])
            i += 1
    if not roots:
        raise CanaryError("no folder to search")
    return roots, excludes, max_bytes


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("files", "memory", "mask", "td"):
        sys.stderr.write(__doc__ or "")
        return 2
    try:
        if argv[0] == "mask":
            if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--field"):
                sys.stderr.write(__doc__ or "")
                return 2
            print(json.dumps(mask(canary_from_input(argv[1], argv[3] if len(argv) == 4 else "secret"))))
            return 0
        canary = unmask(sys.stdin.buffer.read())
        result: dict[str, Any]
        if argv[0] == "memory":
            result = scan_memory(canary)
        elif argv[0] == "td":
            result = search_td(canary, argv[1:])
        else:
            result = scan_files(canary, *file_args(argv[1:]))
    except CanaryError as exc:
        sys.stderr.write(f"e2e_canary: {exc}\n")
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
