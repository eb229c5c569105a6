"""RTMR0 event by event on recorded data: go-tdx-guest's CC event log against cos-113-tdx-quote.dat.

A launch the host changed (an extra ACPI table, a changed or removed event, two events swapped) gives a log
that replays to its own quote's RTMRs, so each case is checked against the RTMRs its own log replays to: the
reference refuses it and names the event. A log that is not the quote's is refused by the replay.
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import rtmr0_reference as r0
from ansible_collections.teeproof.kit.plugins.module_utils import tdx_measure, tdx_quote
from conftest import GTG

LOG = (GTG / "ccel_data.dat").read_bytes()
QUOTE = tdx_quote.parse_quote((GTG / "cos-113-tdx-quote.dat").read_bytes())
RTMRS = [QUOTE.report.rtmr(i) for i in range(4)]
SHAPE = {"source": "go-tdx-guest ccel_data.dat (GCE c3-standard TDX, cos-113)", "qemu": "GCE"}
EVENTS = tdx_measure.parse_event_log(LOG)


def _reference() -> dict[str, Any]:
    return r0.record(LOG, SHAPE)


def _measured(kind: str, text: str = "") -> tdx_measure.Event:
    return next(
        e for e in EVENTS if e.mr_index == 1 and e.type_name == kind and r0.label(e) == (text or r0.label(e))
    )


def _span(event: tdx_measure.Event) -> tuple[int, int]:
    following = [e.offset for e in EVENTS if e.offset > event.offset]
    return event.offset, min(following)


def _event_bytes(mr_index: int, event_type: int, data: bytes) -> bytes:
    digest = hashlib.sha384(data).digest()
    head = struct.pack("<III", mr_index, event_type, 1) + struct.pack("<H", tdx_measure.TPM_ALG_SHA384)
    return head + digest + struct.pack("<I", len(data)) + data


def _check_own(log: bytes) -> dict[str, Any]:
    """As the quote of the launch that wrote this log would have it (the log replays to it)."""
    return r0.check(log, tdx_measure.replay_log(log), _reference())


def test_the_recorded_log_passes_against_its_quote_with_reference_digests() -> None:
    summary = r0.check(LOG, RTMRS, _reference())
    assert summary["rtmr0_events"] == 16
    labels = [e["label"] for e in _reference()["events"]]
    assert labels[:4] == ["TdxTable", "Fv(48DB5E17-707C-472D-91CD-1613E7EF51B0)", "SecureBoot", "PK"]
    assert labels.count("ACPI DATA") == 3 and "BootOrder" in labels and labels[-1] == "MokListTrusted"


def test_an_extra_acpi_table_is_refused_naming_it() -> None:
    last_acpi = [e for e in EVENTS if r0.label(e) == "ACPI DATA"][-1]
    _start, end = _span(last_acpi)
    ssdt = _event_bytes(1, 0x0000000A, b"ACPI DATA")  # EV_PLATFORM_CONFIG_FLAGS, another table's digest
    log = LOG[:end] + ssdt + LOG[end:]
    with pytest.raises(r0.Rtmr0Error) as caught:
        _check_own(log)
    assert caught.value.kind == "unknown"
    assert f"RTMR0 event 11 (EV_PLATFORM_CONFIG_FLAGS 'ACPI DATA', log offset {end})" in str(caught.value)


def test_a_changed_event_is_refused_naming_it() -> None:
    acpi = [e for e in EVENTS if r0.label(e) == "ACPI DATA"][1]
    log = bytearray(LOG)
    log[acpi.offset + 14] ^= 0x01  # the first byte of its SHA-384 digest
    with pytest.raises(r0.Rtmr0Error) as caught:
        _check_own(bytes(log))
    assert caught.value.kind == "changed"
    assert f"RTMR0 event 9 (EV_PLATFORM_CONFIG_FLAGS 'ACPI DATA', log offset {acpi.offset})" in str(
        caught.value
    )


def test_a_removed_event_is_refused_naming_it() -> None:
    kek = _measured("EV_EFI_VARIABLE_DRIVER_CONFIG", "KEK")
    start, end = _span(kek)
    with pytest.raises(r0.Rtmr0Error) as caught:
        _check_own(LOG[:start] + LOG[end:])
    assert caught.value.kind == "missing"
    assert "reference event 4 (EV_EFI_VARIABLE_DRIVER_CONFIG 'KEK') is not in the log" in str(caught.value)


def test_two_events_swapped_are_refused_as_reordered() -> None:
    db = _measured("EV_EFI_VARIABLE_DRIVER_CONFIG", "db")
    dbx = _measured("EV_EFI_VARIABLE_DRIVER_CONFIG", "dbx")
    a, b = _span(db), _span(dbx)
    assert a[1] == b[0]
    log = LOG[: a[0]] + LOG[b[0] : b[1]] + LOG[a[0] : a[1]] + LOG[b[1] :]
    with pytest.raises(r0.Rtmr0Error) as caught:
        _check_own(log)
    assert caught.value.kind == "reordered" and "'dbx'" in str(caught.value) and "'db')" in str(caught.value)


def test_a_missing_last_event_and_a_log_that_is_not_the_quotes_are_refused() -> None:
    last = [e for e in EVENTS if e.mr_index == 1 and e.event_type != tdx_measure.EV_NO_ACTION][-1]
    start, end = _span(last)
    with pytest.raises(r0.Rtmr0Error, match=r"reference event 15 .* is not in the log") as caught:
        _check_own(LOG[:start] + LOG[end:])
    assert caught.value.kind == "missing"
    with pytest.raises(r0.Rtmr0Error, match=r"replays to rtmr0 .* not the log of this quote") as replay:
        r0.check(LOG[:start] + LOG[end:], RTMRS, _reference())
    assert replay.value.kind == "replay"


def test_an_event_outside_rtmr0_changes_nothing_here_but_the_replay() -> None:
    ipl = next(e for e in EVENTS if e.mr_index == 3)
    log = bytearray(LOG)
    log[ipl.offset + 14] ^= 0x01
    assert _check_own(bytes(log))["rtmr0_events"] == 16  # RTMR2 is checked against the image, not here
    with pytest.raises(r0.Rtmr0Error, match="rtmr2"):
        r0.check(bytes(log), RTMRS, _reference())


@pytest.mark.parametrize(
    ("doc", "said"),
    [
        ({}, "not an RTMR0 reference"),
        ({"kit_rtmr0": 1, "shape": {}, "events": [1]}, "names no VM shape"),
        ({"kit_rtmr0": 1, "shape": SHAPE, "events": []}, "holds no events"),
        ({"kit_rtmr0": 1, "shape": SHAPE, "events": [{"type": "x", "label": ""}]}, "exactly type, label"),
        (
            {"kit_rtmr0": 1, "shape": SHAPE, "events": [{"type": "x", "label": "", "sha384": "AB"}]},
            "96 lower",
        ),
    ],
)
def test_a_bad_reference_is_named(doc: dict[str, Any], said: str) -> None:
    with pytest.raises(r0.Rtmr0Error, match=said) as caught:
        r0.check(LOG, RTMRS, doc)
    assert caught.value.kind == "reference"


def test_recording_needs_a_shape_and_a_log() -> None:
    with pytest.raises(r0.Rtmr0Error, match="name the VM shape"):
        r0.record(LOG, {})
    with pytest.raises(r0.Rtmr0Error) as caught:
        r0.record(LOG[:100], SHAPE)
    assert caught.value.kind == "log"


def test_the_cli_records_a_reference_and_checks_a_log_against_a_quote(tmp_path: Path) -> None:
    cli = [sys.executable, str(Path(__file__).resolve().parents[3] / "bin" / "tdx-quote")]
    ref = tmp_path / "rtmr0.json"
    recorded = subprocess.run(
        [*cli, "rtmr0-record", str(GTG / "ccel_data.dat"), "--shape", "source=gce", "--out", str(ref)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert recorded.returncode == 0 and "16 RTMR0 events recorded" in recorded.stderr
    assert json.loads(ref.read_text())["shape"] == {"source": "gce"}
    check = [*cli, "rtmr0-check", str(GTG / "ccel_data.dat"), "--reference", str(ref), "--json", "--quote"]
    ok = subprocess.run(
        [*check, str(GTG / "cos-113-tdx-quote.dat")], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["rtmr0_events"] == 16
    other = GTG.parent / "dcap-qvl" / "tdx_quote"
    refused = subprocess.run([*check, str(other)], capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and json.loads(refused.stdout)["kind"] == "replay"
    bad = subprocess.run(
        [*cli, "rtmr0-record", str(GTG / "ccel_data.dat"), "--shape", "novalue"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "want KEY=VALUE" in bad.stderr
