"""IMA's measurements forwarded into the TD's own vTPM, PCR 10, entry by entry and in order.

The kernel's IMA starts before any userspace TPM exists: in a TD without a TPM it runs in TPM-bypass mode
(its boot_aggregate is then all zeros) and only keeps its measurement list. The TD's vTPM (swtpm in TD memory,
behind the kernel's vTPM proxy: roles/td_vtpm) gets the list's entries from here, each extended into every
bank exactly as the kernel would extend a TPM (the bank's hash of the template data; 0xFF... for a
violation), so Keylime's verifier replays the list against PCR 10 unchanged.

Invariant: PCR 10 is always the replay of a prefix of the list (``entries`` of them, ``offset`` bytes), kept
in ``STATE_DIR/forwarded.json`` under ``STATE_DIR/forward.lock``. The forwarder daemon keeps it current, and
the agent syncs right before each quote (keylime_agent_compat), so a quote covers every entry measured before
it. ``recover`` finds the prefix from PCR 10 itself (after a restart, or a failed extend); if no prefix of the
list replays to PCR 10, something else extended it and the forwarder stops: the verifier then sees a PCR 10
that matches no log (ima.pcr_mismatch), never a hidden entry.

Standard library only (the guest's Python); the TPM is reached through tpm2-tools with TPM2TOOLS_TCTI.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

try:  # the collection on the controller
    from ansible_collections.teeproof.kit.plugins.module_utils import ima_log
except ImportError:  # pragma: no cover - in the guest, beside it
    import ima_log  # type: ignore[no-redef]

IMA_LOG = Path("/sys/kernel/security/ima/binary_runtime_measurements")
PCR = 10
BANKS = ("sha1", "sha256")
STATE_FILE = "forwarded.json"
LOCK_FILE = "forward.lock"
READ_SIZE = 1 << 16

# Extends PCR 10 with the given tpm2_pcrextend specs, in order; raises on failure.
Extender = Callable[[Sequence[str]], None]
# Reads PCR 10 of one bank.
PcrReader = Callable[[str], bytes]


class ForwardError(RuntimeError):
    """PCR 10 cannot be kept equal to a prefix of IMA's list (the forwarder stops; attestation then fails)."""


@dataclass(frozen=True)
class Position:
    entries: int = 0
    offset: int = 0


def extend_specs(entries: Sequence[ima_log.ImaEntry], banks: Sequence[str] = BANKS) -> list[str]:
    """tpm2_pcrextend arguments for the entries that IMA extends into PCR 10 (one per entry, every bank)."""
    return [
        f"{PCR}:" + ",".join(f"{bank}={ima_log.event_digest(e, bank).hex()}" for bank in banks)
        for e in entries
        if e.pcr == PCR
    ]


def read_from(log: Path, offset: int) -> bytes:
    """The list's bytes from ``offset`` to its current end (securityfs seeks by whole entries)."""
    data = bytearray()
    with open(log, "rb", buffering=0) as handle:
        handle.seek(offset)
        while chunk := handle.read(READ_SIZE):
            data += chunk
    return bytes(data)


def load_position(state_dir: Path) -> Position:
    """The recorded prefix; none until ``recover`` found it from PCR 10 (or after a failed extend)."""
    try:
        doc = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
        return Position(int(doc["entries"]), int(doc["offset"]))
    except FileNotFoundError:
        raise ForwardError("no forwarded position (the forwarder has not recovered it from PCR 10)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ForwardError(f"{state_dir / STATE_FILE} is malformed ({exc}): restart the forwarder") from None


def save_position(state_dir: Path, position: Position) -> None:
    tmp = state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps({"entries": position.entries, "offset": position.offset}), encoding="utf-8")
    os.replace(tmp, state_dir / STATE_FILE)


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """One forwarder at a time: two would extend the same entry twice."""
    if not state_dir.is_dir():
        raise ForwardError(f"{state_dir} does not exist: the TD's vTPM has not started (kit-vtpm start)")
    with open(state_dir / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sync(state_dir: Path, extend: Extender, log: Path = IMA_LOG) -> int:
    """Extend PCR 10 with every entry the list has beyond the recorded prefix; the number forwarded.

    A failed extend leaves the position unknown: it is removed, so the next sync refuses until ``recover``
    finds the prefix from PCR 10 again."""
    with locked(state_dir):
        position = load_position(state_dir)
        entries, used = ima_log.parse_prefix(read_from(log, position.offset))
        if not entries:
            return 0
        specs = extend_specs(entries)
        try:
            if specs:
                extend(specs)
        except Exception:
            (state_dir / STATE_FILE).unlink(missing_ok=True)
            raise
        save_position(state_dir, Position(position.entries + len(entries), position.offset + used))
        return len(entries)


def recover(state_dir: Path, read_pcr: PcrReader, log: Path = IMA_LOG, bank: str = "sha256") -> Position:
    """Find the prefix of the list that PCR 10 is the replay of, and record it."""
    with locked(state_dir):
        data = read_from(log, 0)
        pcr = read_pcr(bank)
        entries = ima_log.parse_prefix(data)[0]
        count = ima_log.matching_prefix(entries, pcr, bank, PCR)
        if count is None:
            raise ForwardError(
                f"PCR {PCR} ({bank}) is the replay of no prefix of IMA's list: something other than the "
                "forwarder extended it (the verifier will see ima.pcr_mismatch)"
            )
        position = Position(count, ima_log.parse_prefix(data, limit=count)[1])
        save_position(state_dir, position)
        return position


def tpm2_extender(env: dict[str, str] | None = None) -> Extender:
    """Extends through tpm2-tools (one process for a whole batch, in order)."""

    def extend(specs: Sequence[str]) -> None:
        done = subprocess.run(
            ["tpm2_pcrextend", *specs], capture_output=True, text=True, env=env, check=False
        )
        if done.returncode != 0:
            raise ForwardError(f"tpm2_pcrextend failed ({done.returncode}): {done.stderr.strip()[-300:]}")

    return extend


def tpm2_pcr_reader(env: dict[str, str] | None = None) -> PcrReader:
    def read(bank: str) -> bytes:
        done = subprocess.run(
            ["tpm2_pcrread", f"{bank}:{PCR}"], capture_output=True, text=True, env=env, check=False
        )
        if done.returncode != 0:
            raise ForwardError(f"tpm2_pcrread failed ({done.returncode}): {done.stderr.strip()[-300:]}")
        return ima_log.parse_pcrread(done.stdout, bank, PCR)

    return read
