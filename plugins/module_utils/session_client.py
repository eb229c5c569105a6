"""The client of session mode: check the attested session, send many sealed inputs, check every receipt.

No Ansible: ``bin/session-client`` runs this, and so does ``roles/prove`` (tasks_from ``session``). The
session record (``session.json`` on the client, nothing secret in it) is what the attestation left: the
quote, the claims it bound (with the session key and the receipt key), the nonce, the reference it was checked
with, and the activation the Keylime payload delivered (session id, expiry). Beside it, the session's
credential (``session.psk.json``, 0600): the PSK that the activation carried to the TD and that every request
and read is sealed with. Whoever holds it can use the session (never read an input or a commit key): it lives
only as long as the session and ``close`` removes it. ``check_attestation`` checks the quote again, with the
same code as ``bin/proof-receipt``, before any input is sealed.

Before every request and result read, the client asks its own verifier (``keylime_verifier.VerifierGate``,
when the record names the verifier) whether the agent's last attestation passed within the bound, and sends
nothing otherwise (``Unattested``). Each call then carries a new lease: the client's signed word (its lease
key, in the credential) that the verifier said PASS, without which the TD wipes the session once the lease
it holds runs out.

Inputs go out in order, numbered 0, 1, 2, ...; at most ``concurrency`` are queued in the TD at once; each
result is accepted only after its receipt (signature by the quoted receipt key; session, number, request
digest, proof, public signals, verification key, input commitment, nonce, claims) and its Groth16 proof check
out. A request the prover crashed on is sent again as a new request (``retries``). A session that is gone
(revoked, expired, rebooted TD, another key at the address) raises ``SessionGone``: attest again.
``prove_all`` does that itself when it is given an ``attest`` hook (``bin/session-client --attest-command``):
the inputs not yet proved go to the new session as new requests, so no input is lost and no proof is accepted
outside an attested session.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from ansible_collections.teeproof.kit.plugins.module_utils import keylime_verifier as kv
from ansible_collections.teeproof.kit.plugins.module_utils import prover_session as ps
from ansible_collections.teeproof.kit.plugins.module_utils import td_claims

RECORD_VERSION = 1
CREDENTIAL_VERSION = 2
GONE_KINDS = ("not_active", "expired", "session", "unauthenticated", "lease_expired")
Unattested = kv.Unattested


class SessionGone(Exception):
    """The attested session cannot be used any more: the caller attests again."""


class SessionClientError(Exception):
    """A request or a result that the client refuses; ``check`` names what failed."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


@dataclass
class SessionRecord:
    url: str
    claims: dict[str, Any]
    nonce: str
    session_id: str
    session_key: str
    expires_at: int
    quote_b64: str = ""
    event_log_b64: str | None = None  # the CC event log the quote came with (RTMR0 checked event by event)
    simulated: bool = False
    next_seq: int = 0
    lease_counter: int = 0  # the last lease sent (0: the activation's)
    verifier: dict[str, str] = field(default_factory=dict)  # keylime_verifier.VerifierAccess, public values
    psk: bytes = field(default=b"", repr=False)  # the credential: never in document(), never printed
    lease_key: bytes = field(default=b"", repr=False)  # the credential's signing half of the lease key

    @property
    def receipt_key(self) -> str:
        return str(self.claims["receipt_key"])

    def document(self) -> dict[str, Any]:
        return {
            "kit_session_record": RECORD_VERSION,
            "url": self.url,
            "claims": self.claims,
            "nonce": self.nonce,
            "session_id": self.session_id,
            "session_key": self.session_key,
            "expires_at": self.expires_at,
            "quote_b64": self.quote_b64,
            "event_log_b64": self.event_log_b64,
            "simulated": self.simulated,
            "next_seq": self.next_seq,
            "lease_counter": self.lease_counter,
            **({"verifier": self.verifier} if self.verifier else {}),
        }

    @classmethod
    def from_document(cls, doc: Any) -> SessionRecord:
        if not isinstance(doc, dict) or doc.get("kit_session_record") != RECORD_VERSION:
            raise SessionClientError("record", f"not a session record (kit_session_record {RECORD_VERSION})")
        try:
            record = cls(
                url=str(doc["url"]),
                claims=dict(doc["claims"]),
                nonce=str(doc["nonce"]),
                session_id=str(doc["session_id"]),
                session_key=str(doc["session_key"]),
                expires_at=int(doc["expires_at"]),
                quote_b64=str(doc.get("quote_b64", "")),
                event_log_b64=None if doc.get("event_log_b64") is None else str(doc["event_log_b64"]),
                simulated=bool(doc.get("simulated", False)),
                next_seq=int(doc.get("next_seq", 0)),
                lease_counter=int(doc.get("lease_counter", 0)),
                verifier={str(k): str(v) for k, v in dict(doc.get("verifier") or {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionClientError("record", f"malformed ({exc})") from None
        claims = td_claims.parse_claims(record.claims)
        if claims.session_key != record.session_key:
            raise SessionClientError(
                "record", "the quoted claims name another session key than the activation"
            )
        return record

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.document(), indent=1, sort_keys=True) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, credential: Path | None = None) -> SessionRecord:
        """The record at ``path`` with its credential (default: ``credential_path(path)``)."""
        try:
            record = cls.from_document(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise SessionClientError("record", f"{path}: {exc}") from None
        record.psk, record.lease_key = read_credential(credential or credential_path(path), record.session_id)
        return record

    def gate(self) -> kv.VerifierGate | None:
        """The verifier check the record names (None when it names no verifier)."""
        if not self.verifier:
            return None
        access = kv.VerifierAccess.from_document(self.verifier)
        bound = float(self.verifier.get("bound_s", 0) or 0)
        if bound <= 0:
            raise SessionClientError("record", "the record's verifier access has no bound_s")
        return kv.VerifierGate(fetch=lambda: kv.fetch_record(access), bound_s=bound)


def credential_path(record: Path) -> Path:
    """Where the credential of the record at ``record`` lives: ``NAME.psk.json`` beside ``NAME.json``."""
    return record.with_name(record.stem + ".psk.json")


def write_credential(path: Path, session_id: str, psk: bytes, lease_key: bytes) -> None:
    """Write the session's PSK and lease key, 0600 from the first byte, replacing any earlier one."""
    ps.check_psk(psk)
    if len(lease_key) != 32:
        raise SessionClientError("credential", "the lease key must be 32 bytes (Ed25519)")
    doc = {
        "kit_session_credential": CREDENTIAL_VERSION,
        "session_id": session_id,
        "psk": base64.b64encode(psk).decode(),
        "lease_key": base64.b64encode(lease_key).decode(),
    }
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(doc) + "\n")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_credential(path: Path, session_id: str) -> tuple[bytes, bytes]:
    """The PSK and lease key of session ``session_id``; refused if others can read the file or it names
    another session."""
    try:
        mode = path.stat().st_mode & 0o777
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise SessionClientError(
            "credential", f"{path} is missing: the session's PSK is only where the attestation wrote it"
        ) from None
    except (OSError, ValueError) as exc:
        raise SessionClientError("credential", f"{path}: {exc}") from None
    if mode & 0o077:
        raise SessionClientError(
            "credential", f"{path} is readable by others (mode {mode:o}); it must be 0600"
        )
    if not isinstance(doc, dict) or doc.get("kit_session_credential") != CREDENTIAL_VERSION:
        raise SessionClientError("credential", f"{path} is not a session credential")
    if doc.get("session_id") != session_id:
        raise SessionClientError("credential", f"{path} belongs to another session than the record")
    try:
        psk = ps.check_psk(ps.b64_or_empty(doc.get("psk")))
    except ps.SessionError:
        raise SessionClientError("credential", f"{path} holds no 32-byte PSK") from None
    lease_key = ps.b64_or_empty(doc.get("lease_key"))
    if len(lease_key) != 32:
        raise SessionClientError("credential", f"{path} holds no 32-byte lease key")
    return psk, lease_key


def check_attestation(
    record: SessionRecord,
    reference: Mapping[str, Any],
    collateral: Path | None,
    allow_simulated: bool,
    sim_root: bytes | None,
    now: int | None = None,
) -> dict[str, Any]:
    """The quote, measurements and binding of the session's claims, as bin/proof-receipt checks them."""
    import base64

    from ansible_collections.teeproof.kit.plugins.module_utils import proof_receipt

    claims = td_claims.parse_claims(record.claims)
    if claims.image_id_sha256 != reference.get("image_id_sha256"):
        raise SessionClientError("claims", "the TD names another image than the reference")
    inputs = proof_receipt.Inputs(
        bundle={},
        reference=dict(reference),
        proof=b"",
        public=b"",
        vkey=b"",
        vkey_path=Path(),
        proof_path=Path(),
        public_path=Path(),
        collateral=collateral,
        allow_simulated=allow_simulated,
        sim_root=sim_root,
    )
    if now is not None:
        inputs.now = now
    try:
        return proof_receipt.check_quote(
            inputs,
            base64.b64decode(record.quote_b64),
            bytes.fromhex(record.nonce),
            record.claims,
            proof_receipt.event_log_from({"event_log_b64": record.event_log_b64}),
        )
    except proof_receipt.ReceiptCheckFailed as exc:
        raise SessionClientError(exc.check, str(exc)) from None


def groth16py_verifier(vkey: Path) -> Callable[[bytes, bytes], bool]:
    import groth16py

    verifier = groth16py.Verifier(groth16py.VerifyingKey.from_snarkjs_file(str(vkey)))

    def check(proof: bytes, public: bytes) -> bool:
        try:
            return bool(verifier.verify_snarkjs(proof.decode(), public.decode()))
        except Exception:  # the extension's own errors: a malformed proof does not verify
            return False

    return check


def _service_timings(doc: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    timings = doc.get("service_ms")
    for name, value in timings.items() if isinstance(timings, dict) else []:
        if isinstance(value, (int, float)):
            out[str(name)] = float(value)
    for name in ("queued_s", "service_s"):
        if isinstance(doc.get(name), (int, float)):
            out[name] = float(doc[name])
    return out


def _refuse_all(_proof: bytes, _public: bytes) -> bool:
    return False


@dataclass
class Result:
    name: str
    seq: int
    proof: bytes
    public: bytes
    receipt: dict[str, Any]
    timings_ms: dict[str, float]
    prover_timings_s: dict[str, float]
    attempts: int = 1
    # the service's own: checks + HPKE decryption (open_ms) and receipt signing (sign_ms), queueing (queued_s)
    service_timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Pending:
    name: str
    input_bytes: bytes
    expected_public: Sequence[str | None] | None
    commit_key: bytes = b""
    request: bytes = b""
    seq: int = -1
    attempts: int = 0
    t: dict[str, float] = field(default_factory=dict)


class SessionClient:
    def __init__(
        self,
        record: SessionRecord,
        vkey: Path | None,
        *,
        verify: Callable[[bytes, bytes], bool] | None = None,
        timeout: float = 600.0,
        poll_s: float = 0.05,
        long_poll_s: float = 20.0,
        retries: int = 1,
        clock: Callable[[], float] = time.time,
        gate: kv.VerifierGate | None = None,
        lease_s: int = ps.MAX_LEASE_SECONDS,
    ) -> None:
        self.record = record
        self.gate = gate  # None: no verifier asked and no lease sent; the TD's lease 0 then runs out
        self.lease_s = lease_s  # what each lease asks for (the TD grants at most the activation's lease_s)
        self._lease_lock = threading.Lock()
        self.vkey = vkey.read_bytes() if vkey is not None else b""
        self.verify = verify or (groth16py_verifier(vkey) if vkey is not None else _refuse_all)
        self.timeout = timeout
        self.poll_s = poll_s  # between retries of a request the service was too busy to queue
        self.long_poll_s = long_poll_s  # how long the service may hold a GET /results/SEQ?wait=S
        self.retries = retries
        self.clock = clock

    # -- transport
    def _http(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(
            self.record.url.rstrip("/") + path,
            data=body,
            method=method,
            headers={**({"Content-Type": "application/json"} if body else {}), **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                doc = json.loads(exc.read() or b"{}")
            except ValueError:
                doc = {}
            return exc.code, doc if isinstance(doc, dict) else {}
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            raise SessionGone(f"the session service at {self.record.url} does not answer ({exc})") from None

    def _lease(self) -> dict[str, str]:
        """Ask the verifier (raises Unattested), then a new lease for the call's headers."""
        if self.gate is None:
            return {}
        attested_at = self.gate.check()
        with self._lease_lock:  # reads and requests may go out from two threads
            self.record.lease_counter += 1
            counter = self.record.lease_counter
        return {
            ps.LEASE_HEADER: ps.sign_lease(
                self.record.lease_key,
                self.record.session_id,
                counter,
                attested_at,
                seconds=self.lease_s,
            )
        }

    def _read(self, method: str, path: str, lease: bool = True) -> tuple[int, dict[str, Any]]:
        """A call with this session's token (and a lease); the answer opened. An answer that does not open is
        refused."""
        token, key = ps.seal_read(self.record.session_key, self.record.session_id, path, self.record.psk)
        body = b"" if method == "POST" else None
        headers = {ps.READ_HEADER: token, **(self._lease() if lease else {})}
        code, doc = self._http(method, path, body, headers=headers)
        if code != 200:  # a refusal: not sealed, so it may be the host's; it can only stop us, never feed us
            return code, doc
        try:
            return ps.open_response(key, doc)
        except ps.SessionError as exc:
            raise SessionClientError("response", f"{method} {path.split('?')[0]}: {exc}") from None

    def _get(self, path: str) -> tuple[int, dict[str, Any]]:
        return self._read("GET", path)

    def status(self, lease: bool = False) -> dict[str, Any]:
        """The service must hold the attested key and the activated session, not expired. With ``lease``, the
        verifier is asked first and the read carries a new lease (it renews the TD's)."""
        if self.clock() >= self.record.expires_at:
            raise SessionGone("the session has expired; attest again")
        code, doc = self._read("GET", "/session", lease=lease)
        if code != 200:
            raise SessionGone(f"GET /session answered {code} ({doc.get('error', 'no reason')})")
        if doc.get("session_key") != self.record.session_key:
            raise SessionGone("the service holds another session key (restarted, rebooted or revoked TD)")
        if not doc.get("active") or doc.get("session_id") != self.record.session_id:
            raise SessionGone("the service has no activated session with this id")
        # A client that lost count of its leases (killed before it saved its record) moves on to the TD's.
        held = doc.get("lease", {}).get("counter") if isinstance(doc.get("lease"), dict) else None
        if isinstance(held, int) and held > self.record.lease_counter:
            self.record.lease_counter = held
        return doc

    def close(self) -> None:
        """End the session: the TD wipes its key and the session. Raises unless the TD says it did."""
        code, doc = self._read("POST", ps.CLOSE_PATH, lease=False)
        if code != 200:
            raise SessionGone(f"POST {ps.CLOSE_PATH} answered {code} ({doc.get('error', 'no reason')})")
        if doc.get("closed") != self.record.session_id:
            raise SessionClientError("close", f"the TD did not confirm the close ({code})")

    # -- one request
    def _send(self, job: _Pending) -> None:
        job.attempts += 1
        job.commit_key = secrets.token_bytes(32)
        t0 = time.perf_counter()
        job.seq = self.record.next_seq
        job.request = ps.seal_request(
            self.record.session_key,
            self.record.session_id,
            job.seq,
            job.input_bytes,
            job.commit_key,
            self.record.psk,
        )
        t1 = time.perf_counter()
        while True:
            code, doc = self._http("POST", "/requests", job.request, headers=self._lease())
            if code != 429:
                break
            time.sleep(self.poll_s)
        t2 = time.perf_counter()
        if code != 202:
            kind = str(doc.get("error", code))
            if kind in GONE_KINDS:
                raise SessionGone(f"request refused: {doc.get('message', kind)}")
            raise SessionClientError(f"refused.{kind}", str(doc.get("message", code)))
        if doc.get("seq") != job.seq:
            raise SessionClientError(
                "refused.seq", f"the service queued number {doc.get('seq')}, not {job.seq}"
            )
        self.record.next_seq = job.seq + 1
        job.t = {"seal_ms": (t1 - t0) * 1e3, "submit_ms": (t2 - t1) * 1e3, "submitted": time.perf_counter()}

    def _accept(self, job: _Pending, doc: dict[str, Any]) -> Result:
        t0 = time.perf_counter()
        proof = str(doc.get("proof", "")).encode()
        public = str(doc.get("public", "")).encode()
        try:
            expected = {
                "session_id": self.record.session_id,
                "seq": job.seq,
                "request_sha256": td_claims.sha256_hex(job.request),
                "proof_sha256": td_claims.sha256_hex(proof),
                "public_sha256": td_claims.sha256_hex(public),
                "vkey_sha256": td_claims.sha256_hex(self.vkey),
                "input_commitment": td_claims.input_commitment(job.commit_key, job.input_bytes),
                "nonce": self.record.nonce,
                "image_id_sha256": self.record.claims["image_id_sha256"],
                "claims_sha512": td_claims.claims_digest(self.record.claims).hex(),
            }
            receipt = ps.check_session_receipt(
                doc.get("receipt"), receipt_key=self.record.receipt_key, expected=expected
            )
        except ps.SessionError as exc:
            raise SessionClientError("receipt", f"request {job.seq} ({job.name}): {exc}") from None
        t1 = time.perf_counter()
        if not self.verify(proof, public):
            raise SessionClientError("proof", f"request {job.seq} ({job.name}): the proof does not verify")
        t2 = time.perf_counter()
        if job.expected_public is not None:
            signals = json.loads(public)
            for index, want in enumerate(job.expected_public):
                if want is not None and (index >= len(signals) or str(signals[index]) != want):
                    raise SessionClientError(
                        "public_signals", f"request {job.seq} ({job.name}): signal {index}"
                    )
        job.commit_key = b""
        timings = {k: round(v, 3) for k, v in job.t.items() if k.endswith("_ms")}
        timings.update(receipt_ms=round((t1 - t0) * 1e3, 3), verify_ms=round((t2 - t1) * 1e3, 3))
        return Result(
            job.name,
            job.seq,
            proof,
            public,
            receipt,
            timings,
            {k: float(v) for k, v in dict(doc.get("timings_s", {})).items()},
            job.attempts,
            _service_timings(doc),
        )

    # -- many
    def prove_many(
        self,
        inputs: Iterable[tuple[str, bytes, Sequence[str | None] | None]],
        *,
        concurrency: int = 2,
        on_result: Callable[[Result], None] | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> list[Result]:
        """Prove every input; results in input order. Raises at the first refused result or a gone session."""
        if concurrency < 1:
            raise SessionClientError("concurrency", "must be at least 1")
        say = on_progress or (lambda _m: None)
        if self.gate is not None:  # the verifier first: it speaks for the TD before the TD's own answers
            self.gate.check()
        state = self.status()
        # A client that lost count (killed before it saved its record) moves on to the service's next number.
        # The host could only lie upwards, which costs refusals, never a proof.
        ahead = state.get("next_seq")
        if isinstance(ahead, int) and ahead > self.record.next_seq:
            say(f"the service's next number is {ahead}, the record's {self.record.next_seq}: moving on")
            self.record.next_seq = ahead
        todo = [_Pending(name, ps.canonical_input(data), expect) for name, data, expect in inputs]
        results: dict[str, Result] = {}
        waiting: list[_Pending] = []
        queue = list(todo)
        deadline = time.monotonic() + self.timeout * max(1, len(todo))
        while queue or waiting:
            while queue and len(waiting) < concurrency:
                job = queue.pop(0)
                self._send(job)
                waiting.append(job)
            # A long poll on the oldest request: the answer comes as soon as its proof is ready. The service
            # proves in order, so the others are usually ready by the time they are the oldest.
            job = waiting[0]
            code, doc = self._get(f"/results/{job.seq}?wait={self.long_poll_s:g}")
            if code == 202:
                if time.monotonic() > deadline:
                    raise SessionClientError("timeout", f"{len(waiting) + len(queue)} request(s) unanswered")
                continue
            waiting.remove(job)
            if code == 200:
                job.t["wait_ms"] = (time.perf_counter() - job.t.pop("submitted")) * 1e3
                result = self._accept(job, doc)
                results[job.name] = result
                say(
                    f"{len(results)}/{len(todo)} {job.name}: request {job.seq} proved and checked "
                    f"({result.timings_ms.get('wait_ms', 0):.0f} ms)"
                )
                if on_result:
                    on_result(result)
            elif code == 410 and doc.get("kind") == "prover_crashed" and job.attempts <= self.retries:
                say(f"{job.name}: request {job.seq} failed ({doc.get('message')}); sending it again")
                queue.insert(0, job)
            elif code == 410:
                raise SessionClientError(
                    f"failed.{doc.get('kind')}", f"request {job.seq} ({job.name}): {doc.get('message')}"
                )
            else:
                self.status()
                raise SessionClientError("result", f"request {job.seq}: GET answered {code}")
        return [results[job.name] for job in todo]


Job: TypeAlias = "tuple[str, bytes, Sequence[str | None] | None]"


def prove_all(
    record: SessionRecord,
    jobs: Sequence[Job],
    *,
    make_client: Callable[[SessionRecord], SessionClient],
    attest: Callable[[], SessionRecord] | None = None,
    max_attests: int = 1,
    concurrency: int = 2,
    on_result: Callable[[SessionRecord, Result], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[list[Result], SessionRecord, int]:
    """Prove every job, in a live session or, when it is gone, in a new one (``attest`` returns its record).

    Results come back in job order with the record they were proved under and the number of attestations
    made here. A session that goes while requests are in flight loses nothing: every job without an accepted
    result is sent again, as a new request under the new session's key. Without ``attest``, or after
    ``max_attests``, ``SessionGone`` is raised as it is.
    """
    names = [job[0] for job in jobs]
    if len(set(names)) != len(names):
        raise SessionClientError("jobs", "every job needs its own name")
    say = on_progress or (lambda _m: None)
    done: dict[str, Result] = {}
    attests = 0
    while len(done) < len(jobs):
        current = record

        def keep(result: Result, current: SessionRecord = current) -> None:
            done[result.name] = result
            if on_result:
                on_result(current, result)

        try:
            make_client(current).prove_many(
                [job for job in jobs if job[0] not in done],
                concurrency=concurrency,
                on_result=keep,
                on_progress=say,
            )
        except SessionGone as exc:
            if attest is None or attests >= max_attests:
                raise
            attests += 1
            say(
                f"session gone ({exc}); attesting again ({attests} of at most {max_attests}), "
                f"{len(jobs) - len(done)} input(s) still to prove"
            )
            record = attest()
            say(f"new session {record.session_id[:8]} attested; going on")
    return [done[name] for name in names], record, attests
