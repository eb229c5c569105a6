"""Ask the client's own Keylime verifier whether an agent's last attestation passed recently (no tenant CLI).

The session client calls this before it sends anything to a TD (``VerifierGate``), so that a host that drops
the verifier's revocation, or cuts the verifier's quotes, stops the client within ``bound_s``: it sends only
while the verifier's record says ``Get Quote`` with at least one attestation, and its
``last_successful_attestation`` (the verifier's clock, which is trusted; the host sets neither it nor the
client's) is at most ``bound_s`` old. ``Get Quote (retry)`` (the verifier cannot reach the agent) does not
pass, although Keylime's own ``attestation_status`` calls it PASS.

The record comes from the verifier's REST API over mutual TLS (``GET /v{API}/agents/{uuid}``), with the
verifier's CA, a client certificate of that CA, and the verifier's server certificate pinned: the kit's CA
issues the client certificates too, so the CA alone would not tell the verifier from a client.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.teeproof.kit.plugins.module_utils import keylime_status

API_VERSION = "2.3"  # served by the 7.x verifiers the kit deploys (7.14.3 serves 2.0-2.6)
DEFAULT_TIMEOUT_S = 10.0


class Unattested(Exception):
    """The verifier does not vouch for the agent now: nothing may be sent to the TD."""


@dataclass(frozen=True)
class VerifierAccess:
    """Where the verifier is and how the client proves itself to it (all public but ``key``, a path)."""

    url: str  # https://HOST:PORT
    agent: str
    ca: Path
    cert: Path
    key: Path
    server_cert: Path  # the verifier's own certificate, pinned

    @classmethod
    def from_document(cls, doc: Any) -> VerifierAccess:
        try:
            return cls(
                url=str(doc["url"]),
                agent=str(doc["agent"]),
                ca=Path(doc["ca"]),
                cert=Path(doc["cert"]),
                key=Path(doc["key"]),
                server_cert=Path(doc["server_cert"]),
            )
        except (KeyError, TypeError) as exc:
            raise Unattested(f"the record's verifier access is incomplete ({exc})") from None

    def document(self) -> dict[str, str]:
        return {
            "url": self.url,
            "agent": self.agent,
            "ca": str(self.ca),
            "cert": str(self.cert),
            "key": str(self.key),
            "server_cert": str(self.server_cert),
        }


def fetch_record(access: VerifierAccess, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """The verifier's record of the agent; raises Unattested when it cannot be had from that verifier."""
    if not access.url.startswith("https://"):
        raise Unattested(f"the verifier's address must be https://HOST:PORT, not {access.url}")
    host, _sep, port = access.url[len("https://") :].rstrip("/").rpartition(":")
    try:
        context = ssl.create_default_context(cafile=str(access.ca))
        context.check_hostname = False  # the server certificate is pinned below instead
        context.load_cert_chain(str(access.cert), str(access.key))
        pinned = ssl.PEM_cert_to_DER_cert(access.server_cert.read_text())
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise Unattested(
            f"the verifier's TLS files cannot be used ({exc}); attest the session again"
        ) from None
    conn = http.client.HTTPSConnection(host.strip("[]"), int(port or 443), context=context, timeout=timeout)
    try:
        conn.connect()
        if conn.sock is None or conn.sock.getpeercert(binary_form=True) != pinned:
            raise Unattested(f"{access.url} is not the verifier (its certificate is not the pinned one)")
        conn.request("GET", f"/v{API_VERSION}/agents/{access.agent}")
        response = conn.getresponse()
        body = response.read()
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        raise Unattested(f"the verifier at {access.url} does not answer ({exc})") from None
    finally:
        conn.close()
    if response.status == 404:
        raise Unattested(f"the verifier holds no agent {access.agent}")
    try:
        doc = json.loads(body)
        results = doc["results"]
        if response.status != 200 or not isinstance(results, dict):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise Unattested(f"the verifier answered {response.status} without the agent's record") from None
    return results


@dataclass
class VerifierGate:
    """May the client send now? Asks the verifier only when the last PASS it knows is past ``bound_s``."""

    fetch: Callable[[], Mapping[str, Any]]
    bound_s: float
    clock: Callable[[], float] = field(default=time.time)
    attested_at: int = 0  # the last successful attestation the verifier reported (its clock)
    fetches: int = 0

    def check(self) -> int:
        """The verifier's time of the agent's last PASS, within the bound; raises Unattested."""
        if self.attested_at and self.clock() - self.attested_at <= self.bound_s:
            return self.attested_at
        self.fetches += 1
        status = keylime_status.AgentStatus(True, dict(self.fetch()))
        if status.verdict() != "pass":  # Get Quote, with at least one attestation
            self.attested_at = 0
            raise Unattested(
                f"the verifier's state for the agent is {status.operational_state!r} "
                f"({status.attestation_count} attestations), not Get Quote"
            )
        last = status.last_successful_attestation
        age = self.clock() - last
        if age > self.bound_s:
            self.attested_at = 0
            raise Unattested(
                f"the agent's last attestation passed {age:.0f} s ago, over the bound of {self.bound_s:g} s "
                "(the verifier cannot reach it, or its revocation was dropped)"
            )
        self.attested_at = last
        return last
