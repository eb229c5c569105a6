"""The claims a TD binds into its quote: each claim changed, truncated or missing is refused by name."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import td_claims


def test_report_data_is_sha512_of_nonce_and_claims_digest(td: dict[str, Any], nonce: bytes) -> None:
    canon = json.dumps(td["claims"], sort_keys=True, separators=(",", ":")).encode()
    want = hashlib.sha512(nonce + hashlib.sha512(canon).digest()).digest()
    assert td_claims.report_data(nonce, td["claims"]) == want


def test_canonical_form_ignores_key_order_but_not_values(td: dict[str, Any]) -> None:
    reordered = dict(reversed(list(td["claims"].items())))
    assert td_claims.claims_digest(reordered) == td_claims.claims_digest(td["claims"])
    changed = copy.deepcopy(td["claims"])
    changed["agent"]["uuid"] = "0" * 64
    assert td_claims.claims_digest(changed) != td_claims.claims_digest(td["claims"])


def test_short_nonce_refused(td: dict[str, Any]) -> None:
    with pytest.raises(td_claims.ClaimsError) as err:
        td_claims.report_data(b"short", td["claims"])
    assert err.value.field == "nonce"


def test_valid_claims_parse(td: dict[str, Any]) -> None:
    claims = td_claims.parse_claims(td["claims"])
    assert claims.document() == td["claims"]
    assert td_claims.parse_claims(json.dumps(td["claims"])) == claims


def _mutations(claims: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(field, how, mutated document): every claim changed, truncated and missing."""
    out: list[tuple[str, str, Any]] = []
    for top in ("ssh_host_key", "receipt_key", "image_id_sha256", "agent_ca_sha256"):
        for how, value in (
            ("changed", "x" + claims[top][1:]),
            ("truncated", claims[top][:-5]),
            ("missing", None),
        ):
            doc = copy.deepcopy(claims)
            if value is None:
                del doc[top]
            else:
                doc[top] = value
            out.append((top, how, doc))
    for name in ("uuid", "ek_tpm", "aik_tpm", "mtls_cert"):
        bad = {"uuid": "bad id/with slash", "ek_tpm": "not base64!", "aik_tpm": "@@@", "mtls_cert": "PEM?"}[
            name
        ]
        truncated = claims["agent"][name][: len(claims["agent"][name]) // 2 + 1]
        for how, value in (("changed", bad), ("truncated", truncated), ("missing", None)):
            doc = copy.deepcopy(claims)
            if value is None:
                del doc["agent"][name]
            else:
                doc["agent"][name] = value
            out.append((f"agent.{name}", how, doc))
    return out


def test_each_claim_changed_truncated_or_missing_is_refused_by_name(td: dict[str, Any]) -> None:
    seen = 0
    for field, how, doc in _mutations(td["claims"]):
        if field in ("agent.uuid",) and how == "truncated":
            continue  # a shorter id is still a valid id; the registrar comparison catches it
        if field in ("agent.ek_tpm", "agent.aik_tpm") and how == "truncated":
            # truncated base64 may still decode: then the registrar comparison refuses it (below)
            continue
        with pytest.raises(td_claims.ClaimsError) as err:
            td_claims.parse_claims(doc)
        assert err.value.field == field, (field, how, str(err.value))
        seen += 1
    assert seen == 21


@pytest.mark.parametrize(
    "doc, field",
    [
        ("not json", "claims"),
        ("[]", "claims"),
        ('{"kit_claims": 1}', "kit_claims"),
        ('{"kit_claims": 3}', "kit_claims"),
        ('{"kit_claims": 2}', "agent"),
        ('{"kit_claims": 2, "agent": {}, "extra": 1}', "claims"),
        ('{"kit_claims": 2, "agent": {"uuid": "a", "nk": "x"}}', "agent"),
        ("x" * 70000, "claims"),
    ],
)
def test_malformed_claims_document_is_a_clear_error(doc: str, field: str) -> None:
    with pytest.raises(td_claims.ClaimsError) as err:
        td_claims.parse_claims(doc)
    assert err.value.field == field


def test_registrar_record_of_the_same_agent_passes(td: dict[str, Any]) -> None:
    claims = td_claims.parse_claims(td["claims"])
    record = {k: td["claims"]["agent"][k] for k in ("aik_tpm", "ek_tpm")}
    record["mtls_cert"] = td["cert_pem"].replace("\n", "\r\n")  # the registrar's own whitespace
    td_claims.compare_registrar(claims, record)


@pytest.mark.parametrize("name", ["aik_tpm", "ek_tpm", "mtls_cert"])
def test_relay_registrar_record_differs_by_name(
    td: dict[str, Any], other_td: dict[str, Any], name: str
) -> None:
    claims = td_claims.parse_claims(td["claims"])
    record = {k: td["claims"]["agent"][k] for k in ("aik_tpm", "ek_tpm", "mtls_cert")}
    record[name] = {"aik_tpm": other_td["aik"], "ek_tpm": other_td["aik"], "mtls_cert": other_td["cert_pem"]}[
        name
    ]
    with pytest.raises(td_claims.ClaimsError) as err:
        td_claims.compare_registrar(claims, record)
    assert err.value.field == f"agent.{name}"
    missing = dict(record)
    del missing[name]
    with pytest.raises(td_claims.ClaimsError) as err:
        td_claims.compare_registrar(claims, missing)
    assert err.value.field == f"agent.{name}"


def test_truncated_ek_or_ak_is_refused_against_the_registrar(td: dict[str, Any]) -> None:
    for name in ("ek_tpm", "aik_tpm"):
        doc = copy.deepcopy(td["claims"])
        doc["agent"][name] = doc["agent"][name][:-4]
        claims = td_claims.parse_claims(doc)
        record = {**{k: td["claims"]["agent"][k] for k in ("aik_tpm", "ek_tpm")}, "mtls_cert": td["cert_pem"]}
        with pytest.raises(td_claims.ClaimsError) as err:
            td_claims.compare_registrar(claims, record)
        assert err.value.field == f"agent.{name}"


def test_agent_port_answered_by_another_agent_is_refused(
    td: dict[str, Any], other_td: dict[str, Any]
) -> None:
    claims = td_claims.parse_claims(td["claims"])
    td_claims.compare_peer_certificate(claims, td["cert_der"])
    with pytest.raises(td_claims.ClaimsError) as err:
        td_claims.compare_peer_certificate(claims, other_td["cert_der"])
    assert err.value.field == "agent.mtls_cert" and "another machine" in str(err.value)


def test_known_hosts_line_pins_the_key_without_its_comment(td: dict[str, Any]) -> None:
    key = td["claims"]["ssh_host_key"]
    assert (
        td_claims.known_hosts_line("127.0.0.1", 12222, key + " td-ssh-host") == f"[127.0.0.1]:12222 {key}\n"
    )
    assert td_claims.known_hosts_line("td.example", 22, key) == f"td.example {key}\n"


def test_the_verifiers_ca_passes_in_any_line_wrapping(td: dict[str, Any]) -> None:
    claims = td_claims.parse_claims(td["claims"])
    td_claims.compare_agent_ca(claims, td["ca_pem"])
    td_claims.compare_agent_ca(claims, td["ca_pem"].replace("\n", "\r\n") + "\n\n")


def test_an_agent_that_trusts_another_ca_is_refused(td: dict[str, Any], other_td: dict[str, Any]) -> None:
    """The host swapped the CA it installed over SSH before the quote: the claimed digest names another CA."""
    claims = td_claims.parse_claims(td["claims"])
    hosts_ca = other_td["cert_pem"]
    with pytest.raises(td_claims.ClaimsError) as err:
        td_claims.compare_agent_ca(claims, hosts_ca)
    assert err.value.field == "agent_ca_sha256"
    assert "was replaced" in str(err.value)
    with pytest.raises(td_claims.ClaimsError, match="not one PEM certificate"):
        td_claims.compare_agent_ca(claims, "no certificate")


def test_the_same_ek_is_compared_as_bytes(td: dict[str, Any]) -> None:
    ek = td["claims"]["agent"]["ek_tpm"]
    assert td_claims.same_ek(ek, ek)
    assert not td_claims.same_ek(ek, td["claims"]["agent"]["aik_tpm"])
    assert not td_claims.same_ek(ek, None)
    assert not td_claims.same_ek(ek, "not base64!")
