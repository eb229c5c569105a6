#!/usr/bin/env python3
"""What a hostile host does to a live session, from the host side of the session port (Molecule e2e).

  session_attacks.py refusals --record R --vkey V --input IN [--max-bytes N]
  session_attacks.py crash    --record R --vkey V --input IN --kill-cmd 'ssh ... pkill ...'

refusals: an oversized body, garbage, a request sealed to another key, a changed ciphertext, a request
numbered ahead (reorder), a proved request sent again (replay), and an old proof answered to a new request;
then a valid request, proved and checked. Prints {case: how it was refused}. crash: four inputs through the
client (one retry each) while the prover workers are killed as soon as one request is being proved; prints how
many attempts each took and how often the workers were started. Both keep the record's next number.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ansible_collections.teeproof.kit.plugins.module_utils import prover_session as ps
from ansible_collections.teeproof.kit.plugins.module_utils import session_client as sc
from ansible_collections.teeproof.kit.plugins.module_utils import td_claims
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey


def announce_oversized(url: str, length: int) -> tuple[int, dict[str, Any]]:
    """Headers only, announcing a body over the limit: the service must answer without reading it."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=60)
    conn.putrequest("POST", "/requests")
    conn.putheader("Content-Length", str(length))
    conn.endheaders()
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


def prove_one(client: sc.SessionClient, data: bytes) -> tuple[Any, sc.Result]:
    job = sc._Pending("one", ps.canonical_input(data), None)
    client._send(job)
    while True:
        code, doc = client._http("GET", f"/results/{job.seq}")
        if code != 202:
            break
        time.sleep(0.3)
    if code != 200:
        raise RuntimeError(f"request {job.seq}: {code} {doc}")
    request = job.request
    return request, client._accept(job, doc)


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url + "/requests", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def refusals(args: argparse.Namespace) -> dict[str, Any]:
    record = sc.SessionRecord.from_document(json.loads(args.record.read_text()))
    client = sc.SessionClient(record, args.vkey)
    data = args.input.read_bytes()
    url = record.url.rstrip("/")
    out: dict[str, Any] = {}
    key = secrets.token_bytes(32)

    def sealed(seq: int, to: str | None = None) -> bytes:
        return ps.seal_request(to or record.session_key, record.session_id, seq, data, key)

    out["oversized"] = announce_oversized(url, args.max_bytes + 1)
    out["malformed"] = post(url, b"this is not a request")
    other = ps.public_key_text(X25519PrivateKey.generate().public_key())
    out["wrong_key"] = post(url, sealed(record.next_seq, other))
    env = json.loads(sealed(record.next_seq))
    ct = bytearray(base64.b64decode(env["ct"]))
    ct[-1] ^= 1
    env["ct"] = base64.b64encode(bytes(ct)).decode()
    out["changed_ciphertext"] = post(url, td_claims.canonical(env))
    out["reorder"] = post(url, sealed(record.next_seq + 5))
    # a valid request, proved and checked; then the host sends its bytes again
    replay_of, first = prove_one(client, data)
    out["replay"] = post(url, replay_of)
    # an old proof answered to a new request: the receipt names the old number and request
    job = sc._Pending("new", ps.canonical_input(data), None)
    client._send(job)
    code, old = client._http("GET", f"/results/{first.seq}")
    try:
        client._accept(job, old)
        out["old_proof"] = [code, {"error": "ACCEPTED"}]
    except sc.SessionClientError as exc:
        out["old_proof"] = [code, {"error": exc.check, "message": str(exc)}]
    while client._http("GET", f"/results/{job.seq}")[0] == 202:
        time.sleep(0.5)
    _unused, last = prove_one(client, data)
    out["valid_after"] = {"seq": last.seq, "receipt_checked": True}
    out["state"] = client.status()
    record.save(args.record)
    return out


def crash(args: argparse.Namespace) -> dict[str, Any]:
    record = sc.SessionRecord.from_document(json.loads(args.record.read_text()))
    client = sc.SessionClient(record, args.vkey, retries=1)
    data = args.input.read_bytes()
    before = client.status()
    first = max(record.next_seq, int(before["next_seq"]))
    results: list[sc.Result] = []
    errors: list[str] = []

    def run() -> None:
        try:
            results.extend(client.prove_many([(f"c{i}", data, None) for i in range(4)], concurrency=4))
        except Exception as exc:  # reported below
            errors.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=run)
    worker.start()
    killed = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and killed is None:
        code, doc = client._http("GET", f"/results/{first}")
        if code == 202 and doc.get("status") == "proving":
            killed = subprocess.run(
                args.kill_cmd, shell=True, capture_output=True, text=True, check=False
            ).returncode
        time.sleep(0.05)
    worker.join()
    after = client.status()
    record.save(args.record)
    return {
        "killed_rc": killed,
        "errors": errors,
        "attempts": [r.attempts for r in results],
        "proofs": len(results),
        "worker_starts_before": before["worker_starts"],
        "worker_starts_after": after["worker_starts"],
        "failed": after["counts"]["failed"],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("refusals", "crash"))
    parser.add_argument("--record", required=True, type=Path)
    parser.add_argument("--vkey", required=True, type=Path)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--max-bytes", type=int, default=ps.DEFAULT_MAX_REQUEST_BYTES)
    parser.add_argument("--kill-cmd", default="")
    args = parser.parse_args()
    result = refusals(args) if args.mode == "refusals" else crash(args)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
