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
from typing import Any

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
    for _unused in range(count):
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
    mr_index, event_type = (int(v) for v in struct.unpack_from("<II", log, pos))
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


# One measured event to write: (CC MR index 1..4, event type, event data, its SHA-384 digest).
LogEntry = tuple[int, int, bytes, bytes]
EV_SEPARATOR = 0x00000004
EV_IPL = 0x0000000D
EV_PLATFORM_CONFIG_FLAGS = 0x0000000A
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_ACTION = 0x80000007
EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
EV_EFI_HANDOFF_TABLES2 = 0x8000000B


def _spec_id_event() -> bytes:
    """The 'Spec ID Event03' header data, SHA-384 only (TCG PC Client platform firmware profile)."""
    head = b"Spec ID Event03\x00" + struct.pack("<IBBBB", 0, 0, 2, 0, 2)
    return head + struct.pack("<IHH", 1, TPM_ALG_SHA384, 48) + b"\x00"


def write_event_log(entries: list[LogEntry]) -> bytes:
    """A CC event log in the TCG2 crypto-agile format, SHA-384 only, that parse_event_log reads back."""
    spec = _spec_id_event()
    out = [struct.pack("<II", 0, EV_NO_ACTION), bytes(20), struct.pack("<I", len(spec)), spec]
    for mr_index, event_type, data, digest in entries:
        if not 1 <= mr_index <= RTMR_COUNT or len(digest) != 48:
            raise EventLogError(
                f"cannot write an event for MR index {mr_index} with a {len(digest)}-byte digest"
            )
        out += [struct.pack("<IIIH", mr_index, event_type, 1, TPM_ALG_SHA384), digest]
        out += [struct.pack("<I", len(data)), data]
    return b"".join(out)


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


# ====================================================================== part 2: MRTD from TDVF
#
# Best effort, NOT verified against a recorded TD: no TDVF image with a matching recorded MRTD is
# among the test vectors.  Parsing follows the TDVF design guide (OVMF GUIDed table footer at
# [len-48, len-32), TDX metadata entry with the offset-from-end of the "TDVF" descriptor).

OVMF_TABLE_FOOTER_GUID = "96b582de-1fb2-45f7-baea-a366c55a082d"
TDX_METADATA_GUID = "e47a6535-984a-4798-865e-4685a7bf8ec2"
SECTION_TYPES = {
    0: "BFV",
    1: "CFV",
    2: "TD_HOB",
    3: "TEMP_MEM",
    4: "PERM_MEM",
    5: "PAYLOAD",
    6: "PAYLOAD_PARAM",
}
ATTR_MR_EXTEND = 1 << 0
ATTR_PAGE_AUG = 1 << 1
PAGE = 0x1000
EXTEND_CHUNK = 0x100


class MeasureError(ValueError):
    """A firmware or kernel image cannot be measured (malformed, unsupported)."""


def guid_bytes(text: str) -> bytes:
    """EFI GUID text -> its mixed-endian binary form."""
    import uuid

    return uuid.UUID(text).bytes_le


@dataclass(frozen=True)
class TdvfSection:
    data_offset: int
    raw_size: int
    gpa: int
    memory_size: int
    section_type: int
    attributes: int

    @property
    def type_name(self) -> str:
        return SECTION_TYPES.get(self.section_type, str(self.section_type))


def _ovmf_tables(fw: bytes) -> bytes:
    end = len(fw) - 32
    if end < 18 or fw[end - 16 : end] != guid_bytes(OVMF_TABLE_FOOTER_GUID):
        raise MeasureError("no OVMF GUIDed table footer: not an OVMF/TDVF image")
    (size,) = struct.unpack_from("<H", fw, end - 18)
    if size < 18 or size > end:
        raise MeasureError("malformed OVMF GUIDed table footer")
    return fw[end - size : end - 18]


def _find_table_entry(tables: bytes, guid: bytes) -> bytes:
    pos = len(tables)
    while pos >= 18:
        (size,) = struct.unpack_from("<H", tables, pos - 18)
        if size < 18 or size > pos:
            raise MeasureError("malformed OVMF GUIDed table entry")
        if tables[pos - 16 : pos] == guid:
            return tables[pos - size : pos - 18]
        pos -= size
    raise MeasureError("OVMF image has no TDX metadata entry: not a TDX firmware (TDVF)")


def parse_tdvf_sections(fw: bytes) -> list[TdvfSection]:
    entry = _find_table_entry(_ovmf_tables(fw), guid_bytes(TDX_METADATA_GUID))
    if len(entry) < 4:
        raise MeasureError("TDX metadata entry too short")
    (from_end,) = struct.unpack_from("<I", entry, len(entry) - 4)
    start = len(fw) - from_end
    if start < 0 or start + 16 > len(fw) or fw[start : start + 4] != b"TDVF":
        raise MeasureError("TDVF metadata descriptor not found where the table points")
    _length, version, count = struct.unpack_from("<III", fw, start + 4)
    if version != 1:
        raise MeasureError(f"unsupported TDVF metadata version {version}")
    sections = []
    for i in range(count):
        pos = start + 16 + 32 * i
        if pos + 32 > len(fw):
            raise MeasureError("truncated TDVF section table")
        sec = TdvfSection(*struct.unpack_from("<IIQQII", fw, pos))
        _check_section(fw, sec, i)
        sections.append(sec)
    return sections


def _check_section(fw: bytes, sec: TdvfSection, index: int) -> None:
    if sec.gpa % PAGE or sec.memory_size % PAGE:
        raise MeasureError(f"TDVF section {index} is not page aligned")
    if sec.attributes & ATTR_MR_EXTEND and sec.raw_size < sec.memory_size:
        raise MeasureError(f"TDVF section {index}: MR.EXTEND needs raw data for the whole memory size")
    if sec.data_offset + sec.raw_size > len(fw):
        raise MeasureError(f"TDVF section {index} points past the end of the image")


def _record(tag: bytes, gpa: int) -> bytes:
    return tag.ljust(16, b"\x00") + struct.pack("<Q", gpa) + bytes(104)


def _page_add(h: Any, sec: TdvfSection, page: int) -> None:
    if not sec.attributes & ATTR_PAGE_AUG:
        h.update(_record(b"MEM.PAGE.ADD", sec.gpa + page * PAGE))


def _page_extend(h: Any, fw: bytes, sec: TdvfSection, page: int) -> None:
    if not sec.attributes & ATTR_MR_EXTEND:
        return
    for chunk in range(PAGE // EXTEND_CHUNK):
        off = page * PAGE + chunk * EXTEND_CHUNK
        h.update(_record(b"MR.EXTEND", sec.gpa + off))
        h.update(fw[sec.data_offset + off : sec.data_offset + off + EXTEND_CHUNK])


def compute_mrtd(fw: bytes, order: str = "interleaved") -> bytes:
    """MRTD of a TDVF image. ``interleaved``: QEMU >= 9 (add+extend per page); ``section``: QEMU 8.x."""
    if order not in ("interleaved", "section"):
        raise MeasureError(f"unknown page order {order!r} (interleaved or section)")
    h = hashlib.sha384()
    for sec in parse_tdvf_sections(fw):
        pages = range(sec.memory_size // PAGE)
        if order == "interleaved":
            for page in pages:
                _page_add(h, sec, page)
                _page_extend(h, fw, sec, page)
        else:
            for page in pages:
                _page_add(h, sec, page)
            for page in pages:
                _page_extend(h, fw, sec, page)
    return h.digest()


# ====================================================================== part 3: direct boot RTMR1/2
#
# RTMR1/RTMR2 for OVMF direct boot (QEMU -kernel/-initrd/-append), following the events OVMF logs:
#   RTMR1: Authenticode SHA-384 of the kernel as loaded (QEMU patched its setup header),
#          "Calling EFI Application from Boot Option", separator, the two Exit Boot Services actions.
#   RTMR2: SHA-384 of the command line in UTF-16LE with its NUL (plus " initrd=initrd" when an
#          initrd is given, which OVMF appends), then SHA-384 of the initrd.
# Verified here: the Authenticode implementation against osslsigncode's digest of a real signed
# PE (Debian's grubx64.efi.signed, see docs/tdx.md) and by property tests.  NOT verified against a
# recorded TD quote: the RTMR1 value depends on the QEMU setup-header patching (memory size,
# ACPI data size, initrd size) and on the OVMF build; treat it as best effort and compare it with
# a CC event log from the real TD (replay) before trusting it in production.

EV_SEPARATOR_DIGEST_INPUT = b"\x00\x00\x00\x00"
RTMR1_ACTIONS_BEFORE = (b"Calling EFI Application from Boot Option",)
RTMR1_ACTIONS_AFTER = (b"Exit Boot Services Invocation", b"Exit Boot Services Returned with Success")


def _u16(data: bytes | bytearray, off: int) -> int:
    return int(struct.unpack_from("<H", data, off)[0])


def _u32(data: bytes | bytearray, off: int) -> int:
    return int(struct.unpack_from("<I", data, off)[0])


@dataclass(frozen=True)
class PeLayout:
    checksum_at: int
    certdir_at: int
    size_of_headers: int
    sections: tuple[tuple[int, int], ...]  # (pointer_to_raw_data, size_of_raw_data)
    cert_table: tuple[int, int]  # (file offset, size)


def pe_layout(image: bytes | bytearray) -> PeLayout:
    if len(image) < 0x40 or image[:2] != b"MZ":
        raise MeasureError("not a PE image (no MZ header)")
    pe = _u32(image, 0x3C)
    if pe + 24 > len(image) or image[pe : pe + 4] != b"PE\x00\x00":
        raise MeasureError("not a PE image (no PE signature)")
    n_sections = _u16(image, pe + 6)
    opt_size = _u16(image, pe + 20)
    opt = pe + 24
    magic = _u16(image, opt)
    if magic not in (0x10B, 0x20B):
        raise MeasureError(f"unknown PE optional header magic {magic:#x}")
    dirs = opt + (96 if magic == 0x10B else 112)
    n_dirs = _u32(image, dirs - 4)
    certdir_at = dirs + 4 * 8
    cert = struct.unpack_from("<II", image, certdir_at) if n_dirs > 4 else (0, 0)
    table = opt + opt_size
    sections = []
    for i in range(n_sections):
        raw_size, raw_ptr = struct.unpack_from("<II", image, table + 40 * i + 16)
        if raw_size:
            sections.append((raw_ptr, raw_size))
    return PeLayout(opt + 64, certdir_at, _u32(image, opt + 60), tuple(sorted(sections)), cert)


def authenticode_digest(image: bytes | bytearray, algorithm: str = "sha384") -> bytes:
    """PE/COFF Authenticode digest (as UEFI measures EV_EFI_BOOT_SERVICES_APPLICATION)."""
    lay = pe_layout(image)
    h = hashlib.new(algorithm)
    h.update(image[: lay.checksum_at])
    h.update(image[lay.checksum_at + 4 : lay.certdir_at])
    h.update(image[lay.certdir_at + 8 : lay.size_of_headers])
    hashed = lay.size_of_headers
    for ptr, size in lay.sections:
        if ptr + size > len(image):
            raise MeasureError("PE section extends past the end of the file")
        h.update(image[ptr : ptr + size])
        hashed += size
    cert_size = lay.cert_table[1]
    if len(image) > hashed + cert_size:
        h.update(image[hashed : len(image) - cert_size])
    return h.digest()


def qemu_patch_kernel(kernel: bytes, initrd_size: int, memory_bytes: int, acpi_size: int = 0x28000) -> bytes:
    """Setup-header bytes QEMU's x86 Linux loader rewrites before OVMF measures the kernel.

    Mirrors QEMU's logic for boot protocol >= 2.02 "high" kernels (type_of_loader, CAN_USE_HEAP,
    heap_end_ptr, cmd_line_ptr, ramdisk_image/size).  Depends on the guest memory size; best effort.
    """
    kd = bytearray(kernel)
    if len(kd) < 0x1000 or kd[0x202:0x206] != b"HdrS":
        raise MeasureError("kernel has no Linux boot protocol header (HdrS)")
    protocol = _u16(kd, 0x206)
    if protocol < 0x202 or not kd[0x211] & 0x01:
        raise MeasureError(f"unsupported (old or low) kernel boot protocol {protocol:#x}")
    real_addr, cmdline_addr = 0x10000, 0x20000
    kd[0x210] = 0xB0
    kd[0x211] |= 0x80
    struct.pack_into("<I", kd, 0x224, cmdline_addr - real_addr - 0x200)
    struct.pack_into("<I", kd, 0x228, cmdline_addr)
    if initrd_size:
        struct.pack_into(
            "<II", kd, 0x218, _initrd_addr(kd, protocol, initrd_size, memory_bytes, acpi_size), initrd_size
        )
    return bytes(kd)


def _initrd_addr(kd: bytearray, protocol: int, size: int, memory_bytes: int, acpi_size: int) -> int:
    if protocol >= 0x20C and _u16(kd, 0x236) & 0x40:
        initrd_max = 0xFFFFFFFF
    elif protocol >= 0x203:
        initrd_max = _u32(kd, 0x22C) or 0x37FFFFFF
    else:
        initrd_max = 0x37FFFFFF
    lowmem = 0xB0000000 if memory_bytes < 0xB0000000 else 0x80000000
    below_4g = min(memory_bytes, lowmem)
    initrd_max = min(initrd_max, below_4g - acpi_size - 1)
    if size >= initrd_max:
        raise MeasureError("initrd too large for the guest memory")
    return (initrd_max - size) & ~0xFFF


def measured_cmdline(cmdline: str, has_initrd: bool) -> bytes:
    """The bytes OVMF hashes for the command line: UTF-16LE, NUL-terminated, with ' initrd=initrd'."""
    text = cmdline + (" initrd=initrd" if has_initrd else "")
    return (text + "\x00").encode("utf-16-le")


def extend_all(digests: list[bytes]) -> bytes:
    reg = ZERO48
    for d in digests:
        reg = hashlib.sha384(reg + d).digest()
    return reg


def _sha384(data: bytes) -> bytes:
    return hashlib.sha384(data).digest()


def rtmr1_direct_boot(kernel_digest: bytes) -> bytes:
    events = [
        kernel_digest,
        *(_sha384(a) for a in RTMR1_ACTIONS_BEFORE),
        _sha384(EV_SEPARATOR_DIGEST_INPUT),
        *(_sha384(a) for a in RTMR1_ACTIONS_AFTER),
    ]
    return extend_all(events)


def rtmr2_direct_boot(cmdline: str, initrd: bytes | None) -> bytes:
    events = [_sha384(measured_cmdline(cmdline, initrd is not None))]
    if initrd is not None:
        events.append(_sha384(initrd))
    return extend_all(events)


def direct_boot_events(kernel_digest: bytes, cmdline: str, initrd: bytes | None) -> list[LogEntry]:
    """RTMR1's and RTMR2's events of OVMF's direct boot, as extended by rtmr1_direct_boot / rtmr2_direct_boot
    (the lab's SIMULATED event log writes them; the event types follow OVMF's where known)."""
    events: list[LogEntry] = [(2, EV_EFI_BOOT_SERVICES_APPLICATION, b"", kernel_digest)]
    events += [(2, EV_EFI_ACTION, a, _sha384(a)) for a in RTMR1_ACTIONS_BEFORE]
    events.append((2, EV_SEPARATOR, EV_SEPARATOR_DIGEST_INPUT, _sha384(EV_SEPARATOR_DIGEST_INPUT)))
    events += [(2, EV_EFI_ACTION, a, _sha384(a)) for a in RTMR1_ACTIONS_AFTER]
    measured = measured_cmdline(cmdline, initrd is not None)
    events.append((3, EV_IPL, measured, _sha384(measured)))
    if initrd is not None:
        events.append((3, EV_IPL, b"initrd\x00", _sha384(initrd)))
    return events


def expected_measurements(
    kernel: bytes,
    initrd: bytes | None,
    cmdline: str,
    firmware: bytes | None = None,
    memory_bytes: int = 2 << 30,
    qemu_page_order: str = "interleaved",
    patch_setup_header: bool = True,
) -> dict[str, Any]:
    """Expected MRTD (when a TDVF image is given), RTMR1, RTMR2 for OVMF direct boot."""
    loaded = kernel
    if patch_setup_header:
        loaded = qemu_patch_kernel(kernel, len(initrd or b""), memory_bytes)
    kernel_digest = authenticode_digest(loaded)
    out: dict[str, Any] = {
        "rtmr1": rtmr1_direct_boot(kernel_digest).hex(),
        "rtmr2": rtmr2_direct_boot(cmdline, initrd).hex(),
        "kernel_authenticode_sha384": kernel_digest.hex(),
        "measured_cmdline": cmdline + (" initrd=initrd" if initrd is not None else ""),
        "initrd_sha384": _sha384(initrd).hex() if initrd is not None else None,
        "qemu_setup_header_patched": patch_setup_header,
        "memory_bytes": memory_bytes,
        "best_effort": ["rtmr1 (QEMU/OVMF version dependent)", "mr_td (not checked against a recorded TD)"],
    }
    if firmware is not None:
        out["mr_td"] = compute_mrtd(firmware, qemu_page_order).hex()
        out["mr_td_page_order"] = qemu_page_order
    return out


def write_expected_measurements(
    kernel: str,
    initrd: str | None,
    cmdline: str,
    firmware: str | None = None,
    out: str | None = None,
    qemu_page_order: str = "interleaved",
    memory_bytes: int = 2 << 30,
) -> dict[str, Any]:
    """Read the boot artifacts, compute expected measurements and write them as JSON (if ``out``)."""
    from pathlib import Path

    result = expected_measurements(
        Path(kernel).read_bytes(),
        Path(initrd).read_bytes() if initrd else None,
        cmdline,
        Path(firmware).read_bytes() if firmware else None,
        memory_bytes,
        qemu_page_order,
    )
    result["artifacts"] = {"kernel": kernel, "initrd": initrd, "firmware": firmware}
    if out:
        import json

        Path(out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return result
