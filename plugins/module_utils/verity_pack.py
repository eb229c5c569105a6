"""Pack a root filesystem folder into one disk image: ext4 (``mkfs.ext4 -d``, no loop mount) followed by
its dm-verity hash tree (``veritysetup format``), reproducibly.

The same folder, size, UUID, salt and time give the same bytes and therefore the same root hash: the
filesystem's UUID and directory hash seed are fixed, mke2fs takes its own time from ``E2FSPROGS_FAKE_TIME``,
and the verity salt and UUID are parameters. Files that came from packages keep their times (a compiled
Python file's header holds its source's mtime). Every entry written after the base was unpacked (by the
guest roles, maintainer scripts, the initramfs) gets the fixed time instead (``clamp_after``), so two builds
from the same inputs give the same bytes; the build exports SOURCE_DATE_EPOCH, so pip and py3compile write
hash-checked compiled files that a changed time does not make stale. ``mke2fs -d`` copies each entry's ctime
from the folder, and a ctime is whenever the entry was last written or touched (no one can set it), so every
inode then gets the fixed time in one ``debugfs`` pass. The root hash goes on the kernel command line (RTMR2).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

BLOCK = 4096
Runner = Callable[[Sequence[str], dict[str, str]], str]


class PackError(RuntimeError):
    """Packing failed; the message says which step and why."""


@dataclass(frozen=True)
class VerityImage:
    root_hash: str
    salt: str
    hash_algorithm: str
    data_blocks: int
    hash_offset: int
    size_bytes: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _run(argv: Sequence[str], env: dict[str, str]) -> str:
    try:
        proc = subprocess.run(
            list(argv), env={**os.environ, **env}, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise PackError(
            f"{argv[0]} is missing (bin/kit setup installs e2fsprogs and cryptsetup-bin)"
        ) from exc
    if proc.returncode != 0:
        raise PackError(
            f"{argv[0]} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-800:]}"
        )
    return proc.stdout


def parse_format_output(text: str) -> dict[str, str]:
    """The 'Name: value' lines that ``veritysetup format`` prints."""
    fields = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z ]+):\s*(\S+)\s*$", line)
        if match:
            fields[match.group(1).strip().lower()] = match.group(2)
    if not re.fullmatch(r"[0-9a-f]{64}", fields.get("root hash", "")):
        raise PackError(f"veritysetup format printed no SHA-256 root hash: {text.strip()[-400:]}")
    return fields


def clamp_times(root: Path, after: float, epoch: int) -> int:
    """Give each entry (links themselves) newer than ``after`` the time ``epoch``; returns how many."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, ""]:
            path = os.path.join(dirpath, name) if name else dirpath
            if os.lstat(path).st_mtime > after:
                os.utime(path, (epoch, epoch), follow_symlinks=False)
                count += 1
    return count


def fixed_ctimes(rootfs: Path, image: Path, epoch: int, env: dict[str, str], runner: Runner) -> int:
    """Give every inode that ``mke2fs -d`` made from ``rootfs`` the ctime ``epoch``; returns how many."""
    paths: list[str] = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        rel = os.path.relpath(dirpath, rootfs)
        folder = "/" if rel == "." else "/" + rel
        paths.append(folder)
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        paths += [f"{folder.rstrip('/')}/{name}" for name in [*filenames, *links]]
    odd = [path for path in paths if any(c in path for c in '"\\\n')]
    if odd:
        raise PackError(f"debugfs cannot name {odd[0]!r} (a quote, a backslash or a newline in a file name)")
    commands = image.with_name(image.name + ".ctime")
    commands.write_text(
        "".join(f'set_inode_field "{path}" ctime @{epoch}\n' for path in paths), encoding="utf-8"
    )
    try:
        # debugfs echoes each command ("debugfs: ...") and reports a failed one on stderr, and exits 0
        out = runner(["sh", "-c", 'debugfs -w -f "$1" "$2" 2>&1', "debugfs", str(commands), str(image)], env)
    finally:
        commands.unlink(missing_ok=True)
    failed = [line for line in out.splitlines() if line.strip() and not line.startswith("debugfs")]
    if failed:
        raise PackError(f"debugfs could not give every entry the fixed ctime: {'; '.join(failed[:3])}")
    return len(paths)


def pack(
    rootfs: Path,
    out: Path,
    size_mib: int,
    *,
    label: str,
    fs_uuid: str,
    salt: str,
    epoch: int,
    clamp_after: float | None = None,
    runner: Runner = _run,
) -> VerityImage:
    """Write ``out`` (atomically): the ext4 filesystem of ``rootfs`` and, after it, its verity hash tree."""
    if not rootfs.is_dir():
        raise PackError(f"no root filesystem folder at {rootfs}")
    if not re.fullmatch(r"[0-9a-f]{64}", salt):
        raise PackError("the verity salt must be 64 hex digits")
    if size_mib < 16:
        raise PackError(f"a {size_mib} MiB filesystem is too small")
    if clamp_after is not None:
        clamp_times(rootfs, clamp_after, epoch)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    env = {"E2FSPROGS_FAKE_TIME": str(epoch)}
    options = f"root_owner=0:0,hash_seed={fs_uuid}"
    mkfs = ["mkfs.ext4", "-q", "-F", "-L", label, "-U", fs_uuid, "-E", options, "-d", str(rootfs)]
    runner([*mkfs, str(partial), f"{size_mib}M"], env)
    fixed_ctimes(rootfs, partial, epoch, env, runner)
    size = partial.stat().st_size
    if size % BLOCK:
        raise PackError(f"the filesystem image is {size} bytes, not a multiple of {BLOCK}")
    blocks = size // BLOCK
    text = runner(
        [
            "veritysetup",
            "format",
            f"--data-block-size={BLOCK}",
            f"--hash-block-size={BLOCK}",
            "--hash=sha256",
            f"--data-blocks={blocks}",
            f"--hash-offset={size}",
            f"--salt={salt}",
            f"--uuid={fs_uuid}",
            str(partial),
            str(partial),
        ],
        env,
    )
    fields = parse_format_output(text)
    image = VerityImage(
        root_hash=fields["root hash"],
        salt=fields.get("salt", salt),
        hash_algorithm=fields.get("hash algorithm", "sha256"),
        data_blocks=blocks,
        hash_offset=size,
        size_bytes=partial.stat().st_size,
    )
    partial.replace(out)
    return image


def verify(image: Path, info: VerityImage, runner: Runner = _run) -> None:
    """``veritysetup verify`` of the whole image against its root hash (raises PackError on a bad block)."""
    runner(
        [
            "veritysetup",
            "verify",
            f"--hash-offset={info.hash_offset}",
            f"--data-blocks={info.data_blocks}",
            str(image),
            str(image),
            info.root_hash,
        ],
        {},
    )
