#!/usr/bin/env python3
"""What a hostile host does to a live session, from the host side of the session port (Molecule e2e).

  session_attacks.py refusals --record R --vkey V --input IN [--max-bytes N]
  session_attacks.py crash    --record R --vkey V --input IN --kill-cmd 'ssh ... pkill ...'
  session_attacks.py close    --record R --vkey V --input IN --guest-cmd 'ssh ... root@guest' --out DIR

refusals: an oversized body, garbage, a request the host seals from the public values (session key, session
id, next number) with a PSK of its own (inject), reads without the client's token (GET /session and
/results), a request sealed to another key, a changed ciphertext, a request numbered ahead (reorder), a proved
request sent again (replay), and an old proof answered to a new request; then a valid request, proved and
checked through a relay that records every byte the host carries (a capture on the forwarded port), which is
searched for the proof and the public signals. Prints {case: how it was refused}. crash: four inputs through
the client (one retry each) while the prover workers are killed as soon as one request is being proved; prints
how many attempts each took and how often the workers were started. Both keep the record's next number.
The record's credential (its PSK) is read from beside it, as bin/session-client reads it.
close: a session of its own on the TD's current key (the activation written by root in the TD, where the
Keylime payload leaves it), then the client's close; prints whether the TD wiped it (a new key published, the
session not active) and what bin/session-client answers the next request with.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import http.client
import json
import secrets
import shlex
import socket
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
        code, doc = client._get(f"/results/{job.seq}")
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


def get(url: str, path: str) -> tuple[int, dict[str, Any]]:
    """A read as the host can make it: no token."""
    try:
        with urllib.request.urlopen(url + path, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class Capture:
    """A TCP relay in front of the session port that keeps every byte it carries (what the host sees)."""

    def __init__(self, target: str) -> None:
        parsed = urllib.parse.urlsplit(target)
        self.to = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.seen = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _addr = self.listener.accept()
                upstream = socket.create_connection(self.to)
                for a, b in ((conn, upstream), (upstream, conn)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                with self.lock:
                    self.seen += data
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def found_in(seen: bytes, result: sc.Result) -> list[str]:
    """What of the client's proof and public signals the captured bytes show in clear."""
    proof = json.loads(result.proof)
    values = [str(v) for key in ("pi_a", "pi_c") for v in proof[key][:2]]
    values += [str(v) for v in json.loads(result.public) if len(str(v)) > 6]
    return [v[:12] + "..." for v in values if v.encode() in seen]


def refusals(args: argparse.Namespace) -> dict[str, Any]:
    record = sc.SessionRecord.load(args.record)
    client = sc.SessionClient(record, args.vkey, gate=record.gate())  # asks the verifier, sends leases
    data = args.input.read_bytes()
    url = record.url.rstrip("/")
    out: dict[str, Any] = {}
    key = secrets.token_bytes(32)

    def sealed(seq: int, to: str | None = None, psk: bytes | None = None) -> bytes:
        return ps.seal_request(
            to or record.session_key,
            record.session_id,
            seq,
            data,
            key,
            psk if psk is not None else record.psk,
        )

    out["oversized"] = announce_oversized(url, args.max_bytes + 1)
    out["malformed"] = post(url, b"this is not a request")
    next_before = client.status()["next_seq"]
    out["inject"] = post(url, sealed(record.next_seq, psk=secrets.token_bytes(32)))
    out["inject_next_seq"] = [next_before, client.status()["next_seq"]]
    out["read_session"] = get(url, "/session")
    out["read_results"] = get(url, f"/results/{max(record.next_seq - 1, 0)}")
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
    code, old = client._get(f"/results/{first.seq}")
    try:
        client._accept(job, old)
        out["old_proof"] = [code, {"error": "ACCEPTED"}]
    except sc.SessionClientError as exc:
        out["old_proof"] = [code, {"error": exc.check, "message": str(exc)}]
    while client._get(f"/results/{job.seq}")[0] == 202:
        time.sleep(0.5)
    capture = Capture(record.url)
    try:
        captured = sc.SessionClient(
            dataclasses.replace(record, url=capture.url), args.vkey, gate=record.gate()
        )
        _unused, last = prove_one(captured, data)
        record.next_seq, record.lease_counter = captured.record.next_seq, captured.record.lease_counter
    finally:
        capture.close()
    out["valid_after"] = {"seq": last.seq, "receipt_checked": True}
    out["capture"] = {"bytes": len(capture.seen), "in_clear": found_in(bytes(capture.seen), last)}
    out["state"] = client.status()
    record.save(args.record)
    return out


def crash(args: argparse.Namespace) -> dict[str, Any]:
    record = sc.SessionRecord.load(args.record)
    client = sc.SessionClient(record, args.vkey, retries=1, gate=record.gate())
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
        code, doc = client._get(f"/results/{first}")
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


def close(args: argparse.Namespace) -> dict[str, Any]:
    main_record = sc.SessionRecord.load(args.record)

    def in_guest(command: str, stdin: str = "") -> str:
        argv = [*shlex.split(args.guest_cmd), command]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True).stdout.strip()

    key = in_guest("cat /run/kit-td/session_x25519.pub")
    lease_key, lease_public = ps.new_lease_key()
    act = ps.make_activation(
        key, secrets.token_bytes(32), 600, lease_key=lease_public, lease_requests=8, lease_s=300
    )
    in_guest("umask 077; cat > /run/kit-session/session.json", json.dumps(act.document()))
    record = sc.SessionRecord(
        url=main_record.url,
        claims={**main_record.claims, "session_key": key},
        nonce=act.nonce,
        session_id=act.session_id,
        session_key=key,
        expires_at=act.expires_at,
        psk=act.psk,
        lease_key=lease_key,
    )
    client = sc.SessionClient(record, args.vkey)
    active = bool(client.status()["active"])
    client.close()
    after = in_guest("cat /run/kit-td/session_x25519.pub")
    args.out.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = args.out / "closed.json"
    record.save(path)
    sc.write_credential(sc.credential_path(path), record.session_id, record.psk, record.lease_key)
    argv = [sys.executable, str(Path(__file__).resolve().parents[3] / "bin" / "session-client"), "prove"]
    argv += ["--record", str(path), "--no-verifier-check", "--vkey", str(args.vkey)]
    argv += ["--input", str(args.input), "--out", str(args.out / "proofs")]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return {
        "active_before": active,
        "key_changed": after != key and len(after) == 44,
        "next_rc": done.returncode,
        "next_said": [line for line in done.stderr.splitlines() if "SESSION GONE" in line][-1:],
        "proofs": sorted(p.name for p in (args.out / "proofs").glob("*")),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("refusals", "crash", "close"))
    parser.add_argument("--record", required=True, type=Path)
    parser.add_argument("--vkey", required=True, type=Path)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--max-bytes", type=int, default=ps.DEFAULT_MAX_REQUEST_BYTES)
    parser.add_argument("--kill-cmd", default="")
    parser.add_argument("--guest-cmd", default="")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = {"refusals": refusals, "crash": crash, "close": close}[args.mode](args)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
