"""Tree digest: stable, content- and metadata-sensitive, timestamp-blind; secret scan finds keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import image_tree

FAKE_KEY = (
    "-----BEGIN OPENSSH "
    + "PRIVATE KEY-----\n"
    + ("QUFB" * 16 + "\n") * 3
    + "-----END OPENSSH "
    + "PRIVATE KEY-----\n"
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc/hostname").write_text("td-guest\n")
    (root / "usr/bin/tool").write_bytes(b"\x7fELF" + b"x" * 100)
    (root / "bin").symlink_to("usr/bin")
    return root


def test_digest_is_stable_and_ignores_timestamps(tree: Path) -> None:
    first = image_tree.tree_report(str(tree)).digest
    os.utime(tree / "etc/hostname", (1, 1))
    assert image_tree.tree_report(str(tree)).digest == first


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "etc/hostname").write_text("other\n"),
        lambda r: (r / "usr/bin/tool").chmod(0o700),
        lambda r: (r / "etc/new").write_text(""),
        lambda r: (r / "bin").unlink() or (r / "bin").symlink_to("usr/sbin"),
        lambda r: (r / "etc/hostname").rename(r / "etc/hostname2"),
    ],
)
def test_digest_sees_changes(tree: Path, change: object) -> None:
    before = image_tree.tree_report(str(tree)).digest
    change(tree)  # type: ignore[operator]
    assert image_tree.tree_report(str(tree)).digest != before


def test_counts(tree: Path) -> None:
    report = image_tree.tree_report(str(tree))
    assert report.files == 2
    assert report.bytes == len("td-guest\n") + 104


def test_finds_private_keys_by_content_and_name(tree: Path) -> None:
    (tree / "etc/ssh").mkdir()
    (tree / "etc/ssh/ssh_host_ed25519_key").write_text("whatever")
    (tree / "usr/bin/blob").write_bytes(b"\0" * (image_tree.CHUNK - 10) + FAKE_KEY.encode())
    (tree / "etc/aws").write_text("key=AKIAABCDEFGHIJKLMNOP\n")
    found = {(f.path, f.reason) for f in image_tree.tree_report(str(tree)).findings}
    assert ("/etc/ssh/ssh_host_ed25519_key", "SSH host private key") in found
    assert ("/usr/bin/blob", "PEM private key") in found
    assert ("/etc/aws", "AWS access key id") in found


def test_header_string_alone_is_not_a_key(tree: Path) -> None:
    marker = b"-----BEGIN OPENSSH " + b"PRIVATE KEY-----\0%s\0-----END OPENSSH " + b"PRIVATE KEY-----"
    (tree / "usr/bin/ssh-keygen").write_bytes(b"\x7fELF" + marker * 3)
    assert image_tree.tree_report(str(tree)).findings == []


def test_public_keys_are_not_secrets(tree: Path) -> None:
    (tree / "etc/ssh").mkdir()
    (tree / "etc/ssh/ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAA host\n")
    (tree / "etc/cert.pem").write_text("-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n")
    assert image_tree.tree_report(str(tree)).findings == []


def test_allow_list(tree: Path) -> None:
    (tree / "etc/test.key").write_text(FAKE_KEY)
    assert image_tree.tree_report(str(tree)).findings
    assert image_tree.tree_report(str(tree), allow=[r"^/etc/test\.key$"]).findings == []


def test_an_excluded_path_does_not_count(tree: Path) -> None:
    """The image id file is written from the digest of everything else: it is left out of that digest."""
    before = image_tree.tree_report(str(tree)).digest
    (tree / "etc" / "image.json").write_text('{"tree": "..."}\n')
    assert image_tree.tree_report(str(tree)).digest != before
    assert image_tree.tree_report(str(tree), exclude=["/etc/image.json"]).digest == before
