"""CC event log replay against the recorded go-tdx-guest log and quote."""

from __future__ import annotations

import hashlib
import struct

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import tdx_measure, tdx_quote
from conftest import GTG


def test_replay_reproduces_recorded_rtmrs() -> None:
    events = tdx_measure.parse_event_log((GTG / "ccel_data.dat").read_bytes())
    quote = tdx_quote.parse_quote((GTG / "cos-113-tdx-quote.dat").read_bytes())
    assert sum(1 for e in events if e.event_type != tdx_measure.EV_NO_ACTION) == 43
    rtmrs = tdx_measure.replay(events)
    for i in range(4):
        assert rtmrs[i] == quote.report.rtmr(i), f"rtmr{i}"


def test_replay_detects_a_tampered_event() -> None:
    log = bytearray((GTG / "ccel_data.dat").read_bytes())
    quote = tdx_quote.parse_quote((GTG / "cos-113-tdx-quote.dat").read_bytes())
    events = tdx_measure.parse_event_log(bytes(log))
    target = next(e for e in events if e.mr_index == 3 and e.event_type != tdx_measure.EV_NO_ACTION)
    digest_at = target.offset + 12 + 2
    log[digest_at] ^= 0x01
    rtmrs = tdx_measure.replay_log(bytes(log))
    assert rtmrs[2] != quote.report.rtmr2
    assert rtmrs[0] == quote.report.rtmr0


def test_no_action_events_are_skipped() -> None:
    header = tdx_measure.parse_event_log((GTG / "ccel_data.dat").read_bytes())[:1]
    assert header[0].event_type == tdx_measure.EV_NO_ACTION
    assert tdx_measure.replay(header) == [bytes(48)] * 4


def test_replay_rule() -> None:
    d = hashlib.sha384(b"x").digest()
    ev = tdx_measure.Event(0, 4, 0xD, {tdx_measure.TPM_ALG_SHA384: d}, b"x")
    assert tdx_measure.replay([ev])[3] == hashlib.sha384(bytes(48) + d).digest()


def test_truncated_log_raises() -> None:
    log = (GTG / "ccel_data.dat").read_bytes()
    with pytest.raises(tdx_measure.EventLogError, match="truncated"):
        tdx_measure.parse_event_log(log[:200])


def test_bad_mr_index_raises() -> None:
    ev = tdx_measure.Event(0, 7, 0xD, {tdx_measure.TPM_ALG_SHA384: bytes(48)}, b"")
    with pytest.raises(tdx_measure.EventLogError, match="MR index"):
        tdx_measure.replay([ev])


def test_ccel_table_points_at_a_log_area() -> None:
    table = (GTG / "ccel_table.dat").read_bytes()
    assert table[:4] == b"CCEL"
    (length,) = struct.unpack_from("<Q", table, 40)
    assert length == len((GTG / "ccel_data.dat").read_bytes())


def test_a_written_log_reads_back_and_direct_boot_events_replay_to_rtmr1_and_rtmr2() -> None:
    kernel = hashlib.sha384(b"kernel").digest()
    entries = tdx_measure.direct_boot_events(kernel, "console=ttyS0", b"INITRD")
    log = tdx_measure.write_event_log(entries)
    events = tdx_measure.parse_event_log(log)
    assert events[0].event_type == tdx_measure.EV_NO_ACTION and events[0].data.startswith(b"Spec ID Event03")
    assert [(e.mr_index, e.event_type, e.data) for e in events[1:]] == [
        (m, t, d) for m, t, d, _unused in entries
    ]
    rtmrs = tdx_measure.replay(events)
    assert rtmrs[1] == tdx_measure.rtmr1_direct_boot(kernel)
    assert rtmrs[2] == tdx_measure.rtmr2_direct_boot("console=ttyS0", b"INITRD")
    assert tdx_measure.replay_log(tdx_measure.write_event_log(entries[:-1]))[2] != rtmrs[2]


def test_an_event_that_cannot_be_written_is_refused() -> None:
    with pytest.raises(tdx_measure.EventLogError, match="MR index 5"):
        tdx_measure.write_event_log([(5, 1, b"", bytes(48))])
    with pytest.raises(tdx_measure.EventLogError, match="32-byte digest"):
        tdx_measure.write_event_log([(1, 1, b"", bytes(32))])
