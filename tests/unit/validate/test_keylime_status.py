"""The tenant's regstatus/cvstatus answers, parsed in one place (the verifier's share V never returned)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils.keylime_status import (
    AgentStatus,
    StatusError,
    parse,
    parse_list,
)

UUID = "4baeed586ff8fbe5a808128ae76709bab8855730eb373e593d0260c53de4d391"
PREFIX = "2026-12-01 09:38:31.204 - keylime.tenant - INFO - "


def _info(service: str, record: dict[str, object]) -> str:
    return (
        f"{PREFIX}Using API version 2.6 for verifier communication\n"
        f"{PREFIX}Agent Info from {service} (127.0.0.1:8881):\n{json.dumps({UUID: record})}\n"
    )


def test_registrar_record_is_returned() -> None:
    record = {
        "aik_tpm": "AAE=",
        "ek_tpm": "AAI=",
        "mtls_cert": "PEM",
        "regcount": 1,
        "operational_state": "Registered",
    }
    status = parse(_info("Registrar", record), UUID)
    assert status.exists and status.record["aik_tpm"] == "AAE="


def test_verifier_share_v_is_dropped() -> None:
    status = parse(
        _info("Verifier", {"operational_state": "Get Quote", "v": "+AOjGzIv...", "attestation_count": 3}),
        UUID,
    )
    assert "v" not in status.record and status.verdict() == "pass"


@pytest.mark.parametrize(
    ("state", "count", "verdict"),
    [
        ("Get Quote", 0, "pending"),
        ("Get Quote", 1, "pass"),
        ("Start", 0, "pending"),
        ("Invalid Quote", 2, "fail"),
        ("Failed", 0, "fail"),
        ("Tenant Quote Failed", 0, "fail"),
    ],
)
def test_verdicts(state: str, count: int, verdict: str) -> None:
    assert (
        parse(_info("Verifier", {"operational_state": state, "attestation_count": count}), UUID).verdict()
        == verdict
    )


@pytest.mark.parametrize(
    "text",
    [
        f"{PREFIX}Agent {UUID} does not exist on the registrar. Please register the agent.",
        f"{PREFIX}Verifier at 127.0.0.1 with Port 8881 does not have agent {UUID}.",
    ],
)
def test_absence(text: str) -> None:
    assert parse(text, UUID) == AgentStatus(False)
    assert parse(text, UUID).verdict() == "absent"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Traceback (most recent call last):\n  ConnectionRefusedError", "unexpected tenant answer"),
        (f"{PREFIX}Agent Info from Verifier (x):\n{{not json", "not JSON"),
        (
            f"{PREFIX}Agent Info from Verifier (x):\n" + json.dumps({"other": {}}),
            f"does not describe agent {UUID}",
        ),
    ],
)
def test_anything_else_is_an_error(text: str, needle: str) -> None:
    with pytest.raises(StatusError, match=needle):
        parse(text, UUID)


# keylime 7.14 tenant.py do_cvlist logs "Agent list from %s retrieved: \n%s" with json.dumps(results)
CVLIST = (
    "INFO - keylime.tenant - From verifier 127.0.0.1 port 8881 retrieved: \"{'code': 200}\"\n"
    "INFO - keylime.tenant - Agent list from verifier 127.0.0.1:8881 retrieved: \n"
    '{"uuids": [["d432fbb3-d2f1-4a97-9ef7-75bd81c00000", "a1b2"]]}\n'
)


@pytest.mark.parametrize(
    ("text", "uuids"),
    [
        (CVLIST, ["a1b2", "d432fbb3-d2f1-4a97-9ef7-75bd81c00000"]),
        ("Agent list from v retrieved: \n" + '{"uuids": ["x", "x"]}', ["x"]),
        ("INFO - verifier 127.0.0.1:8881 does not have any agents", []),
    ],
)
def test_agent_list(text: str, uuids: list[str]) -> None:
    assert parse_list(text) == uuids


@pytest.mark.parametrize(
    "text",
    ["connection refused", "Agent list from v retrieved: \nnot json", "Agent list from v retrieved: \n{}"],
)
def test_agent_list_errors(text: str) -> None:
    with pytest.raises(StatusError):
        parse_list(text)


def test_the_verifiers_api_gives_state_codes_read_as_the_tenants_names() -> None:
    """GET /agents/UUID gives operational_state as keylime.common.states' code; the tenant prints its name."""
    assert AgentStatus(True, {"operational_state": 3, "attestation_count": 2}).verdict() == "pass"
    assert AgentStatus(True, {"operational_state": 3, "attestation_count": 0}).verdict() == "pending"
    assert AgentStatus(True, {"operational_state": 4, "attestation_count": 2}).verdict() == "pending"
    for failed in (7, 8, 9, 10):
        assert AgentStatus(True, {"operational_state": failed}).verdict() == "fail"
    assert AgentStatus(True, {"operational_state": 4}).operational_state == "Get Quote (retry)"
    assert AgentStatus(True, {"operational_state": 99}).operational_state == "99"
    assert AgentStatus(True, {"last_successful_attestation": "x"}).last_successful_attestation == 0
