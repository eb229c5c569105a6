"""RTMR0 checked event by event: a TD's CC event log against reference digests of its firmware configuration.

RTMR0 holds what the TD's firmware measured of its configuration: the TD HOB (``TdxTable``), the
configuration firmware volume (``Fv(...)``), the secure-boot variables (``SecureBoot``, ``PK``, ``KEK``,
``db``, ``dbx``), a separator, QEMU's ACPI tables (``ACPI DATA``), the boot variables (``BootOrder``,
``Boot0000``...) and later authorities (``SbatLevel``, ``MokListTrusted``). All of it is chosen by the TD host
(the VM shape: memory, vCPUs, devices, ``-acpitable``), so a quote whose RTMR0 is not checked lets a host add,
for example, an SSDT with SystemMemory operation regions while MRTD, RTMR1 and RTMR2 still match.

The kit records the RTMR0 events once from a trusted reference launch of the same VM shape (the shape and the
QEMU version are named in the reference, since both change the tables) and keeps the record with the image's
reference values::

    {"kit_rtmr0": 1, "shape": {...free-form, e.g. vcpus, memory_mib, qemu, firmware_sha256...},
     "events": [{"type": "EV_EFI_HANDOFF_TABLES2", "label": "TdxTable", "sha384": "<96 hex>"}, ...]}

``check`` then (1) replays the whole log and requires RTMR0-3 to equal the quote's, so the log is the one the
quote covers; (2) walks RTMR0's measured events in order against the reference: an event that is unknown
(extra), missing, reordered or changed is refused, and the refusal names it (its number among RTMR0's events,
its type, its label, its offset in the log). The log itself comes from the host's side of the TD (the ACPI
CCEL table) and is trusted only through the replay.

The labels are read from the events' data (UEFI variable names, the description of a blob or handoff table,
the text of a config-flags, action or IPL event); they make refusals readable and are compared too.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

try:  # the collection on the client
    from ansible_collections.teeproof.kit.plugins.module_utils import tdx_measure
except ImportError:  # pragma: no cover - beside it
    import tdx_measure  # type: ignore[no-redef]

REFERENCE_VERSION = 1
RTMR0_INDEX = 1  # CC MR index 1 is RTMR0
MAX_LABEL = 64
_HEX96 = re.compile(r"[0-9a-f]{96}")
_VARIABLE_TYPES = {
    "EV_EFI_VARIABLE_DRIVER_CONFIG",
    "EV_EFI_VARIABLE_BOOT",
    "EV_EFI_VARIABLE_BOOT2",
    "EV_EFI_VARIABLE_AUTHORITY",
}
_DESCRIBED_TYPES = {"EV_EFI_PLATFORM_FIRMWARE_BLOB2", "EV_EFI_HANDOFF_TABLES2"}
_TEXT_TYPES = {"EV_PLATFORM_CONFIG_FLAGS", "EV_EFI_ACTION", "EV_IPL", "EV_ACTION"}


class Rtmr0Error(ValueError):
    """A refusal: ``kind`` is one of log, replay, reference, unknown, missing, reordered, changed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"rtmr0 {kind}: {message}")
        self.kind = kind


@dataclass(frozen=True)
class RefEvent:
    type: str
    label: str
    sha384: str

    def document(self) -> dict[str, str]:
        return {"type": self.type, "label": self.label, "sha384": self.sha384}


@dataclass(frozen=True)
class LogEvent:
    number: int  # among RTMR0's measured events, from 0
    offset: int
    ref: RefEvent

    def name(self) -> str:
        label = f" {self.ref.label!r}" if self.ref.label else ""
        return f"RTMR0 event {self.number} ({self.ref.type}{label}, log offset {self.offset})"


def _printable(raw: bytes) -> str:
    text = raw.split(b"\x00", 1)[0].decode("ascii", errors="replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:MAX_LABEL]


def label(event: tdx_measure.Event) -> str:
    """A readable name for an event, read from its data (empty when its type carries none)."""
    kind, data = event.type_name, event.data
    if kind in _VARIABLE_TYPES and len(data) >= 32:
        (chars,) = struct.unpack_from("<Q", data, 16)
        name = data[32 : 32 + 2 * min(chars, MAX_LABEL)]
        return name.decode("utf-16-le", errors="replace").rstrip("\x00")
    if kind in _DESCRIBED_TYPES and data:
        return _printable(data[1 : 1 + data[0]])
    if kind in _TEXT_TYPES:
        return _printable(data)
    if kind == "EV_SEPARATOR":
        return "separator"
    return ""


def rtmr0_events(events: Sequence[tdx_measure.Event]) -> list[LogEvent]:
    """RTMR0's measured events in log order (EV_NO_ACTION is never extended)."""
    out: list[LogEvent] = []
    for event in events:
        if event.mr_index != RTMR0_INDEX or event.event_type == tdx_measure.EV_NO_ACTION:
            continue
        digest = event.digests.get(tdx_measure.TPM_ALG_SHA384)
        if digest is None:
            raise Rtmr0Error("log", f"the event at log offset {event.offset} has no SHA-384 digest")
        ref = RefEvent(event.type_name, label(event), digest.hex())
        out.append(LogEvent(len(out), event.offset, ref))
    return out


def record(log: bytes, shape: Mapping[str, Any]) -> dict[str, Any]:
    """The reference document of a trusted reference launch's event log, for the VM shape named."""
    if not isinstance(shape, Mapping) or not shape:
        raise Rtmr0Error(
            "reference", "name the VM shape the log was recorded on (vcpus, memory, QEMU, firmware)"
        )
    events = _parse(log)
    return {
        "kit_rtmr0": REFERENCE_VERSION,
        "shape": dict(shape),
        "events": [e.ref.document() for e in rtmr0_events(events)],
    }


def parse_reference(doc: Any) -> tuple[dict[str, Any], list[RefEvent]]:
    """The shape and the events of a reference document; Rtmr0Error("reference") names what is wrong."""
    if not isinstance(doc, Mapping) or doc.get("kit_rtmr0") != REFERENCE_VERSION:
        raise Rtmr0Error("reference", f"not an RTMR0 reference of version {REFERENCE_VERSION}")
    shape, events = doc.get("shape"), doc.get("events")
    if not isinstance(shape, Mapping) or not shape:
        raise Rtmr0Error("reference", "it names no VM shape")
    if not isinstance(events, list) or not events:
        raise Rtmr0Error("reference", "it holds no events")
    out: list[RefEvent] = []
    for i, item in enumerate(events):
        if not isinstance(item, Mapping) or set(item) != {"type", "label", "sha384"}:
            raise Rtmr0Error("reference", f"event {i} must have exactly type, label and sha384")
        kind, name, digest = item["type"], item["label"], item["sha384"]
        if not (isinstance(kind, str) and isinstance(name, str) and isinstance(digest, str)):
            raise Rtmr0Error("reference", f"event {i}: type, label and sha384 must be strings")
        if not _HEX96.fullmatch(digest):
            raise Rtmr0Error("reference", f"event {i}: sha384 must be 96 lower-case hex digits")
        out.append(RefEvent(kind, name, digest))
    return dict(shape), out


def _parse(log: bytes) -> list[tdx_measure.Event]:
    try:
        return tdx_measure.parse_event_log(log)
    except tdx_measure.EventLogError as exc:
        raise Rtmr0Error("log", str(exc)) from None


def _first_difference(got: list[LogEvent], want: list[RefEvent]) -> Rtmr0Error | None:
    for i in range(max(len(got), len(want))):
        if i >= len(got):
            return Rtmr0Error("missing", f"reference event {i} ({_ref_name(want[i])}) is not in the log")
        if i >= len(want):
            return Rtmr0Error("unknown", f"{got[i].name()} is not in the reference (an extra event)")
        if got[i].ref == want[i]:
            continue
        here, there = got[i], want[i]
        rest_got = [e.ref for e in got[i + 1 :]]
        rest_want = want[i + 1 :]
        if here.ref in rest_want and there in rest_got:
            return Rtmr0Error(
                "reordered", f"{here.name()} comes before reference event {i} ({_ref_name(there)})"
            )
        if here.ref in rest_want:
            return Rtmr0Error(
                "missing", f"reference event {i} ({_ref_name(there)}) is not in the log before {here.name()}"
            )
        if there in rest_got or (here.ref.type, here.ref.label) != (there.type, there.label):
            return Rtmr0Error(
                "unknown", f"{here.name()} is not in the reference (sha384 {here.ref.sha384[:16]}...)"
            )
        return Rtmr0Error(
            "changed",
            f"{here.name()} has sha384 {here.ref.sha384[:16]}..., the reference {there.sha384[:16]}...",
        )
    return None


def _ref_name(ref: RefEvent) -> str:
    return f"{ref.type} {ref.label!r}" if ref.label else ref.type


def check(log: bytes, quote_rtmrs: Sequence[bytes], reference: Any) -> dict[str, Any]:
    """Refuse unless the log replays to the quote's RTMR0-3 and RTMR0's events are the reference's, in order.

    Returns a summary (events checked, the reference's shape); raises Rtmr0Error naming the first difference.
    """
    shape, want = parse_reference(reference)
    if len(quote_rtmrs) != tdx_measure.RTMR_COUNT:
        raise Rtmr0Error("replay", f"the quote must give {tdx_measure.RTMR_COUNT} RTMRs")
    events = _parse(log)
    try:
        replayed = tdx_measure.replay(events)
    except tdx_measure.EventLogError as exc:
        raise Rtmr0Error("log", str(exc)) from None
    for i, (mine, theirs) in enumerate(zip(replayed, quote_rtmrs, strict=True)):
        if mine != theirs:
            raise Rtmr0Error(
                "replay",
                f"the event log replays to rtmr{i} {mine.hex()[:16]}..., the quote has "
                f"{theirs.hex()[:16]}...: it is not the log of this quote",
            )
    difference = _first_difference(rtmr0_events(events), want)
    if difference is not None:
        raise difference
    return {"rtmr0_events": len(want), "shape": shape, "replayed": [r.hex() for r in replayed]}


# ------------------------------------------------------------------------------ the lab (SIMULATED)
# No TDX firmware runs under TCG, so the lab's SIMULATED provider, the stand-in for the TDX module, also
# stands in for TDVF: it writes the RTMR0 events a TDVF would for the launch it is given - the TD HOB for the
# VM shape (memory, vCPUs), the configuration volume of the pinned firmware, a separator, QEMU's own ACPI
# tables for that shape, and one more ACPI table for each -acpitable the host adds - and quotes the RTMR0
# they replay to.
# The digests are the simulator's own (labelled SIMULATED); the checks that read them are the real ones.
SIMULATED_SHAPE_KEYS = ("memory_mib", "smp")


def _described(text: bytes) -> bytes:
    return bytes([len(text)]) + text


def simulated_shape(memory_mib: int, smp: int) -> dict[str, Any]:
    return {"simulated": "lab stand-in for TDVF (SIMULATED TDX)", "memory_mib": memory_mib, "smp": smp}


def simulated_rtmr0_events(
    shape: Mapping[str, Any], firmware: bytes, acpi_tables: Sequence[bytes] = ()
) -> list[tdx_measure.LogEntry]:
    """SIMULATED: the RTMR0 events of a lab launch of this shape and firmware, with these extra tables."""
    missing = [k for k in SIMULATED_SHAPE_KEYS if k not in shape]
    if missing:
        raise Rtmr0Error("reference", f"the VM shape lacks {', '.join(missing)}")
    doc = json.dumps({k: shape[k] for k in SIMULATED_SHAPE_KEYS}, sort_keys=True).encode()
    separator = b"\x00\x00\x00\x00"
    events: list[tdx_measure.LogEntry] = [
        (1, tdx_measure.EV_EFI_HANDOFF_TABLES2, _described(b"TdxTable"), _sha384(b"SIMULATED TD HOB " + doc)),
        (
            1,
            tdx_measure.EV_EFI_PLATFORM_FIRMWARE_BLOB2,
            _described(b"Fv(CFV)"),
            _sha384(b"SIMULATED CFV " + firmware),
        ),
        (1, tdx_measure.EV_SEPARATOR, separator, _sha384(separator)),
        (1, tdx_measure.EV_PLATFORM_CONFIG_FLAGS, b"ACPI DATA", _sha384(b"SIMULATED QEMU ACPI " + doc)),
    ]
    events += [(1, tdx_measure.EV_PLATFORM_CONFIG_FLAGS, b"ACPI DATA", _sha384(t)) for t in acpi_tables]
    return events


def simulated_reference(memory_mib: int, smp: int, firmware: bytes) -> dict[str, Any]:
    """The lab's RTMR0 reference for a shape, as the SIMULATED provider measures it (no extra table)."""
    shape = simulated_shape(memory_mib, smp)
    return record(tdx_measure.write_event_log(simulated_rtmr0_events(shape, firmware)), shape)


def _sha384(data: bytes) -> bytes:
    return hashlib.sha384(data).digest()
