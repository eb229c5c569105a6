"""The verity packer: the same tree gives the same bytes and root hash; any changed byte of the filesystem
fails veritysetup verify and a changed tree gives another root hash (real mkfs.ext4 and veritysetup)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import verity_pack

UUID = "7e3c5b1e-6a4f-4c8e-9b0d-2f1a3c4d5e6f"
SALT = hashlib.sha256(b"test salt").hexdigest()
EPOCH = 1704067200

# mkfs.ext4 and veritysetup come from requirements/debian.txt (bin/kit setup): missing tools fail, not skip.


def _tree(root: Path) -> Path:
    (root / "etc" / "keylime").mkdir(parents=True)
    (root / "etc" / "keylime" / "agent.conf").write_text("[agent]\nip = 0.0.0.0\n")
    (root / "root" / ".ssh").mkdir(parents=True)
    (root / "root" / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA operator\n")
    os.symlink("keylime/agent.conf", root / "etc" / "agent-link")
    return root


def _pack(root: Path, out: Path) -> verity_pack.VerityImage:
    return verity_pack.pack(root, out, 16, label="root", fs_uuid=UUID, salt=SALT, epoch=EPOCH)


def test_the_same_tree_packs_to_the_same_bytes_and_root_hash(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b, symlinks=True, copy_function=shutil.copy2)  # another copy, same file times
    for path in sorted(b.rglob("*"), reverse=True):
        os.utime(path, ns=(a.joinpath(path.relative_to(b)).lstat().st_mtime_ns,) * 2, follow_symlinks=False)
    os.utime(b, ns=(a.lstat().st_mtime_ns,) * 2)
    one, two = _pack(a, tmp_path / "one.raw"), _pack(b, tmp_path / "two.raw")
    assert one == two
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("one.raw", "two.raw")]
    assert digest[0] == digest[1]
    assert one.hash_offset == 16 * 1024 * 1024 and one.size_bytes > one.hash_offset
    verity_pack.verify(tmp_path / "one.raw", one)
    assert not (tmp_path / "one.raw.partial").exists()


def test_a_changed_file_gives_another_root_hash(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a")
    before = _pack(a, tmp_path / "one.raw")
    (a / "etc" / "keylime" / "agent.conf").write_text("[agent]\nip = 0.0.0.1\n")
    assert _pack(a, tmp_path / "two.raw").root_hash != before.root_hash


def test_a_byte_changed_in_the_image_fails_verification(tmp_path: Path) -> None:
    """What the host can do to the disk image file: the hash tree no longer matches the root hash."""
    image = tmp_path / "one.raw"
    info = _pack(_tree(tmp_path / "a"), image)
    data = bytearray(image.read_bytes())
    at = data.find(b"ssh-ed25519 AAAA operator")
    assert at > 0
    data[at + 12 : at + 16] = b"EVIL"
    image.write_bytes(bytes(data))
    with pytest.raises(verity_pack.PackError, match="veritysetup failed"):
        verity_pack.verify(image, info)


def test_bad_inputs_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(verity_pack.PackError, match="no root filesystem folder"):
        _pack(tmp_path / "missing", tmp_path / "x.raw")
    with pytest.raises(verity_pack.PackError, match="64 hex digits"):
        verity_pack.pack(tmp_path, tmp_path / "x.raw", 16, label="r", fs_uuid=UUID, salt="00", epoch=EPOCH)
    with pytest.raises(verity_pack.PackError, match="too small"):
        verity_pack.pack(tmp_path, tmp_path / "x.raw", 1, label="r", fs_uuid=UUID, salt=SALT, epoch=EPOCH)
    assert not list(tmp_path.glob("x.raw*"))


def test_file_times_are_kept(tmp_path: Path) -> None:
    """Compiled Python records its source's mtime: the packer must not change file times."""
    a = _tree(tmp_path / "a")
    conf = a / "etc" / "keylime" / "agent.conf"
    os.utime(conf, (1_900_000_000, 1_900_000_000))
    _pack(a, tmp_path / "one.raw")
    assert conf.stat().st_mtime == 1_900_000_000


def test_format_output_without_root_hash_is_an_error() -> None:
    with pytest.raises(verity_pack.PackError, match="no SHA-256 root hash"):
        verity_pack.parse_format_output("VERITY header information\nSalt: 00\n")


def test_entries_written_after_the_base_get_the_fixed_time_and_pack_alike(tmp_path: Path) -> None:
    """Two builds that wrote the same files at different times give the same bytes; files older than the
    base's unpacking (from packages) keep their times."""
    images = []
    for name, when in (("a", 1_800_000_000), ("b", 1_850_000_000)):
        root = _tree(tmp_path / name)
        base = root / "usr" / "lib" / "from-a-package.py"
        base.parent.mkdir(parents=True)
        base.write_text("x = 1\n")
        os.utime(base, (1_600_000_000, 1_600_000_000))
        for path in [*root.rglob("*"), root]:
            if path != base:
                os.utime(path, (when, when), follow_symlinks=False)
        os.utime(base.parent, (when, when))
        verity_pack.pack(
            root,
            tmp_path / f"{name}.raw",
            16,
            label="root",
            fs_uuid=UUID,
            salt=SALT,
            epoch=EPOCH,
            clamp_after=1_700_000_000,
        )
        assert base.stat().st_mtime == 1_600_000_000
        assert (root / "etc" / "agent-link").lstat().st_mtime == EPOCH
        images.append(hashlib.sha256((tmp_path / f"{name}.raw").read_bytes()).hexdigest())
    assert images[0] == images[1]


def _ctime(image: Path, path: str) -> int:
    stat = subprocess.run(
        ["debugfs", "-R", f"stat {path}", str(image)], capture_output=True, text=True, check=True
    )
    match = re.search(r"ctime: (0x[0-9a-f]+)", stat.stdout)
    assert match, stat.stdout
    return int(match.group(1), 16)


def test_every_entry_gets_the_fixed_ctime_whenever_it_was_written(tmp_path: Path) -> None:
    """mke2fs -d copies each entry's ctime (when it was last written or touched; nobody can set it) from the
    folder: without the fixed ctime, two builds of the same files a second apart pack to other bytes."""
    root = _tree(tmp_path / "root")
    (root / "fifo").mkdir()
    os.mkfifo(root / "fifo" / "pipe")
    os.symlink("etc", root / "etc-link")
    _pack(root, tmp_path / "one.raw")
    for path in [
        "/",
        "/etc",
        "/etc/keylime/agent.conf",
        "/etc/agent-link",
        "/root/.ssh",
        "/fifo/pipe",
        "/etc-link",
    ]:
        assert _ctime(tmp_path / "one.raw", path) == EPOCH, path


def test_a_name_debugfs_cannot_quote_is_refused_by_name(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    (root / 'say "hi"').write_text("x")
    with pytest.raises(verity_pack.PackError, match="debugfs cannot name"):
        _pack(root, tmp_path / "one.raw")
    assert not (tmp_path / "one.raw").exists()
