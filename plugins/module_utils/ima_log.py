"""Parse Linux IMA's binary measurement list and replay it into PCR values.

Format of /sys/kernel/security/ima/binary_runtime_measurements (little endian on x86):
u32 PCR index, 20-byte SHA-1 template digest, u32 template-name length, template name,
u32 template-data length, template data. For ima-ng the data is
u32 len + "<algo>:\\0" + file digest, then u32 len + NUL-terminated path.

Every TPM bank is extended with the bank's hash of the template data; an entry whose SHA-1 template
digest is all zeros is a violation and extends every bank with 0xFF bytes instead.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

BANK_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


class ImaLogError(ValueError):
    """The measurement list is malformed."""


@dataclass(frozen=True)
class ImaEntry:
    pcr: int
    template_digest: bytes
    template: str
    data: bytes

    @property
    def violation(self) -> bool:
        return self.template_digest == bytes(20)

    def file_hash(self) -> tuple[str, str, str]:
        """(algorithm, hex digest, path) of an ima-ng / ima-sig / ima-ngv2 entry."""
        fields = split_fields(self.data)
        if len(fields) < 2:
            raise ImaLogError(f"template {self.template} has {len(fields)} fields")
        algo, sep, digest = fields[0].partition(b":\0")
        if not sep:
            # ima-ngv2 puts "ima:" / "verity:" before the algorithm.
            raise ImaLogError("digest field lacks 'algo:\\0'")
        return algo.decode(), digest.hex(), fields[1].rstrip(b"\0").decode("utf-8", "surrogateescape")


def split_fields(data: bytes) -> list[bytes]:
    fields: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ImaLogError("truncated template field length")
        (length,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + length > len(data):
            raise ImaLogError("truncated template field")
        fields.append(data[pos : pos + length])
        pos += length
    return fields


def parse(log: bytes) -> list[ImaEntry]:
    """Parse a binary measurement list. A trailing partial entry is an error."""
    return parse_prefix(log, strict=True)[0]


def parse_prefix(log: bytes, strict: bool = False, limit: int | None = None) -> tuple[list[ImaEntry], int]:
    """The complete entries at the start of ``log`` (at most ``limit``) and the bytes they take: a trailing
    partial entry (a read that ended inside one) is left for the next read, unless ``strict``. A malformed
    header is an error."""
    entries: list[ImaEntry] = []
    pos = 0
    while pos < len(log) and (limit is None or len(entries) < limit):
        start = pos
        if pos + 28 > len(log):
            if strict:
                raise ImaLogError(f"truncated entry header at byte {pos}")
            break
        pcr, digest, name_len = struct.unpack_from("<I20sI", log, pos)
        if name_len > 255:
            raise ImaLogError(f"bad template name length {name_len} at byte {pos + 28}")
        pos += 28
        if pos + name_len + 4 > len(log):
            if strict:
                raise ImaLogError(f"bad template name length {name_len} at byte {pos}")
            return entries, start
        name = log[pos : pos + name_len].decode("ascii", "replace")
        pos += name_len
        (data_len,) = struct.unpack_from("<I", log, pos)
        pos += 4
        if pos + data_len > len(log):
            if strict:
                raise ImaLogError(f"truncated template data at byte {pos}")
            return entries, start
        entries.append(ImaEntry(pcr, digest, name, log[pos : pos + data_len]))
        pos += data_len
    return entries, pos


def event_digest(entry: ImaEntry, bank: str) -> bytes:
    """What the kernel extends a TPM bank with for this entry (0xFF... for a violation)."""
    size = BANK_SIZES[bank]
    if entry.violation:
        return b"\xff" * size
    if bank == "sha1":
        return entry.template_digest
    return hashlib.new(bank, entry.data).digest()


def replay(entries: list[ImaEntry], bank: str = "sha256", pcr: int = 10) -> bytes:
    """The PCR value the entries produce from a zero PCR."""
    value = bytes(BANK_SIZES[bank])
    for entry in entries:
        if entry.pcr == pcr:
            value = hashlib.new(bank, value + event_digest(entry, bank)).digest()
    return value


def matching_prefix(
    entries: list[ImaEntry], pcr_value: bytes, bank: str = "sha256", pcr: int = 10
) -> int | None:
    """Number of leading entries whose replay equals ``pcr_value`` (read the PCR first, then the log:
    the log may have grown since). None if no prefix matches."""
    value = bytes(BANK_SIZES[bank])
    if value == pcr_value:
        return 0
    for count, entry in enumerate(entries, start=1):
        if entry.pcr == pcr:
            value = hashlib.new(bank, value + event_digest(entry, bank)).digest()
            if value == pcr_value:
                return count
    return None


def parse_pcrread(text: str, bank: str = "sha256", pcr: int = 10) -> bytes:
    """Read one PCR value out of `tpm2_pcrread` output."""
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith(":") and not line[:-1].strip().isdigit():
            current = line[:-1].strip()
            continue
        index, sep, value = line.partition(":")
        if sep and current == bank and index.strip() == str(pcr):
            return bytes.fromhex(value.strip().removeprefix("0x"))
    raise ImaLogError(f"PCR {bank}:{pcr} not found in tpm2_pcrread output")
