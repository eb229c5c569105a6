"""IMA binary log parsing and PCR replay, on a log built here the way the kernel builds it."""

from __future__ import annotations

import hashlib
import struct

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import ima_log


def field(b: bytes) -> bytes:
    return struct.pack("<I", len(b)) + b


def entry(path: str, content: bytes, pcr: int = 10, violation: bool = False) -> bytes:
    data = field(b"sha256:\0" + hashlib.sha256(content).digest()) + field(path.encode() + b"\0")
    digest = bytes(20) if violation else hashlib.sha1(data).digest()
    return struct.pack("<I20sI", pcr, digest, 6) + b"ima-ng" + struct.pack("<I", len(data)) + data


def extend(bank: str, pcr: bytes, d: bytes) -> bytes:
    return hashlib.new(bank, pcr + d).digest()


def test_parse_and_file_hash() -> None:
    entries = ima_log.parse(entry("/usr/bin/x", b"abc"))
    assert len(entries) == 1
    assert entries[0].file_hash() == ("sha256", hashlib.sha256(b"abc").hexdigest(), "/usr/bin/x")


def test_replay_both_banks_with_violation() -> None:
    raw = entry("/a", b"1") + entry("/b", b"2", violation=True) + entry("/c", b"3", pcr=11)
    entries = ima_log.parse(raw)
    want256 = bytes(32)
    want1 = bytes(20)
    want256 = extend("sha256", want256, hashlib.sha256(entries[0].data).digest())
    want1 = extend("sha1", want1, entries[0].template_digest)
    want256 = extend("sha256", want256, b"\xff" * 32)
    want1 = extend("sha1", want1, b"\xff" * 20)
    assert ima_log.replay(entries, "sha256") == want256
    assert ima_log.replay(entries, "sha1") == want1


def test_prefix_match_when_log_grew_after_pcr_read() -> None:
    entries = ima_log.parse(entry("/a", b"1") + entry("/b", b"2") + entry("/c", b"3"))
    pcr = ima_log.replay(entries[:2])
    assert ima_log.matching_prefix(entries, pcr) == 2
    assert ima_log.matching_prefix(entries, b"\x01" * 32) is None


def test_truncated_log_is_an_error() -> None:
    with pytest.raises(ima_log.ImaLogError):
        ima_log.parse(entry("/a", b"1")[:-3])


def test_parse_pcrread() -> None:
    text = "  sha1:\n    10: 0xAABB\n  sha256:\n    10: 0x" + "11" * 32 + "\n"
    assert ima_log.parse_pcrread(text, "sha256") == b"\x11" * 32
    assert ima_log.parse_pcrread(text, "sha1") == bytes.fromhex("aabb")
    with pytest.raises(ima_log.ImaLogError):
        ima_log.parse_pcrread(text, "sha384")
