"""The TD's session service (roles/zk_prover/files/kit_session.py) run as the guest runs it, with the tiny
circuit, driven by the standalone client: many proofs, each receipt checked; refusals; a prover crash; a
stop."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import keylime_verifier as kv
from ansible_collections.teeproof.kit.plugins.module_utils import prover_session as ps
from ansible_collections.teeproof.kit.plugins.module_utils import session_client as sc
from ansible_collections.teeproof.kit.plugins.module_utils import zk_prove
from conftest import ROOT, SECRET_A, SECRET_B, valid_input

from tests.unit.playbooks import run_prove

LEASE_KEY, LEASE_PUB = ps.new_lease_key()
LEASE: dict[str, Any] = {"lease_key": LEASE_PUB, "lease_requests": 1000, "lease_s": 3600}

FAKE_QUOTE = """
import json, os
from pathlib import Path
KEY_DIR = Path(os.environ["FAKE_KEY_DIR"])
def live_claims():
    claims = json.loads(Path(os.environ["FAKE_CLAIMS"]).read_text())
    claims["session_key"] = (KEY_DIR / "session_x25519.pub").read_text().strip()
    return claims
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    """One session service in a temporary guest layout; ``record`` is what the attestation would leave."""

    def __init__(self, root: Path, circuit_dir: Path, td: dict[str, Any], env: dict[str, str]) -> None:
        self.root = root
        self.lib = root / "lib"
        self.lib.mkdir()
        for src in (
            ROOT / "roles" / "zk_prover" / "files" / "kit_session.py",
            *(
                ROOT / "plugins" / "module_utils" / n
                for n in ("zk_prove.py", "prover_session.py", "td_claims.py")
            ),
        ):
            shutil.copy2(src, self.lib)
        self.keys = root / "keys"
        self.keys.mkdir(mode=0o700)
        (self.keys / "receipt_ed25519_key").write_bytes(td["receipt_private"])
        (root / "claims.json").write_text(json.dumps(td["claims"]))
        (root / "quote.py").write_text(FAKE_QUOTE)
        self.runtime = root / "run"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.circuit_dir = circuit_dir
        self.log = root / "service.log"
        self.env = {
            **env,
            "FAKE_KEY_DIR": str(self.keys),
            "FAKE_CLAIMS": str(root / "claims.json"),
            "KIT_GUEST_LIB": str(self.lib),
            "PYTHONPATH": "",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        argv = [
            sys.executable,
            str(self.lib / "kit_session.py"),
            "serve",
            "--circuit-dir",
            str(self.circuit_dir),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--key-dir",
            str(self.keys),
            "--runtime-dir",
            str(self.runtime),
            "--quote-command",
            str(self.root / "quote.py"),
            *extra,
        ]
        self.proc = subprocess.Popen(
            argv, stderr=self.log.open("ab"), stdout=subprocess.DEVNULL, env=self.env
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/session", timeout=2):
                    return
            except urllib.error.HTTPError:  # it answers (a read without a token is refused): it is up
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise AssertionError(self.log.read_text())

    def session_key(self) -> str:
        return (self.keys / "session_x25519.pub").read_text().strip()

    def activate_record_only(self, nonce: bytes) -> sc.SessionRecord:
        """A record for this service's address, without an activation (nor a PSK the service knows)."""
        key = self.session_key()
        claims = {**json.loads((self.root / "claims.json").read_text()), "session_key": key}
        return sc.SessionRecord(
            url=self.url,
            claims=claims,
            nonce=nonce.hex(),
            session_id="0" * 32,
            session_key=key,
            expires_at=2**40,
            psk=os.urandom(32),
            lease_key=LEASE_KEY,
        )

    def activate(
        self, nonce: bytes, lifetime: int = 600, lease: dict[str, Any] | None = None
    ) -> sc.SessionRecord:
        act = ps.make_activation(self.session_key(), nonce, lifetime, **(lease or LEASE))
        (self.runtime / "session.json").write_text(json.dumps(act.document()))
        claims = {**json.loads((self.root / "claims.json").read_text()), "session_key": act.session_key}
        return sc.SessionRecord(
            url=self.url,
            claims=claims,
            nonce=nonce.hex(),
            session_id=act.session_id,
            session_key=act.session_key,
            expires_at=act.expires_at,
            psk=act.psk,
            lease_key=LEASE_KEY,
        )

    def workers(self) -> list[int]:
        assert self.proc is not None
        pids: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except FileNotFoundError:  # a thread that ended after the listing has no children left
                continue
        return pids

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def lab(circuit_dir: Path, td: dict[str, Any], env: dict[str, str]) -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="kit-session-"))
    lab = Lab(root, circuit_dir, td, env)
    yield lab
    if lab.proc is not None and lab.proc.poll() is None:
        lab.proc.kill()
    shutil.rmtree(root, ignore_errors=True)


def inputs(n: int) -> list[tuple[str, bytes, list[str | None] | None]]:
    data = json.dumps(valid_input()).encode()
    return [(f"in{i}", data, [str(SECRET_A + SECRET_B * 5 + 6), str(SECRET_A * SECRET_B)]) for i in range(n)]


def test_many_proofs_each_receipt_checked(lab: Lab, circuit_dir: Path, nonce: bytes) -> None:
    lab.start("--workers", "2", "--queue", "2")
    record = lab.activate(nonce)
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY)
    results = client.prove_many(inputs(6), concurrency=3)
    assert [r.seq for r in results] == list(range(6)) and record.next_seq == 6
    assert all(r.receipt["session_id"] == record.session_id for r in results)
    assert all(r.timings_ms["receipt_ms"] >= 0 and r.attempts == 1 for r in results)
    state = client.status()
    assert state["counts"]["proved"] == 6 and state["worker_starts"] == 2  # the provers stayed loaded
    assert str(SECRET_A) not in lab.log.read_text()
    assert not list((lab.runtime / "work").iterdir())  # no witness or input file left


def test_a_proof_that_does_not_verify_is_refused(lab: Lab, circuit_dir: Path, nonce: bytes) -> None:
    lab.start()
    record = lab.activate(nonce)
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY, verify=lambda _p, _q: False)
    with pytest.raises(sc.SessionClientError) as exc:
        client.prove_many(inputs(1))
    assert exc.value.check == "proof"
    wrong = sc.SessionClient(record, circuit_dir / zk_prove.VKEY)
    with pytest.raises(sc.SessionClientError) as exc:
        wrong.prove_many([("x", json.dumps(valid_input()).encode(), ["1"])])
    assert exc.value.check == "public_signals"


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/requests", data=body, method="POST")) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_refusals_before_activation_and_before_reading(lab: Lab, circuit_dir: Path, nonce: bytes) -> None:
    lab.start("--max-request-bytes", "2048")
    env = {"kit_session": 2, "session": "0" * 32, "seq": 0, "ct": "A" * 88}
    code, doc = _post(lab.url, json.dumps(env).encode())
    assert (code, doc["error"]) == (403, "not_active")
    with socket.create_connection(("127.0.0.1", lab.port)) as s:  # announces 1 MB, sends none of it
        s.sendall(b"POST /requests HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert b" 413 " in answer and b"oversized" in answer
    # an activation for another key is refused and consumed
    other = ps.public_key_text(ps.new_session_key()[0].public_key())
    other_activation = ps.make_activation(other, nonce, 60, **LEASE)
    (lab.runtime / "session.json").write_text(json.dumps(other_activation.document()))
    assert (
        sc.SessionClient(lab.activate_record_only(nonce), None)._get("/session")[1]["error"] == "not_active"
    )
    state = sc.SessionClient(lab.activate(nonce), None)._get("/session")[1]
    assert state["active"]  # the second, right activation won; the wrong one left only a log line
    assert "activation refused: activation.session_key" in lab.log.read_text()
    assert _post(lab.url, b"garbage")[1]["error"] == "malformed"


def _get_raw(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers or {})) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_host_can_neither_submit_nor_read(lab: Lab, circuit_dir: Path, nonce: bytes) -> None:
    """The host knows the session key, the session id and the next number (all public), but not the PSK."""
    lab.start("--workers", "1")
    record = lab.activate(nonce)
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY)
    (first,) = client.prove_many(inputs(1))
    before = client.status()["counts"]
    # inject: a request sealed from the public values with a PSK of the host's own
    forged = ps.seal_request(
        record.session_key, record.session_id, record.next_seq, valid_input(), os.urandom(32), os.urandom(32)
    )
    code, doc = _post(lab.url, forged)
    assert (code, doc["error"]) == (400, "decrypt")
    # read: no token, a token of the host's own PSK, the client's token replayed on another path
    token, _key = ps.seal_read(record.session_key, record.session_id, "/results/0", record.psk)
    host_token, _unused = ps.seal_read(record.session_key, record.session_id, "/session", os.urandom(32))
    for path, headers in [
        ("/session", {}),
        ("/results/0", {}),
        ("/session", {ps.READ_HEADER: host_token}),
        ("/results/0?wait=1", {ps.READ_HEADER: token}),
        ("/session", {ps.READ_HEADER: token}),
    ]:
        code, body = _get_raw(lab.url, path, headers)
        assert (code, json.loads(body)["error"]) == (401, "unauthenticated")
        assert b"proof" not in body and first.public not in body and record.session_key.encode() not in body
    # the client's token replayed on its own path: an answer the host cannot open, nothing in clear
    code, body = _get_raw(lab.url, "/results/0", {ps.READ_HEADER: token})
    assert code == 200 and list(json.loads(body)) == ["sealed"]
    assert b"pi_a" not in body and first.public not in body and first.proof not in body
    # the number did not move: the client's next request is proved under it
    (second,) = client.prove_many(inputs(1))
    assert second.seq == first.seq + 1 == 1
    state = client.status()
    assert state["counts"]["unauthenticated"] - before["unauthenticated"] == 5
    assert state["counts"]["refused"] - before["refused"] == 1
    assert state["next_seq"] == 2


def test_the_client_closes_its_session_and_the_td_wipes_it(
    lab: Lab, circuit_dir: Path, nonce: bytes, tmp_path: Path
) -> None:
    lab.start("--workers", "1")
    record = lab.activate(nonce)
    old_key = lab.session_key()
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY)
    client.prove_many(inputs(1))
    # the host cannot close it: no token, or a token of its own PSK
    host_token, _unused = ps.seal_read(record.session_key, record.session_id, ps.CLOSE_PATH, os.urandom(32))
    for headers in ({}, {ps.READ_HEADER: host_token}):
        req = urllib.request.Request(lab.url + ps.CLOSE_PATH, data=b"", method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req)
        assert exc.value.code == 401
    assert client.status()["active"]
    # the client can, through bin/session-client close: the TD wipes it, the credential goes
    path = tmp_path / "session.json"
    record.save(path)
    sc.write_credential(sc.credential_path(path), record.session_id, record.psk, record.lease_key)
    done = _kit_session("close", "--record", str(path), "--no-verifier-check")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True, "closed": record.session_id}
    assert not sc.credential_path(path).exists()
    assert "closed by its client" in lab.log.read_text()
    assert lab.session_key() != old_key  # a new key for the next attestation; the old one is gone
    with pytest.raises(sc.SessionGone, match="not_active"):
        client.prove_many(inputs(1))
    with pytest.raises(sc.SessionGone):
        client.close()  # closing again: nothing to close


def test_prover_crash_fails_the_request_and_the_service_comes_back(
    lab: Lab, circuit_dir: Path, nonce: bytes
) -> None:
    lab.start("--workers", "1")
    record = lab.activate(nonce)
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY, retries=0)
    client.prove_many(inputs(1))
    (worker,) = lab.workers()
    os.kill(worker, signal.SIGSTOP)  # it cannot answer; the request goes to it, then it dies
    job = sc._Pending("crash", ps.canonical_input(json.dumps(valid_input()).encode()), None)
    client._send(job)
    deadline = time.monotonic() + 30
    while client._get(f"/results/{job.seq}")[1].get("status") != "proving" and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(worker, signal.SIGKILL)
    while (answer := client._get(f"/results/{job.seq}"))[0] == 202 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert answer[0] == 410 and answer[1]["kind"] == "prover_crashed"
    assert "signal 9" in answer[1]["message"] and "send the input again" in answer[1]["message"]
    results = client.prove_many(inputs(2))  # a new prover, the same session
    assert len(results) == 2 and client.status()["worker_starts"] == 2
    assert worker not in lab.workers()


def test_stop_loses_the_key_and_the_client_is_told_to_attest_again(
    lab: Lab, circuit_dir: Path, nonce: bytes
) -> None:
    lab.start()
    record = lab.activate(nonce)
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY)
    client.prove_many(inputs(1))
    assert lab.stop() == 0
    assert not (lab.keys / "session_x25519.pub").exists() and not (lab.runtime / "work").exists()
    with pytest.raises(sc.SessionGone, match="does not answer"):
        client.prove_many(inputs(1))
    lab.start()  # a reboot or a restart: another key at the same address
    with pytest.raises(sc.SessionGone, match="not_active"):  # its new key knows no session
        client.prove_many(inputs(1))
    expired = sc.SessionClient(record, circuit_dir / zk_prove.VKEY, clock=lambda: record.expires_at + 1.0)
    with pytest.raises(sc.SessionGone, match="expired"):
        expired.status()


def test_record_round_trip_and_refusals(tmp_path: Path, td: dict[str, Any], nonce: bytes) -> None:
    key = ps.public_key_text(ps.new_session_key()[0].public_key())
    claims = {**td["claims"], "session_key": key}
    record = sc.SessionRecord(
        url="http://127.0.0.1:1",
        claims=claims,
        nonce=nonce.hex(),
        session_id="a" * 32,
        session_key=key,
        expires_at=1,
        next_seq=4,
    )
    record.save(tmp_path / "r.json")
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o600
    back = sc.SessionRecord.from_document(json.loads((tmp_path / "r.json").read_text()))
    assert back == record
    other = ps.public_key_text(ps.new_session_key()[0].public_key())
    with pytest.raises(sc.SessionClientError, match="another session key"):
        sc.SessionRecord.from_document({**record.document(), "session_key": other})
    with pytest.raises(sc.SessionClientError, match="not a session record"):
        sc.SessionRecord.from_document({"kit_session_record": 9})
    with pytest.raises(sc.SessionClientError, match="malformed"):
        sc.SessionRecord.from_document({**record.document(), "expires_at": "later"})
    assert "psk" not in json.dumps(record.document()) and "psk" not in repr(record)


def test_the_credential_is_kept_apart_0600_and_for_its_session_only(
    tmp_path: Path, td: dict[str, Any], nonce: bytes
) -> None:
    key = ps.public_key_text(ps.new_session_key()[0].public_key())
    record = sc.SessionRecord(
        url="http://127.0.0.1:1",
        claims={**td["claims"], "session_key": key},
        nonce=nonce.hex(),
        session_id="a" * 32,
        session_key=key,
        expires_at=1,
        psk=os.urandom(32),
        lease_key=LEASE_KEY,
    )
    path = tmp_path / "session.json"
    record.save(path)
    cred = sc.credential_path(path)
    assert cred == tmp_path / "session.psk.json"
    with pytest.raises(sc.SessionClientError, match="missing"):
        sc.SessionRecord.load(path)
    sc.write_credential(cred, record.session_id, record.psk, record.lease_key)
    assert cred.stat().st_mode & 0o777 == 0o600
    assert record.psk.hex() not in path.read_text()
    loaded = sc.SessionRecord.load(path)
    assert loaded.psk == record.psk and loaded.lease_key == LEASE_KEY
    assert "lease_key" not in json.dumps(loaded.document()) and LEASE_KEY.hex() not in repr(loaded)
    cred.chmod(0o644)
    with pytest.raises(sc.SessionClientError, match="readable by others"):
        sc.SessionRecord.load(path)
    sc.write_credential(cred, "b" * 32, record.psk, record.lease_key)
    with pytest.raises(sc.SessionClientError, match="another session"):
        sc.SessionRecord.load(path)
    for junk in ("{", "[]", json.dumps({"kit_session_credential": 1, "session_id": "a" * 32, "psk": "AAAA"})):
        cred.write_text(junk)
        cred.chmod(0o600)
        with pytest.raises(sc.SessionClientError, match="credential"):
            sc.SessionRecord.load(path)
    with pytest.raises(ps.SessionError, match="psk"):
        sc.write_credential(cred, record.session_id, b"short", record.lease_key)
    with pytest.raises(sc.SessionClientError, match="lease key"):
        sc.write_credential(cred, record.session_id, record.psk, b"short")
    doc = {"kit_session_credential": sc.CREDENTIAL_VERSION, "session_id": "a" * 32}
    cred.write_text(json.dumps({**doc, "psk": base64.b64encode(record.psk).decode(), "lease_key": "AAAA"}))
    with pytest.raises(sc.SessionClientError, match="no 32-byte lease key"):
        sc.SessionRecord.load(path)


def test_a_session_gone_mid_run_is_attested_again_and_nothing_is_lost(
    lab: Lab, circuit_dir: Path, nonce: bytes
) -> None:
    lab.start("--workers", "1")
    first = lab.activate(nonce)
    seen: list[tuple[str, str]] = []

    def keep(record: sc.SessionRecord, result: sc.Result) -> None:
        seen.append((result.name, record.session_id))
        if len(seen) == 1:  # the TD reboots after the first proof: the key and the session are gone
            assert lab.stop() == 0
            lab.start("--workers", "1")

    attests: list[sc.SessionRecord] = []

    def attest() -> sc.SessionRecord:
        attests.append(lab.activate(os.urandom(32)))
        return attests[-1]

    results, record, count = sc.prove_all(
        first,
        inputs(4),
        make_client=lambda r: sc.SessionClient(r, circuit_dir / zk_prove.VKEY),
        attest=attest,
        concurrency=1,
        on_result=keep,
    )
    assert count == 1 and record is attests[0] and record.session_id != first.session_id
    assert [r.name for r in results] == ["in0", "in1", "in2", "in3"]
    assert seen[0] == ("in0", first.session_id)
    assert {sid for _n, sid in seen[1:]} == {record.session_id}  # the rest only under the new session
    assert all(r.receipt["session_id"] == sid for r, (_n, sid) in zip(results, sorted(seen), strict=True))


def test_without_an_attest_hook_or_past_its_limit_a_gone_session_is_raised(
    lab: Lab, circuit_dir: Path, nonce: bytes
) -> None:
    lab.start()
    record = lab.activate(nonce)
    assert lab.stop() == 0

    def client(r: sc.SessionRecord) -> sc.SessionClient:
        return sc.SessionClient(r, circuit_dir / zk_prove.VKEY)

    with pytest.raises(sc.SessionGone):
        sc.prove_all(record, inputs(1), make_client=client)
    calls: list[int] = []

    def attest_to_nothing() -> sc.SessionRecord:  # attests, but the service is gone again at once
        calls.append(1)
        return record

    with pytest.raises(sc.SessionGone):
        sc.prove_all(record, inputs(1), make_client=client, attest=attest_to_nothing, max_attests=2)
    assert len(calls) == 2
    with pytest.raises(sc.SessionClientError, match="own name"):
        sc.prove_all(record, [*inputs(1), *inputs(1)], make_client=client)


def _kit_session(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bin" / "session-client"), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_refuses_when_attesting_again_fails(
    lab: Lab, circuit_dir: Path, nonce: bytes, tmp_path: Path
) -> None:
    lab.start()
    record = lab.activate(nonce)
    assert lab.stop() == 0  # revoked: the service and its key are gone
    path = tmp_path / "session.json"
    record.save(path)
    sc.write_credential(sc.credential_path(path), record.session_id, record.psk, record.lease_key)
    (tmp_path / "in.json").write_text(json.dumps(valid_input()))
    common = ["prove", "--record", str(path), "--vkey", str(circuit_dir / zk_prove.VKEY)]
    common += ["--input", str(tmp_path / "in.json"), "--out", str(tmp_path / "out")]
    done = _kit_session(*common)  # a record that names no verifier: nothing is sent without saying so
    assert done.returncode == 2 and "--no-verifier-check" in done.stderr
    common.append("--no-verifier-check")
    done = _kit_session(*common)
    assert done.returncode == 20 and "SESSION GONE" in done.stderr
    done = _kit_session(*common, "--attest-command", "false")
    assert done.returncode == 22 and "the attest command failed (exit 1)" in done.stderr
    done = _kit_session(*common, "--attest-command", "true")
    assert done.returncode == 22 and "left no new session record" in done.stderr
    assert not list((tmp_path / "out").iterdir())  # no proof, and no input went anywhere
    assert str(SECRET_A) not in done.stderr + done.stdout
    done = _kit_session(*common, "--concurrency", "0")
    assert done.returncode == 2 and "--concurrency must be at least 1" in done.stderr


def test_a_long_poll_answers_when_the_proof_is_ready(lab: Lab, circuit_dir: Path, nonce: bytes) -> None:
    lab.start("--workers", "1")
    record = lab.activate(nonce)
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY)
    job = sc._Pending("lp", ps.canonical_input(json.dumps(valid_input()).encode()), None)
    client._send(job)
    code, doc = client._get(f"/results/{job.seq}?wait=30")
    assert code == 200 and doc["status"] == "done"  # one call, no polling
    assert set(doc["service_ms"]) == {"open_ms", "sign_ms"}
    result = client._accept(job, doc)
    assert result.service_timings["open_ms"] >= 0 and "queued_s" in result.service_timings
    assert client._get("/results/99?wait=5")[0] == 404  # unknown: answered at once
    for bad in ("/results/0?wait=x", "/results/0?wait=-1", "/results/0?wait=1&x=2", "/results/-1"):
        assert client._get(bad)[0] == 404


def _pass_now() -> dict[str, Any]:
    return {"operational_state": 3, "attestation_count": 9, "last_successful_attestation": int(time.time())}


def test_the_service_wipes_the_session_when_its_lease_runs_out_on_its_clock(
    lab: Lab, circuit_dir: Path, nonce: bytes
) -> None:
    """No call comes (the host dropped the verifier's revocation, the client stopped sending): the TD's own
    watcher ends the session when the lease is lease_s old, and publishes a new key."""
    lab.start("--workers", "1")
    record = lab.activate(nonce, lease={**LEASE, "lease_s": 2})
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY)
    assert client.status()["lease"]["counter"] == 0
    deadline = time.monotonic() + 30
    while lab.session_key() == record.session_key and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lab.session_key() != record.session_key
    with pytest.raises(sc.SessionGone):
        client.status()
    assert "ended, its lease ran out (by time)" in lab.log.read_text()


def test_the_clients_leases_keep_the_session_and_none_ends_it_by_count(
    lab: Lab, circuit_dir: Path, nonce: bytes
) -> None:
    lab.start("--workers", "1")
    lease = {**LEASE, "lease_requests": 1}
    record = lab.activate(nonce, lease=lease)
    gate = kv.VerifierGate(fetch=_pass_now, bound_s=10)
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY, gate=gate)
    assert len(client.prove_many(inputs(3), concurrency=1)) == 3  # each request brought a new lease
    state = client.status()
    assert state["lease"]["counter"] == record.lease_counter >= 3 and state["next_seq"] == 3
    # a client that asks no verifier sends no lease: the one held serves one request, then the TD wipes it
    bare = sc.SessionClient(record, circuit_dir / zk_prove.VKEY)
    assert len(bare.prove_many(inputs(1), concurrency=1)) == 1
    with pytest.raises(sc.SessionGone, match="lease ran out"):
        bare.prove_many(inputs(1), concurrency=1)
    assert lab.session_key() != record.session_key
    assert "ended, its lease ran out (by count)" in lab.log.read_text()


def test_nothing_is_sent_when_the_verifier_does_not_vouch(lab: Lab, circuit_dir: Path, nonce: bytes) -> None:
    lab.start("--workers", "1")
    record = lab.activate(nonce)
    stale = {**_pass_now(), "last_successful_attestation": int(time.time()) - 60}
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY, gate=kv.VerifierGate(lambda: stale, 10))
    with pytest.raises(sc.Unattested, match="over the bound"):
        client.prove_many(inputs(1))
    assert client.status()["next_seq"] == 0 and client.status()["counts"]["accepted"] == 0


def test_a_job_is_refused_while_the_clients_session_is_live_or_closes_it_when_told(
    lab: Lab, nonce: bytes, tmp_path: Path
) -> None:
    """A job restarts the TD's agent, which would end the session: prove.yml asks the TD (sealed with the
    session's credential) and refuses, or with prove_end_session=true closes the session first."""
    lab.start("--workers", "1")
    record = lab.activate(nonce)
    session_dir = tmp_path / "prove" / "session"
    session_dir.mkdir(parents=True)
    record.save(session_dir / "session.json")
    sc.write_credential(session_dir / "session.psk.json", record.session_id, record.psk, record.lease_key)
    vkey = tmp_path / "build" / "zk" / "semaphore20" / "verification_key.json"
    vkey.parent.mkdir(parents=True)
    vkey.write_text("{}")
    (tmp_path / "in.json").write_text(json.dumps(valid_input()))
    job = {"prove_input_file": str(tmp_path / "in.json"), "prove_session_dir": str(session_dir)}
    done = run_prove(tmp_path, job)
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0 and "a session of this client is live on the TD" in out, out[-3000:]
    assert lab.session_key() == record.session_key  # untouched
    done = run_prove(tmp_path, {**job, "prove_end_session": True})
    out = " ".join((done.stdout + done.stderr).split())
    assert "a session of this client is live" not in out, out[-3000:]
    assert lab.session_key() != record.session_key and "closed by its client" in lab.log.read_text()
    assert not (session_dir / "session.psk.json").exists()
    assert str(SECRET_A) not in out


def test_the_service_wipes_a_session_whose_lifetime_is_over(
    lab: Lab, circuit_dir: Path, nonce: bytes
) -> None:
    lab.start("--workers", "1")
    record = lab.activate(nonce, lifetime=2)
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY)
    assert client.status()["active"]
    deadline = time.monotonic() + 30
    while lab.session_key() == record.session_key and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lab.session_key() != record.session_key
    assert "ended, its lifetime is over" in lab.log.read_text()


def test_the_verifier_is_asked_before_the_td(lab: Lab, circuit_dir: Path, nonce: bytes) -> None:
    """A revoked TD's service is gone, and its verifier says FAIL: the client names the verifier's verdict."""
    lab.start("--workers", "1")
    record = lab.activate(nonce)
    assert lab.stop() == 0
    failed = {**_pass_now(), "operational_state": 9}
    client = sc.SessionClient(record, circuit_dir / zk_prove.VKEY, gate=kv.VerifierGate(lambda: failed, 10))
    with pytest.raises(sc.Unattested, match="not Get Quote"):
        client.prove_many(inputs(1))
    with pytest.raises(sc.SessionGone):
        sc.SessionClient(record, circuit_dir / zk_prove.VKEY).prove_many(inputs(1))
