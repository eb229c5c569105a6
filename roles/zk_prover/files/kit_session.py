#!/usr/bin/env python3
"""kit-session: the TD's resident prover service (session mode: attest once, prove many).

  kit-session serve --circuit-dir DIR [--bind ADDR] [--port N] [--workers N] [--queue N] ...
  kit-session worker --circuit-dir DIR          (started by serve: one resident prover process)

``serve`` draws the session key (X25519, in this process's memory only) and writes its public half where
``tdx-get-quote`` puts it into the TD's claims. It serves nothing until the Keylime payload, released only
after the verifier's PASS, leaves the activation (``session.json``) in its runtime folder. Then, over the
untrusted host's network (HTTP; every request HPKE-sealed to the session key with the client's PSK, every
read carrying a read token and answered sealed to it; prover_session.py):

  POST /requests        a sealed request -> 202 {"seq"} once it decrypted and is queued; refusals say why
  GET  /results/SEQ     202 while queued or proving; 200 {proof, public, receipt}; 410 {error} if it failed;
                        ?wait=S holds the answer until the request is finished (at most S, at most 30 s)
  GET  /session         the session's state (key, session id, next number, expiry, queue, counts)
  POST /close           the client ends the session: its key and everything queued are wiped, and a new
                        key is drawn and published for the next attestation

A GET without a read token that opens under the session's key and PSK gets 401 and nothing else; with one,
the answer (its status and document) travels as {"sealed": ...} that only that reader can open.

Every call of the client may carry a newer lease (the Kit-Session-Lease header: the client's signed word that
its verifier said PASS). When the lease held runs out (its count of requests, or its seconds on the TD's
monotonic clock, which a watcher checks every second), the session and its key are wiped, as on close.

Each worker keeps the circuit and its proving key loaded (groth16py) and proves one request at a time; the
input reaches it through a pipe, its witness files live in a private tmpfs folder removed after each job. A
worker that dies fails its request with a clear error and is started again; the session goes on. Requests
are checked (size, form, session, expiry, number) before anything is decrypted, and nothing of a request's
content is ever logged. Stopping the service (the revocation action does) loses the key; the unit's stop
removes the public half and the runtime folder.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GUEST_LIB = Path(os.environ.get("KIT_GUEST_LIB", "/usr/local/lib/tee-proof-kit"))
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(GUEST_LIB))

import prover_session as ps  # noqa: E402
import td_claims  # noqa: E402

SESSION_KEY_FILE = "session_x25519.pub"
# How long a GET /results/SEQ?wait=S is held at most (a long poll: it answers once the proof is ready).
MAX_WAIT_S = 30.0
RESULT_PATH = re.compile(r"/results/([0-9]{1,15})(?:\?wait=([0-9]{1,3}(?:\.[0-9]{1,3})?))?")
ACTIVATION_FILE = "session.json"


def log(message: str) -> None:
    """Stage lines only (numbers, kinds, timings): never a request's content."""
    sys.stderr.write(f"kit-session: {message}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------- the worker


def worker_main(circuit_dir: Path, work_root: Path) -> int:
    """One resident prover: load once, then one JSON line in, one JSON line out, until stdin closes."""
    import zk_prove

    circuit = zk_prove.Circuit.load(circuit_dir)
    key = zk_prove.load_groth16py_key(circuit.proving_key)
    tools = zk_prove.Toolchain.discover()
    out = sys.stdout
    out.write(json.dumps({"ready": True, "circuit": circuit.name}) + "\n")
    out.flush()
    for line in sys.stdin:
        job = json.loads(line)
        folder = Path(tempfile.mkdtemp(prefix="job-", dir=work_root))
        try:
            result = zk_prove.prove_job(
                circuit_dir,
                json.dumps(job["input"]),
                folder,
                backend="groth16py",
                verifier="groth16py",
                tools=tools,
                circuit=circuit,
                loaded_key=key,
            )
            reply: dict[str, Any] = {
                "ok": True,
                "proof": (folder / "proof.json").read_text(),
                "public": (folder / "public.json").read_text(),
                "timings_s": result.timings,
            }
        except zk_prove.ZkProveError as exc:
            reply = {"ok": False, "kind": type(exc).__name__, "message": str(exc)}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            del job
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


class Worker:
    """The service's handle on one worker process; started again when it dies."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.started = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
        )
        self.started += 1
        assert self.proc.stdout is not None
        hello = self.proc.stdout.readline()
        if not hello:
            code = self.proc.wait()
            raise RuntimeError(f"the prover worker exited ({code}) before it was ready")

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.proc.wait()
            self.proc = None
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            return {
                "ok": False,
                "kind": "prover_crashed",
                "message": f"the prover crashed ({how}) on this request; nothing was proved for it. "
                "The service started a new prover: send the input again as a new request.",
            }
        return dict(json.loads(line))

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------- the service


@dataclass
class Job:
    request: ps.Request
    status: str = "queued"  # queued -> proving -> done | failed
    reply: dict[str, Any] = field(default_factory=dict)
    received: float = field(default_factory=time.monotonic)
    open_ms: float = 0.0  # the checks and the HPKE decryption of the request


class Service:
    def __init__(
        self,
        *,
        state: ps.SessionState,
        key_dir: Path,
        runtime_dir: Path,
        vkey: bytes,
        receipt_key: bytes,
        claims: Callable[[], dict[str, Any]],
        workers: Sequence[Worker],
        queue_size: int = 8,
        results_kept: int = 64,
    ) -> None:
        self.state = state
        self.key_dir = key_dir
        self.runtime_dir = runtime_dir
        self.vkey = vkey
        self.receipt_key = receipt_key
        self.claims = claims
        self.workers = list(workers)
        self.queue: queue.Queue[int] = queue.Queue(maxsize=queue_size)
        self.results_kept = results_kept
        self.jobs: OrderedDict[int, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.finished = threading.Condition(self.lock)  # notified whenever a job is done or failed
        self.counts = {"accepted": 0, "proved": 0, "failed": 0, "refused": 0, "unauthenticated": 0}
        self.ended: dict[str, str] = {}  # session id -> why it ended (close, lease, expiry)

    # -- key and activation
    def publish_key(self) -> None:
        path = self.key_dir / SESSION_KEY_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.state.session_key + "\n")
        os.replace(tmp, path)

    def unpublish_key(self) -> None:
        (self.key_dir / SESSION_KEY_FILE).unlink(missing_ok=True)

    def _activate_from_file(self) -> None:
        path = self.runtime_dir / ACTIVATION_FILE
        if self.state.activation is not None or not path.exists():
            return
        try:
            activation = self.state.activate(path.read_bytes())
            log(f"session {activation.session_id[:8]} activated, expires at {activation.expires_at}")
        except (ps.SessionError, OSError) as exc:
            log(f"activation refused: {exc}")
        finally:
            path.unlink(missing_ok=True)

    # -- requests
    def submit(self, raw: bytes, lease: str | None = None) -> int:
        with self.lock:
            self._activate_from_file()
            try:
                checked = self.state.check_header(raw, lease)
                if self.queue.full():
                    raise ps.SessionRefused(
                        "busy", f"{self.queue.maxsize} requests are queued; send it again later"
                    )
                t = time.perf_counter()
                request = self.state.open(raw, lease, checked)
                open_ms = (time.perf_counter() - t) * 1e3
            except ps.SessionRefused as exc:
                self.counts["refused"] += 1
                log(f"refused: {exc.kind}")
                self._end_if_lease_ran_out(exc)
                raise
            self.jobs[request.seq] = Job(request, open_ms=round(open_ms, 3))
            self.counts["accepted"] += 1
            self._evict()
            self.queue.put_nowait(request.seq)
            return int(request.seq)

    def read_key(self, path: str, token: str | None, lease: str | None = None) -> bytes:
        """The key to seal the answer to a read with; raises SessionRefused for anyone but the client."""
        with self.lock:
            self._activate_from_file()
            return self.read_key_locked(path, token, lease)

    def read_key_locked(self, path: str, token: str | None, lease: str | None = None) -> bytes:
        try:
            return bytes(self.state.open_read(path, token, lease))
        except ps.SessionRefused as exc:
            self.counts["unauthenticated" if exc.kind == "unauthenticated" else "refused"] += 1
            log(f"read refused: {exc.kind}")
            self._end_if_lease_ran_out(exc)
            raise

    def close(self, token: str | None, lease: str | None = None) -> tuple[bytes, str]:
        """The client ends its session: wipe the key, the session and the queue; publish a fresh key."""
        with self.lock:
            self._activate_from_file()
            key = self.read_key_locked(ps.CLOSE_PATH, token, lease)
            return key, self._end("closed by its client")

    def _end_if_lease_ran_out(self, exc: ps.SessionRefused) -> None:
        if exc.kind == "lease_expired" and self.state.activation is not None:
            self._end(f"its lease ran out (by {self.state.lease_ran_out() or 'count'})")

    def _end(self, why: str) -> str:
        """Wipe the session, its key and its queue, and publish a fresh key (the lock is held)."""
        act = self.state.activation
        ended = act.session_id if act is not None else ""
        self.state.wipe()
        self.state = ps.SessionState.fresh(self.state.max_request_bytes)
        while not self.queue.empty():
            self.queue.get_nowait()
        self.jobs.clear()
        self.publish_key()
        if ended:
            self.ended[ended] = why
        log(f"session {ended[:8]} ended, {why}: key and session wiped, a new key published")
        return ended

    def watch(self, stop: threading.Event, every_s: float = 1.0) -> None:
        """End the session when its lease runs out on the TD's clock, or its lifetime does, with no call."""
        while not stop.wait(every_s):
            with self.lock:
                if self.state.activation is None:
                    continue
                if why := self.state.lease_ran_out():
                    if why == "time":
                        self._end("its lease ran out (by time)")
                elif self.state.expired():
                    self._end("its lifetime is over")

    def _evict(self) -> None:
        finished = [s for s, j in self.jobs.items() if j.status in ("done", "failed")]
        while len(self.jobs) > self.results_kept and finished:
            del self.jobs[finished.pop(0)]

    def result(self, seq: int, wait_s: float = 0.0) -> tuple[int, dict[str, Any]]:
        """The state of request ``seq``; with ``wait_s``, held until it is finished or that time passed."""
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
        with self.lock:
            while (job := self.jobs.get(seq)) is not None and job.status in ("queued", "proving"):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.finished.wait(left)
            if job is None:
                return 404, {
                    "error": "unknown",
                    "message": f"no request {seq} in this session (or long gone)",
                }
            if job.status in ("queued", "proving"):
                return 202, {"seq": seq, "status": job.status}
            if job.status == "failed":
                return 410, {"seq": seq, "status": "failed", **job.reply}
            return 200, {"seq": seq, "status": "done", **job.reply}

    def public_state(self) -> dict[str, Any]:
        with self.lock:
            self._activate_from_file()
            act = self.state.activation
            return {
                "kit_session": ps.SESSION_VERSION,
                "session_key": self.state.session_key,
                "active": act is not None,
                "session_id": act.session_id if act else None,
                "expires_at": act.expires_at if act else None,
                "next_seq": self.state.next_seq,
                "queued": self.queue.qsize(),
                "workers": len(self.workers),
                "worker_starts": sum(w.started for w in self.workers),
                "counts": dict(self.counts),
                "lease": {
                    "counter": self.state.lease_counter,
                    "used": self.state.lease_used,
                    "requests": self.state.lease_requests if act else None,
                    "seconds_left": round(
                        self.state.lease_s - (self.state.monotonic() - self.state.lease_at), 1
                    )
                    if act
                    else None,
                },
            }

    # -- proving
    def work(self, worker: Worker, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                seq = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            with self.lock:
                job = self.jobs.get(seq)
                if job is None:  # the session was closed while it waited
                    continue
                job.status = "proving"
            request = job.request
            started = time.monotonic()
            reply = worker.run({"input": request.input_data})
            signing = time.perf_counter()
            reply = self._sign(request, reply) if reply.get("ok") else reply
            sign_ms = (time.perf_counter() - signing) * 1e3
            with self.lock:
                job.reply = {k: v for k, v in reply.items() if k != "ok"}
                job.reply["service_s"] = round(time.monotonic() - started, 4)
                job.reply["queued_s"] = round(started - job.received, 4)
                job.reply["service_ms"] = {"open_ms": job.open_ms, "sign_ms": round(sign_ms, 3)}
                job.status = "done" if reply.get("ok") else "failed"
                self.finished.notify_all()
                self.counts["proved" if reply.get("ok") else "failed"] += 1
                # the input and its commit key are needed no longer
                job.request = ps.Request(request.seq, {}, b"", b"", request.request_sha256)
            del request
            log(
                f"request {seq}: {job.status} in {job.reply['service_s']:.3f} s"
                + (f" ({reply.get('kind')})" if not reply.get("ok") else "")
            )

    def _sign(self, request: ps.Request, reply: dict[str, Any]) -> dict[str, Any]:
        activation = self.state.activation
        if activation is None:
            return {"ok": False, "kind": "revoked", "message": "the session ended while proving"}
        try:
            body = ps.receipt_body(
                request=request,
                proof=reply["proof"].encode(),
                public=reply["public"].encode(),
                vkey=self.vkey,
                activation=activation,
                claims=self.claims(),
            )
            reply["receipt"] = td_claims.sign_receipt(body, self.receipt_key)
        except Exception as exc:  # the claims cannot be made, the key is unreadable: no unsigned proof leaves
            return {"ok": False, "kind": "receipt", "message": f"the receipt could not be signed ({exc})"}
        return reply


class Handler(BaseHTTPRequestHandler):
    server_version = "kit-session"
    sys_version = ""
    service: Service
    max_bytes: int

    def log_message(self, format: str, *args: Any) -> None:
        return  # the access log would be the only place a request's path or size is logged: none

    def _send(self, status: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        match = RESULT_PATH.fullmatch(self.path)
        if self.path != "/session" and not match:
            self._send(404, {"error": "not_found", "message": "GET /session or /results/SEQ[?wait=SECONDS]"})
            return
        try:
            key = self.service.read_key(
                self.path, self.headers.get(ps.READ_HEADER), self.headers.get(ps.LEASE_HEADER)
            )
        except ps.SessionRefused as exc:
            self._send(exc.status, {"error": exc.kind, "message": str(exc)})
            return
        if match:
            status, doc = self.service.result(int(match[1]), float(match[2] or 0))
        else:
            status, doc = 200, self.service.public_state()
        self._send(200, ps.seal_response(key, status, doc))

    def do_POST(self) -> None:
        if self.path == ps.CLOSE_PATH:
            try:
                key, closed = self.service.close(
                    self.headers.get(ps.READ_HEADER), self.headers.get(ps.LEASE_HEADER)
                )
            except ps.SessionRefused as exc:
                self._send(exc.status, {"error": exc.kind, "message": str(exc)})
                return
            self._send(200, ps.seal_response(key, 200, {"closed": closed}))
            return
        if self.path != "/requests":
            self._send(404, {"error": "not_found", "message": "POST /requests or /close"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, {"error": "malformed", "message": "Content-Length is required"})
            return
        if length > self.max_bytes or length < 0:
            self.close_connection = True  # the body is never read
            self._send(
                413, {"error": "oversized", "message": f"{length} bytes, the limit is {self.max_bytes}"}
            )
            return
        raw = self.rfile.read(length)
        try:
            seq = self.service.submit(raw, self.headers.get(ps.LEASE_HEADER))
        except ps.SessionRefused as exc:
            self._send(exc.status, {"error": exc.kind, "message": str(exc)})
            return
        self._send(202, {"seq": seq, "status": "queued"})


def _quote_command(path: Path) -> Any:
    loader = importlib.machinery.SourceFileLoader("tdx_get_quote", str(path))
    spec = importlib.util.spec_from_loader("tdx_get_quote", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def serve(args: argparse.Namespace) -> int:
    quote = _quote_command(args.quote_command)
    key_dir = Path(args.key_dir)
    runtime = Path(args.runtime_dir)
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    work_root = runtime / "work"
    work_root.mkdir(mode=0o700, exist_ok=True)
    state = ps.SessionState.fresh(args.max_request_bytes)
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "worker",
        "--circuit-dir",
        str(args.circuit_dir),
        "--work-dir",
        str(work_root),
    ]
    workers = [Worker(argv) for _unused in range(args.workers)]
    for w in workers:
        w.start()
    service = Service(
        state=state,
        key_dir=key_dir,
        runtime_dir=runtime,
        vkey=(Path(args.circuit_dir) / "verification_key.json").read_bytes(),
        receipt_key=(key_dir / "receipt_ed25519_key").read_bytes(),
        claims=lambda: dict(quote.live_claims()),
        workers=workers,
        queue_size=args.queue,
    )
    service.publish_key()
    handler = type("BoundHandler", (Handler,), {"service": service, "max_bytes": args.max_request_bytes})
    httpd = ThreadingHTTPServer((args.bind, args.port), handler)
    stop = threading.Event()
    threads = [threading.Thread(target=service.work, args=(w, stop), daemon=True) for w in workers]
    threads.append(threading.Thread(target=service.watch, args=(stop,), daemon=True))
    for t in threads:
        t.start()

    def finish(_sig: int, _frame: Any) -> None:
        stop.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    log(f"serving on {args.bind}:{args.port} with {len(workers)} resident prover(s); waiting for activation")
    try:
        httpd.serve_forever()
    finally:
        state.wipe()
        service.unpublish_key()
        for w in workers:
            w.stop()
        shutil.rmtree(work_root, ignore_errors=True)
        log("stopped; the session key is gone")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit-session")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--circuit-dir", required=True, type=Path)
    s.add_argument("--bind", default="0.0.0.0")
    s.add_argument("--port", type=int, default=9010)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--queue", type=int, default=8)
    s.add_argument("--max-request-bytes", type=int, default=ps.DEFAULT_MAX_REQUEST_BYTES)
    s.add_argument("--key-dir", default="/run/kit-td")
    s.add_argument("--runtime-dir", default="/run/kit-session")
    s.add_argument("--quote-command", type=Path, default=Path("/usr/local/bin/tdx-get-quote"))
    w = sub.add_parser("worker")
    w.add_argument("--circuit-dir", required=True, type=Path)
    w.add_argument("--work-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "worker":
        return worker_main(args.circuit_dir, args.work_dir)
    for name in ("workers", "queue", "max_request_bytes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
