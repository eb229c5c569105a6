"""Reference measurements for TDX: CC event log replay, MRTD from TDVF, RTMR1/2 for direct boot.

Part 1 - parse and replay a TDX CC event log (ACPI CCEL, TCG2 crypto-agile format, SHA-384).

Verified against recorded data: replaying go-tdx-guest's ``ccel_data.dat`` reproduces RTMR0-3 of
``cos-113-tdx-quote.dat`` exactly (tests/unit/tdx).

Rules: every RTMR starts as 48 zero bytes; for each event RTMR = SHA384(RTMR || SHA-384 digest).
CC MR index 1..4 is RTMR0..3 (index 0 would be MRTD, which is never extended from the log).
EV_NO_ACTION events (the Spec ID header, TdxTable info, ...) are not extended.  The log area is
padded (0xFF in practice); parsing stops at the first all-ones MR index/event type or at the end.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

EV_NO_ACTION = 0x00000003
TPM_ALG_SHA1 = 0x0004
TPM_ALG_SHA256 = 0x000B
TPM_ALG_SHA384 = 0x000C
TPM_ALG_SHA512 = 0x000D
_DEFAULT_SIZES = {TPM_ALG_SHA1: 20, TPM_ALG_SHA256: 32, TPM_ALG_SHA384: 48, TPM_ALG_SHA512: 64}
RTMR_COUNT = 4
ZERO48 = bytes(48)

EVENT_TYPE_NAMES = {
    0x00000001: "EV_POST_CODE",
    0x00000003: "EV_NO_ACTION",
    0x00000004: "EV_SEPARATOR",
    0x00000005: "EV_ACTION",
    0x00000006: "EV_EVENT_TAG",
    0x0000000A: "EV_PLATFORM_CONFIG_FLAGS",
    0x0000000D: "EV_IPL",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
    0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION",
    0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2",
    0x80000009: "EV_EFI_HANDOFF_TABLES",
    0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
}


class EventLogError(ValueError):
    """The event log is malformed (truncated event, unknown digest algorithm, bad MR index)."""


@dataclass(frozen=True)
class Event:
    offset: int
    mr_index: int
    event_type: int
    digests: dict[int, bytes]
    data: bytes

    @property
    def type_name(self) -> str:
        return EVENT_TYPE_NAMES.get(self.event_type, f"0x{self.event_type:08x}")


def _need(log: bytes, end: int, what: str, offset: int) -> None:
    if end > len(log):
        raise EventLogError(f"truncated event log: {what} of event at offset {offset}")


def _spec_id_sizes(data: bytes) -> dict[int, int]:
    """Digest sizes from the 'Spec ID Event03' header (falls back to the standard sizes)."""
    sizes = dict(_DEFAULT_SIZES)
    if not data.startswith(b"Spec ID Event03") or len(data) < 28:
        return sizes
    (count,) = struct.unpack_from("<I", data, 24)
    for i in range(count):
        pos = 28 + 4 * i
        if pos + 4 > len(data):
            raise EventLogError("truncated Spec ID event algorithm list")
        alg, size = struct.unpack_from("<HH", data, pos)
        sizes[alg] = size
    return sizes


def _parse_header_event(log: bytes) -> tuple[Event, int]:
    """The first event uses the legacy SHA-1 layout (TCG_PCClientPCREvent)."""
    _need(log, 32, "header", 0)
    mr_index, event_type = struct.unpack_from("<II", log, 0)
    (size,) = struct.unpack_from("<I", log, 28)
    _need(log, 32 + size, "header data", 0)
    event = Event(0, mr_index, event_type, {TPM_ALG_SHA1: log[8:28]}, log[32 : 32 + size])
    return event, 32 + size


def _parse_event2(log: bytes, pos: int, sizes: dict[int, int]) -> tuple[Event, int]:
    start = pos
    _need(log, pos + 12, "header", start)
    mr_index, event_type, count = struct.unpack_from("<III", log, pos)
    pos += 12
    digests: dict[int, bytes] = {}
    for _ in range(count):
        _need(log, pos + 2, "digest algorithm", start)
        (alg,) = struct.unpack_from("<H", log, pos)
        if alg not in sizes:
            raise EventLogError(f"unknown digest algorithm {alg:#06x} in event at offset {start}")
        digests[alg] = log[pos + 2 : pos + 2 + sizes[alg]]
        pos += 2 + sizes[alg]
        _need(log, pos, "digest", start)
    _need(log, pos + 4, "event size", start)
    (size,) = struct.unpack_from("<I", log, pos)
    pos += 4
    _need(log, pos + size, "event data", start)
    return Event(start, mr_index, event_type, digests, log[pos : pos + size]), pos + size


def _at_end(log: bytes, pos: int) -> bool:
    if pos + 8 > len(log):
        return True
    mr_index, event_type = struct.unpack_from("<II", log, pos)
    return mr_index == 0xFFFFFFFF or event_type == 0xFFFFFFFF or (mr_index == 0 and event_type == 0)


def parse_event_log(log: bytes) -> list[Event]:
    """All events of a CC event log, header event first."""
    header, pos = _parse_header_event(log)
    sizes = _spec_id_sizes(header.data)
    events = [header]
    while not _at_end(log, pos):
        event, pos = _parse_event2(log, pos, sizes)
        events.append(event)
    return events


def replay(events: list[Event]) -> list[bytes]:
    """RTMR0..3 after extending every measured event (EV_NO_ACTION skipped)."""
    rtmrs = [ZERO48] * RTMR_COUNT
    for event in events:
        if event.event_type == EV_NO_ACTION:
            continue
        if not 1 <= event.mr_index <= RTMR_COUNT:
            raise EventLogError(f"event at offset {event.offset} has MR index {event.mr_index} (want 1..4)")
        digest = event.digests.get(TPM_ALG_SHA384)
        if digest is None:
            raise EventLogError(f"event at offset {event.offset} has no SHA-384 digest")
        i = event.mr_index - 1
        rtmrs[i] = hashlib.sha384(rtmrs[i] + digest).digest()
    return rtmrs


def replay_log(log: bytes) -> list[bytes]:
    return replay(parse_event_log(log))


def event_summary(event: Event) -> dict[str, object]:
    digest = event.digests.get(TPM_ALG_SHA384)
    return {
        "offset": event.offset,
        "mr_index": event.mr_index,
        "rtmr": event.mr_index - 1 if event.event_type != EV_NO_ACTION else None,
        "event_type": event.type_name,
        "sha384": digest.hex() if digest is not None else None,
        "data_len": len(event.data),
    }
