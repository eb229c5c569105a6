"""IMA forwarded into the TD's own vTPM: PCR 10 is always the replay of a prefix of IMA's list, in every bank,
and whatever breaks that (a failed extend, another writer) stops the forwarder instead of hiding an entry.

A fake TPM computes PCR 10 from the tpm2_pcrextend specs it is given; the list is built the way the kernel
builds it (test_ima_log.entry)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import ima_forward, ima_log
from test_ima_log import entry


class FakeTpm:
    def __init__(self) -> None:
        self.pcr = {"sha1": bytes(20), "sha256": bytes(32)}
        self.calls: list[list[str]] = []
        self.fail = False

    def extend(self, specs: Sequence[str]) -> None:
        if self.fail:
            raise ima_forward.ForwardError("tpm2_pcrextend failed (1): the vTPM went away")
        self.calls.append(list(specs))
        for spec in specs:
            index, _sep, digests = spec.partition(":")
            assert index == "10"
            for part in digests.split(","):
                bank, _eq, value = part.partition("=")
                self.pcr[bank] = hashlib.new(bank, self.pcr[bank] + bytes.fromhex(value)).digest()

    def read(self, bank: str) -> bytes:
        return self.pcr[bank]


@pytest.fixture
def kit(tmp_path: Path) -> tuple[Path, Path, FakeTpm]:
    state = tmp_path / "state"
    state.mkdir()
    log = tmp_path / "binary_runtime_measurements"
    log.write_bytes(entry("boot_aggregate", b"") + entry("/usr/bin/kmod", b"kmod"))
    return state, log, FakeTpm()


def _append(log: Path, data: bytes) -> None:
    with open(log, "ab") as handle:
        handle.write(data)


def _assert_pcr_is_replay(tpm: FakeTpm, log: Path) -> None:
    entries = ima_log.parse(log.read_bytes())
    for bank in ("sha1", "sha256"):
        assert tpm.read(bank) == ima_log.replay(entries, bank), bank


def test_every_entry_is_forwarded_once_in_order_in_every_bank(kit: tuple[Path, Path, FakeTpm]) -> None:
    state, log, tpm = kit
    assert ima_forward.recover(state, tpm.read, log) == ima_forward.Position(0, 0)
    assert ima_forward.sync(state, tpm.extend, log) == 2
    _assert_pcr_is_replay(tpm, log)
    assert ima_forward.sync(state, tpm.extend, log) == 0 and len(tpm.calls) == 1
    _append(
        log,
        entry("/usr/bin/id", b"id") + entry("/etc/x", b"x", pcr=11) + entry("/tmp/t", b"", violation=True),
    )
    assert ima_forward.sync(state, tpm.extend, log) == 3
    assert len(tpm.calls[1]) == 2  # PCR 11's entry is passed over, and counted
    assert tpm.calls[1][1].endswith("sha256=" + "ff" * 32)  # a violation extends 0xFF..., as the kernel does
    _assert_pcr_is_replay(tpm, log)
    assert ima_forward.load_position(state) == ima_forward.Position(5, len(log.read_bytes()))


def test_an_entry_still_being_written_waits_for_the_next_sync(kit: tuple[Path, Path, FakeTpm]) -> None:
    state, log, tpm = kit
    ima_forward.recover(state, tpm.read, log)
    ima_forward.sync(state, tpm.extend, log)
    whole = entry("/usr/bin/late", b"late")
    _append(log, whole[:30])
    assert ima_forward.sync(state, tpm.extend, log) == 0
    _append(log, whole[30:])
    assert ima_forward.sync(state, tpm.extend, log) == 1
    _assert_pcr_is_replay(tpm, log)


def test_a_restarted_forwarder_finds_its_prefix_in_pcr_10(kit: tuple[Path, Path, FakeTpm]) -> None:
    state, log, tpm = kit
    ima_forward.recover(state, tpm.read, log)
    ima_forward.sync(state, tpm.extend, log)
    _append(log, entry("/usr/bin/a", b"a") + entry("/usr/bin/b", b"b"))
    (state / ima_forward.STATE_FILE).unlink()  # a restart: the position is read from the vTPM again
    position = ima_forward.recover(state, tpm.read, log)
    assert position.entries == 2 and position.offset == len(
        entry("boot_aggregate", b"") + entry("/usr/bin/kmod", b"kmod")
    )
    assert ima_forward.sync(state, tpm.extend, log) == 2
    _assert_pcr_is_replay(tpm, log)


def test_a_pcr_10_that_no_prefix_replays_to_stops_the_forwarder(kit: tuple[Path, Path, FakeTpm]) -> None:
    state, log, tpm = kit
    tpm.extend(["10:sha1=" + "11" * 20 + ",sha256=" + "22" * 32])  # someone else extended PCR 10
    with pytest.raises(ima_forward.ForwardError, match="replay of no prefix of IMA's list"):
        ima_forward.recover(state, tpm.read, log)
    with pytest.raises(ima_forward.ForwardError, match="no forwarded position"):
        ima_forward.sync(state, tpm.extend, log)


def test_a_failed_extend_forgets_the_position_until_it_is_recovered(kit: tuple[Path, Path, FakeTpm]) -> None:
    state, log, tpm = kit
    ima_forward.recover(state, tpm.read, log)
    tpm.fail = True
    with pytest.raises(ima_forward.ForwardError, match="the vTPM went away"):
        ima_forward.sync(state, tpm.extend, log)
    tpm.fail = False
    with pytest.raises(ima_forward.ForwardError, match="no forwarded position"):
        ima_forward.sync(state, tpm.extend, log)
    ima_forward.recover(state, tpm.read, log)
    assert ima_forward.sync(state, tpm.extend, log) == 2
    _assert_pcr_is_replay(tpm, log)


def test_a_malformed_position_is_named(kit: tuple[Path, Path, FakeTpm]) -> None:
    state, log, tpm = kit
    (state / ima_forward.STATE_FILE).write_text("{")
    with pytest.raises(ima_forward.ForwardError, match="is malformed"):
        ima_forward.sync(state, tpm.extend, log)
