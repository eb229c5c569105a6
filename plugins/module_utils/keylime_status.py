"""Read the Keylime tenant's ``regstatus`` and ``cvstatus`` answers (7.x), in one place.

The tenant CLI prints its findings as log lines: ``Agent Info from <service> (...):`` followed by a JSON
object ``{"<uuid>": {...}}``, or a line saying that the agent does not exist there. This parses that text
into a record and a verdict, and drops the one field of the verifier's record that is a secret share: ``v``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INFO = re.compile(r"Agent Info from [^\n]*:\n")
LIST = re.compile(r"Agent list from [^\n]* retrieved: \n")
ABSENT = re.compile(r"does not exist on|does not have agent|Agent [0-9A-Za-z._-]+ does not exist")
FAILED_STATES = ("Invalid Quote", "Failed", "Tenant Quote Failed", "Terminated")
PASS_STATE = "Get Quote"
# The verifier's REST API gives the state as its code (keylime.common.states); the tenant prints its name.
STATE_NAMES = {
    0: "Registered",
    1: "Start",
    2: "Saved",
    3: "Get Quote",
    4: "Get Quote (retry)",
    5: "Provide V",
    6: "Provide V (retry)",
    7: "Failed",
    8: "Terminated",
    9: "Invalid Quote",
    10: "Tenant Quote Failed",
}
SECRET_FIELDS = ("v",)


class StatusError(ValueError):
    """The tenant's answer is neither a record nor an absence."""


@dataclass(frozen=True)
class AgentStatus:
    exists: bool
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def operational_state(self) -> str:
        state = self.record.get("operational_state", "")
        return STATE_NAMES.get(state, str(state)) if isinstance(state, int) else str(state)

    def _count(self, name: str) -> int:
        """A whole-number field of the record; 0 when it is missing or not a number."""
        try:
            return int(self.record.get(name, 0))
        except (TypeError, ValueError):
            return 0

    @property
    def attestation_count(self) -> int:
        return self._count("attestation_count")

    @property
    def last_successful_attestation(self) -> int:
        """When the verifier last accepted a quote (its clock, unix seconds; 0: never or not given)."""
        return self._count("last_successful_attestation")

    def verdict(self) -> str:
        """The verifier's verdict: ``pass`` (a quote was accepted), ``fail``, ``pending`` or ``absent``."""
        if not self.exists:
            return "absent"
        if self.operational_state in FAILED_STATES:
            return "fail"
        if self.operational_state == PASS_STATE and self.attestation_count > 0:
            return "pass"
        return "pending"


def public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in SECRET_FIELDS}


def parse_list(text: str) -> list[str]:
    """The agent ids in the tenant's ``-c cvlist`` answer (``{"uuids": [...]}``, flat or per verifier)."""
    matches = list(LIST.finditer(text))
    if not matches:
        if "does not have any agents" in text:
            return []
        tail = " ".join(text.strip().splitlines()[-3:])[-400:]
        raise StatusError(f"unexpected tenant answer (no agent list): {tail}")
    try:
        data, _unused = json.JSONDecoder().raw_decode(text, matches[-1].end())
    except ValueError as exc:
        raise StatusError(f"the tenant's agent list is not JSON: {exc}") from None
    uuids = data.get("uuids") if isinstance(data, dict) else None
    if not isinstance(uuids, list):
        raise StatusError("the tenant's agent list has no uuids")
    flat = [u for entry in uuids for u in (entry if isinstance(entry, list) else [entry])]
    return sorted({str(u) for u in flat})


def parse(text: str, uuid: str) -> AgentStatus:
    """The tenant's stdout+stderr for ``-c regstatus|cvstatus -u uuid``."""
    matches = list(INFO.finditer(text))
    if matches:
        try:
            data, _unused = json.JSONDecoder().raw_decode(text, matches[-1].end())
        except ValueError as exc:
            raise StatusError(f"the tenant's agent info is not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get(uuid), dict):
            raise StatusError(f"the tenant's agent info does not describe agent {uuid}")
        return AgentStatus(True, public_record(data[uuid]))
    if ABSENT.search(text):
        return AgentStatus(False)
    tail = " ".join(text.strip().splitlines()[-3:])[-400:]
    raise StatusError(f"unexpected tenant answer (neither agent info nor 'does not exist'): {tail}")
