#!/usr/bin/env python3
"""bin/kit bench session: attest once, prove many - what a session costs, and the report with its charts.

  bin/kit bench session [--lab] [--repeat 5] [--out benchmarks/results]

One run, on Semaphore depth 20 (6,431 constraints), on this machine:
  1. provers, median of --repeat, on the same input: the snarkjs CLI (``groth16 fullprove``: WASM witness and
     proof, the baseline), snarkjs kept loaded in one process (the other resident prover the registries
     offer), groth16py as a process per proof (``zk-prove prove``), and groth16py with its key loaded once;
     with the profile the issue asked for (key import, a fresh import per call, CPU/wall, RAYON_NUM_THREADS,
     groth16py's own key);
  2. sessions of N = 1, 10 and 50 proofs through the real session service on this host (kit_session.py of
     roles/zk_prover in the guest's file layout, HPKE requests over HTTP, every receipt and proof checked),
     one worker, one request at a time; then N = 50 with one worker per core (throughput);
  3. with --lab, the same N = 1, 10 and 50 in the lab: each a fresh attestation of the lab guest and a
     session through ``prove.yml -e prove_mode=session``, one request at a time (TCG guest, SIMULATED TDX).
     Stages 1 and 2 want a quiet machine, so the lab is brought up (``playbooks/site.yml``, what ``bin/kit
     site`` runs) only after them, and left running (``bin/kit stop`` stops it); a lab guest already running
     is named in the report, as it takes CPU time from the host's figures;
  4. the amortised overhead (end to end - proving) / proving at every N, next to the published study's
     numbers, and the report: OUT/session.json and OUT/session.png.
Tests never assert on these times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from ansible_collections.teeproof.kit.plugins.module_utils import keylime_verifier as kv  # noqa: E402
from ansible_collections.teeproof.kit.plugins.module_utils import prover_session as ps  # noqa: E402
from ansible_collections.teeproof.kit.plugins.module_utils import session_client as sc  # noqa: E402
from ansible_collections.teeproof.kit.plugins.module_utils import zk_prove  # noqa: E402
from ansible_collections.teeproof.kit.plugins.module_utils.zk_artifacts import build_dev_artifacts  # noqa: E402

# The published study (Azure TDX VM, 16 vCPUs), Semaphore: one proof with its attestation.
# The bench's sessions: one lease (the activation's) for every request; the lease cost is measured apart.
LEASE_KEY, LEASE_PUB = ps.new_lease_key()
LEASE: dict[str, Any] = {"lease_key": LEASE_PUB, "lease_requests": 100_000, "lease_s": 86_400}
PUBLISHED_MS = {"keylime": 696, "tdx": 1048, "proving": 1136, "total": 2926}
PUBLISHED_ATTESTATION_S = (PUBLISHED_MS["keylime"] + PUBLISHED_MS["tdx"]) / 1e3
GOAL_OVERHEAD = 0.05
NODE_MODULES = ROOT / "tools" / "zk" / "node_modules"
SNARKJS = NODE_MODULES / "snarkjs" / "build" / "cli.cjs"
INCLUDES = [
    NODE_MODULES / p
    for p in (
        "@semaphore-protocol/circuits/src",
        "circomlib/circuits",
        "@zk-kit/binary-merkle-root.circom/src",
    )
]
MAIN = ROOT / "circuits" / "semaphore" / "semaphore20.circom"
N_SERIES = (1, 10, 50)
T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[bench session {time.monotonic() - T0:7.1f}s] {message}", flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model}, {os.cpu_count()} cores, {platform.machine()}"


def lab_guest_running() -> bool:
    """Whether the lab's guest (KIT_LAB, else site) answers on its SSH port (kit_lab.yml, the one home of the
    labs' ports)."""
    import yaml

    labs = ROOT / "inventories/local/group_vars/all/kit_lab.yml"
    table = yaml.safe_load(labs.read_text())["kit_lab_port_table"]
    name = os.environ.get("KIT_LAB") or "site"
    if name not in table:
        sys.exit(f"bench session: no lab named {name} (KIT_LAB): the labs are {', '.join(table)}")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", int(table[name]["guest_ssh"]))) == 0


def run_lab_playbook(playbook: str, log: Path, failed: str, extra: dict[str, Any] | None = None) -> float:
    """playbooks/PLAYBOOK on the lab inventory, its output to log: its wall time, or exit with its tail."""
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(ROOT / "inventories" / "lab"),
        str(ROOT / "playbooks" / playbook),
    ]
    if extra is not None:
        argv += ["-e", json.dumps(extra)]
    t = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise SystemExit(f"{failed} (playbooks/{playbook} failed): {log}\n{tail}")
    return wall


def make_inputs(folder: Path, n: int, tag: str) -> list[tuple[Path, Path]]:
    """n fresh Semaphore inputs (each its own identity) with the public signals their proofs must carry."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        inp, exp = folder / f"{tag}-{i}-input.json", folder / f"{tag}-{i}-expected-public.json"
        seed = f"bench-session-{tag}-{i}-{os.urandom(8).hex()}"
        argv = ["node", str(ROOT / "tools/zk/semaphore-input.js"), "--out", str(inp), "--seed", seed]
        subprocess.run([*argv, "--expect-out", str(exp)], check=True, capture_output=True)
        pairs.append((inp, exp))
    return pairs


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


# ------------------------------------------------------------------------------------------- 1. provers

PROFILE_SNIPPET = """
import json, sys, time, groth16py
pk = groth16py.import_zkey(sys.argv[1])[0]
runs = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); c = time.process_time()
    groth16py.prove_wtns(pk, sys.argv[2])
    runs.append((time.perf_counter() - t, time.process_time() - c))
print(json.dumps(runs))
"""


def provers(circuit: Path, pairs: list[tuple[Path, Path]], work: Path, repeat: int) -> dict[str, Any]:
    import groth16py

    node = shutil.which("node") or "node"
    zkey, wasm = circuit / zk_prove.ZKEY, circuit / zk_prove.WASM
    wtns = work / "w.wtns"
    subprocess.run(
        [str(circuit / "circuit-witness"), str(pairs[0][0]), str(wtns)], check=True, capture_output=True
    )
    out: dict[str, Any] = {}

    def record(name: str, runs: list[float], what: str) -> None:
        out[name] = {"median_s": median(runs), "runs_s": [round(r, 4) for r in runs], "what": what}
        say(f"  {name}: {median(runs):.3f} s ({what})")

    record(
        "snarkjs_cli",
        [
            timed(
                [
                    node,
                    str(SNARKJS),
                    "groth16",
                    "fullprove",
                    str(pairs[i % len(pairs)][0]),
                    str(wasm),
                    str(zkey),
                    str(work / "p.json"),
                    str(work / "q.json"),
                ]
            )
            for i in range(repeat)
        ],
        "snarkjs groth16 fullprove: a process per proof, WASM witness and proof (the baseline)",
    )
    done = subprocess.run(
        [node, str(ROOT / "benchmarks" / "snarkjs_resident.cjs"), str(zkey), str(wtns), str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    )
    resident_js = json.loads(done.stdout)
    record(
        "snarkjs_resident",
        resident_js["prove_s"],
        "snarkjs in one process, key and curve loaded once; proof only",
    )
    out["snarkjs_resident"]["first_call_s"] = resident_js["load_s"]

    lib = work / "cli-lib"
    lib.mkdir(exist_ok=True)
    for f in ("roles/zk_prover/files/zk_prove_cli.py", "plugins/module_utils/zk_prove.py"):
        shutil.copy2(ROOT / f, lib)
    env = {**os.environ, "ZK_PROVER_SNARKJS": str(SNARKJS)}
    record(
        "groth16py_process",
        [
            timed(
                [
                    sys.executable,
                    str(lib / "zk_prove_cli.py"),
                    "prove",
                    "--circuit-dir",
                    str(circuit),
                    "--input",
                    str(pairs[i % len(pairs)][0]),
                    "--out",
                    str(work / f"g{i}"),
                    "--backend",
                    "groth16py",
                    "--quiet",
                ],
                env=env,
            )
            for i in range(repeat)
        ],
        "zk-prove prove: a process per proof, C++ witness, groth16py proof, local verify",
    )

    # groth16py with its key loaded once: the resident worker's proving call, and the profile
    t = time.perf_counter()
    pk = groth16py.import_zkey(str(zkey))[0]
    import_s = time.perf_counter() - t
    walls, cpus = [], []
    for _unused in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        groth16py.prove_wtns(pk, str(wtns))
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    record("groth16py_resident", walls, "groth16py.prove_wtns with the key imported once; proof only")
    fresh = []
    for _unused in range(repeat):
        t = time.perf_counter()
        groth16py.prove_wtns(groth16py.import_zkey(str(zkey))[0], str(wtns))
        fresh.append(time.perf_counter() - t)
    threads: dict[str, float] = {}
    for n in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", PROFILE_SNIPPET, str(zkey), str(wtns), str(repeat)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "RAYON_NUM_THREADS": n},
        )
        threads[f"RAYON_NUM_THREADS={n}"] = median([w for w, _c in json.loads(done.stdout)])
    t = time.perf_counter()
    native_pk, _vk = groth16py.setup_circom(str(MAIN), [str(p) for p in INCLUDES])
    native_setup_s = time.perf_counter() - t
    native = []
    for _unused in range(repeat):
        t = time.perf_counter()
        groth16py.prove_wtns(native_pk, str(wtns))
        native.append(time.perf_counter() - t)
    out["groth16py_profile"] = {
        "import_zkey_s": round(import_s, 4),
        "prove_wtns_key_loaded_once_s": median(walls),
        "prove_wtns_fresh_import_each_call_s": median(fresh),
        "cpu_over_wall": round(sum(cpus) / sum(walls), 3),
        "threads": threads,
        "own_key_setup_circom_s": round(native_setup_s, 2),
        "prove_wtns_own_key_s": median(native),
        "source": (
            "groth16py 0.2.0's sdist: Cargo.toml builds ark-groth16 with default-features = false (no rayon, "
            "no parallel MSM or FFT); src/zkey.rs reads every zkey section into arkworks points at import "
            "(new_unchecked); src/prove.rs proves an imported zkey with ark-groth16's "
            "create_proof_with_reduction_and_matrices (no synthesis), but its own key (setup_circom) by "
            "cloning the R1CS and synthesising the constraint system on every call."
        ),
    }
    prof = out["groth16py_profile"]
    say(
        f"  profile: import_zkey {import_s:.3f} s; prove_wtns {median(walls):.3f} s loaded once, "
        f"{median(fresh):.3f} s with a fresh import; CPU/wall {prof['cpu_over_wall']}; {threads}; "
        f"own key {median(native):.3f} s"
    )
    return out


# ------------------------------------------------------------------------------------------- 2. host sessions


class HostService:
    """The real session service (kit_session.py) in the guest's file layout, on this host, with test keys."""

    def __init__(self, work: Path, circuit: Path, workers: int) -> None:
        import conftest  # the tests' helpers: a TD's claims and its receipt key

        self.work = work
        lib = work / "lib"
        lib.mkdir(parents=True, exist_ok=True)
        for f in (
            "roles/zk_prover/files/kit_session.py",
            "plugins/module_utils/zk_prove.py",
            "plugins/module_utils/prover_session.py",
            "plugins/module_utils/td_claims.py",
        ):
            shutil.copy2(ROOT / f, lib)
        self.keys = work / "keys"
        self.keys.mkdir(mode=0o700, exist_ok=True)
        private, public = conftest.ssh_keypair()
        (self.keys / "receipt_ed25519_key").write_bytes(private)
        pem, _der = conftest.self_signed_pem("bench")
        self.claims = {
            "kit_claims": 2,
            "agent": {"uuid": "bench", "ek_tpm": "AAE=", "aik_tpm": "AAE=", "mtls_cert": pem},
            "agent_ca_sha256": "0" * 64,
            "ssh_host_key": " ".join(conftest.ssh_keypair()[1].split()[:2]),
            "receipt_key": " ".join(public.split()[:2]),
            "image_id_sha256": "0" * 64,
        }
        (work / "claims.json").write_text(json.dumps(self.claims))
        (work / "quote.py").write_text(
            "import json\nfrom pathlib import Path\n"
            "def live_claims():\n"
            f"    c = json.loads(Path({str(work / 'claims.json')!r}).read_text())\n"
            f"    c['session_key'] = Path({str(self.keys / 'session_x25519.pub')!r}).read_text().strip()\n"
            "    return c\n"
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable,
            str(lib / "kit_session.py"),
            "serve",
            "--circuit-dir",
            str(circuit),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--queue",
            "16",
            "--key-dir",
            str(self.keys),
            "--runtime-dir",
            str(work / "run"),
            "--quote-command",
            str(work / "quote.py"),
        ]
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            stderr=(work / "service.log").open("ab"),
            env={**os.environ, "ZK_PROVER_SNARKJS": str(SNARKJS)},
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(self.url + "/session", timeout=2).read()
                break
            except urllib.error.HTTPError:  # it answers (a read without the client's token is refused): up
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"the session service did not start: {work / 'service.log'}") from None
                time.sleep(0.05)
        self.start_s = time.perf_counter() - t

    def activate(self) -> sc.SessionRecord:
        key = (self.keys / "session_x25519.pub").read_text().strip()
        nonce = os.urandom(32)
        act = ps.make_activation(key, nonce, 3600, **LEASE)
        (self.work / "run" / "session.json").write_text(json.dumps(act.document()))
        return sc.SessionRecord(
            url=self.url,
            claims={**self.claims, "session_key": key},
            nonce=nonce.hex(),
            session_id=act.session_id,
            session_key=key,
            expires_at=act.expires_at,
            psk=act.psk,
            lease_key=LEASE_KEY,
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def per_request_ms(results: list[sc.Result]) -> dict[str, float]:
    """Median per request: seal (HPKE), submit (POST), open (the TD's checks + HPKE), sign (receipt), receipt
    check, proof check, and their sum: what a request costs beside its proving."""

    def med(values: list[float]) -> float:
        return round(median(values), 3)

    out = {
        "seal_ms": med([r.timings_ms["seal_ms"] for r in results]),
        "submit_ms": med([r.timings_ms["submit_ms"] for r in results]),
        "open_ms": med([r.service_timings.get("open_ms", 0.0) for r in results]),
        "sign_ms": med([r.service_timings.get("sign_ms", 0.0) for r in results]),
        "receipt_check_ms": med([r.timings_ms["receipt_ms"] for r in results]),
        "proof_check_ms": med([r.timings_ms["verify_ms"] for r in results]),
    }
    out["total_ms"] = round(sum(out.values()), 3)
    return out


def auth_cost_ms(repeat: int = 200) -> dict[str, float]:
    """What authentication adds per request, in one process: the old wire (HPKE base mode, ``cryptography``)
    against the new (PSK mode, ``pyhpke``) for a request of 1 KiB sealed and opened, one authenticated read
    (token made and checked, answer sealed and opened) and one lease (signed, checked and taken; every request
    and read carries one)."""
    from cryptography.hazmat.primitives import hpke

    state = ps.SessionState.fresh()
    state.activate(ps.make_activation(state.session_key, os.urandom(32), 3600, **LEASE).document())
    assert state.activation is not None
    act = state.activation
    data = {"x": "1" * 1024}
    base = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    public = ps.parse_session_key(state.session_key)

    def timed(step: Any) -> float:
        times = []
        for _unused in range(repeat):
            t = time.perf_counter()
            step()
            times.append((time.perf_counter() - t) * 1e3)
        return round(median(times), 3)

    def base_round() -> None:
        base.decrypt(base.encrypt(json.dumps(data).encode(), public, info=b"i"), state.private_key, info=b"i")

    def psk_round() -> None:
        raw = ps.seal_request(
            state.session_key, act.session_id, state.next_seq, data, os.urandom(32), act.psk
        )
        state.open(raw)

    def read_round() -> None:
        token, key = ps.seal_read(state.session_key, act.session_id, "/results/0", act.psk)
        answer = ps.seal_response(state.open_read("/results/0", token), 200, {"proof": "p" * 800})
        ps.open_response(key, answer)

    def lease_round() -> None:  # the client signs a new lease, the TD checks and takes it
        lease = ps.sign_lease(LEASE_KEY, act.session_id, state.lease_counter + 1, int(time.time()))
        state.take_lease(state.check_lease(lease))

    return {
        "base_mode_request_ms": timed(base_round),
        "psk_mode_request_ms": timed(psk_round),
        "authenticated_read_ms": timed(read_round),
        "lease_ms": timed(lease_round),
    }


def _verifier_says_pass() -> dict[str, Any]:
    return {"operational_state": 3, "attestation_count": 1, "last_successful_attestation": int(time.time())}


def host_session(
    circuit: Path, pairs: list[tuple[Path, Path]], work: Path, n: int, workers: int
) -> dict[str, Any]:
    service = HostService(work / f"svc-{n}-{workers}", circuit, workers)
    try:
        record = service.activate()
        # As the lab's client: every call asks a verifier (here one in memory, always PASS now; a real one is
        # a mutual-TLS GET every few seconds, not per call) and carries a new lease the service takes.
        gate = kv.VerifierGate(fetch=_verifier_says_pass, bound_s=10)
        client = sc.SessionClient(record, circuit / zk_prove.VKEY, gate=gate)
        jobs = [
            (
                f"{i:03d}",
                pairs[i % len(pairs)][0].read_bytes(),
                json.loads(pairs[i % len(pairs)][1].read_text()),
            )
            for i in range(n)
        ]
        t = time.perf_counter()
        results = client.prove_many(jobs, concurrency=workers)
        elapsed = time.perf_counter() - t
    finally:
        service.stop()
    proving = sum(r.prover_timings_s.get("total", 0.0) for r in results)
    return {
        "n": n,
        "workers": workers,
        "concurrency": workers,
        "elapsed_s": round(elapsed, 4),
        "proving_s": round(proving, 4),
        "prove_only_s": round(sum(r.prover_timings_s.get("prove", 0.0) for r in results), 4),
        "witness_s": round(sum(r.prover_timings_s.get("witness", 0.0) for r in results), 4),
        "verify_s": round(sum(r.prover_timings_s.get("verify", 0.0) for r in results), 4),
        "service_start_s": round(service.start_s, 3),
        "per_proof_s": round(elapsed / n, 4),
        "overhead_in_session": round((elapsed - proving) / proving, 4),
        "per_request_ms": per_request_ms(results),
    }


# ------------------------------------------------------------------------------------------- 3. the lab


def lab_session(n: int, pairs: list[tuple[Path, Path]], prove_dir: Path) -> dict[str, Any]:
    """One fresh attestation of the running lab guest and a session of n proofs, one request at a time."""
    extra = {
        "prove_mode": "session",
        "prove_session_inputs": [str(p[0]) for p in pairs[:n]],
        "prove_session_expected": [str(p[1]) for p in pairs[:n]],
        "prove_session_concurrency": 1,
    }
    wall = run_lab_playbook(
        "prove.yml",
        prove_dir / f"bench-session-n{n}.log",
        f"the lab session of N={n} failed (is the lab up? bin/kit site starts it)",
        extra,
    )
    phases = json.loads((prove_dir / "session" / "phases.json").read_text())
    report = json.loads((prove_dir / "session" / "report.json").read_text())
    attestation = float(phases["attestation_total_s"])
    session = float(phases["session_s"])
    proving = float(phases["proving_s"])
    requests = report["requests"]
    return {
        "n": n,
        "phases": phases,
        "playbook_wall_s": round(wall, 2),
        "end_to_end_s": round(attestation + session, 3),
        "overhead": round((attestation + session - proving) / proving, 4),
        "overhead_without_attestation": round((session - proving) / proving, 4),
        "prove_per_proof_s": round(median([float(r["prover_s"].get("prove", 0.0)) for r in requests]), 4),
        "per_request_ms": {
            "seal_ms": round(median([r["client_ms"]["seal_ms"] for r in requests]), 3),
            "submit_ms": round(median([r["client_ms"]["submit_ms"] for r in requests]), 3),
            "open_ms": round(median([r.get("service", {}).get("open_ms", 0.0) for r in requests]), 3),
            "sign_ms": round(median([r.get("service", {}).get("sign_ms", 0.0) for r in requests]), 3),
            "receipt_check_ms": round(median([r["client_ms"]["receipt_ms"] for r in requests]), 3),
            "proof_check_ms": round(median([r["client_ms"]["verify_ms"] for r in requests]), 3),
        },
    }


# ------------------------------------------------------------------------------------------- 4. the report


def overhead_model(
    attestation_s: float, per_request_s: float, proving_s: float, ns: list[int]
) -> list[float]:
    return [(attestation_s + n * per_request_s) / (n * proving_s) for n in ns]


def n_for_goal(attestation_s: float, per_request_s: float, proving_s: float) -> int | None:
    """The smallest N at which the overhead is at most GOAL_OVERHEAD (None: never, per request too dear)."""
    room = GOAL_OVERHEAD * proving_s - per_request_s
    if room <= 0:
        return None
    n = max(1, int(attestation_s / room))
    while (attestation_s + n * per_request_s) / (n * proving_s) > GOAL_OVERHEAD:
        n += 1
    return n


def amortisation(report: dict[str, Any]) -> dict[str, Any]:
    grid = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    host = {s["n"]: s for s in report["host_sessions"] if s["workers"] == 1}
    h50 = host[max(host)]
    host_proof = h50["proving_s"] / h50["n"]
    host_other = (h50["elapsed_s"] - h50["proving_s"]) / h50["n"]
    series: dict[str, Any] = {}
    name = f"published attestation {PUBLISHED_ATTESTATION_S:.3f} s + this host's session (model)"
    series[name] = {
        "n": grid,
        "overhead": overhead_model(PUBLISHED_ATTESTATION_S, host_other, host_proof, grid),
        "n_for_goal": n_for_goal(PUBLISHED_ATTESTATION_S, host_other, host_proof),
        "kind": "model",
    }
    lab = report.get("lab_sessions") or []
    if lab:
        series["lab, measured (TCG guest, SIMULATED TDX)"] = {
            "n": [s["n"] for s in lab],
            "overhead": [s["overhead"] for s in lab],
            "kind": "measured",
        }
        big = lab[-1]
        attest = float(big["phases"]["attestation_total_s"])
        proof = float(big["phases"]["proving_s"]) / big["n"]
        other = (float(big["phases"]["session_s"]) - float(big["phases"]["proving_s"])) / big["n"]
        series[f"lab attestation {attest:.0f} s + the lab's session (model from N={big['n']})"] = {
            "n": grid,
            "overhead": overhead_model(attest, other, proof, grid),
            "n_for_goal": n_for_goal(attest, other, proof),
            "kind": "model",
        }
    return series


def chart(report: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    pub = PUBLISHED_MS
    bars: list[tuple[str, dict[str, float]]] = [
        (
            "published study\n(Azure TDX, 16 vCPU)\nN = 1",
            {
                "Keylime": pub["keylime"],
                "TDX": pub["tdx"],
                "proving": pub["proving"],
                # the study's total (2926 ms) is 46 ms more than its three phases
                "other (published total)": pub["total"] - pub["keylime"] - pub["tdx"] - pub["proving"],
            },
        ),
    ]
    lab = report.get("lab_sessions") or []
    if lab:
        p = lab[0]["phases"]
        bars.append(
            (
                "this lab, N = 1\n(TCG guest, SIMULATED TDX)",
                {
                    "agent start + registration": p["agent_start_registration_s"] * 1e3,
                    "Keylime": p["keylime_s"] * 1e3,
                    "TDX": p["tdx_s"] * 1e3,
                    "binding + delivery": (p["binding_s"] + p["delivery_s"]) * 1e3,
                    "proving": p["proving_s"] / max(1, p["proofs"]) * 1e3,
                    "session requests": max(0.0, p["session_s"] - p["proving_s"]) * 1e3,
                },
            )
        )
        p = lab[-1]["phases"]
        n = lab[-1]["n"]
        bars.append(
            (
                f"this lab, per proof\nat N = {n}",
                {
                    "agent start + registration": p["agent_start_registration_s"] * 1e3 / n,
                    "Keylime": p["keylime_s"] * 1e3 / n,
                    "TDX": p["tdx_s"] * 1e3 / n,
                    "binding + delivery": (p["binding_s"] + p["delivery_s"]) * 1e3 / n,
                    "proving": p["proving_s"] / n * 1e3,
                    "session requests": max(0.0, p["session_s"] - p["proving_s"]) * 1e3 / n,
                },
            )
        )
    host = {s["n"]: s for s in report["host_sessions"] if s["workers"] == 1}
    h = host[max(host)]
    bars.append(
        (
            f"this host, per proof at N = {h['n']}\n(published attestation\nspread over N)",
            {
                "Keylime": pub["keylime"] / h["n"],
                "TDX": pub["tdx"] / h["n"],
                "proving": h["proving_s"] / h["n"] * 1e3,
                "session requests": max(0.0, h["elapsed_s"] - h["proving_s"]) / h["n"] * 1e3,
            },
        )
    )
    colours = {
        "agent start + registration": "#bbbbbb",
        "Keylime": "#4c72b0",
        "TDX": "#dd8452",
        "binding + delivery": "#8172b3",
        "proving": "#55a868",
        "session requests": "#c44e52",
        "other (published total)": "#937860",
    }
    labelled: set[str] = set()
    for x, (_label, parts) in enumerate(bars):
        bottom = 0.0
        for name, value in parts.items():
            left.bar(x, value, bottom=bottom, color=colours[name], label=None if name in labelled else name)
            labelled.add(name)
            bottom += value
        left.text(x, bottom * 1.05, f"{bottom:,.0f} ms", ha="center", va="bottom", fontsize=8)
    left.set_yscale("log")
    left.set_ylim(bottom=10)
    left.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
    left.set_ylabel("ms (log scale)")
    left.set_title(
        "One proof with its attestation: phases (published 696 / 1048 / 1136 = 2926 ms)", fontsize=9
    )
    left.legend(fontsize=7)
    for name, s in report["amortisation"].items():
        style = {"marker": "o", "linestyle": "-"} if s["kind"] == "measured" else {"linestyle": "--"}
        right.plot(s["n"], s["overhead"], label=name, **style)
    right.axhline(GOAL_OVERHEAD, color="grey", linestyle=":", linewidth=1, label=f"goal {GOAL_OVERHEAD}")
    published_n1 = (pub["total"] - pub["proving"]) / pub["proving"]
    right.scatter([1], [published_n1], color="red", zorder=5, label=f"published, N = 1 ({published_n1:.2f})")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("proofs per attestation N")
    right.set_ylabel("overhead = (end to end - proving) / proving")
    right.set_title("Amortisation of one attestation over a session", fontsize=9)
    right.legend(fontsize=7)
    fig.suptitle(f"bin/kit bench session - {report['machine']}, {report['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--lab", action="store_true", help="also run N = 1, 10, 50 in the running lab (bin/kit site)"
    )
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument(
        "--replot", type=Path, metavar="REPORT", help="only draw the chart again from a report (no measuring)"
    )
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.replot:
        try:
            drawn: dict[str, Any] = json.loads(args.replot.read_text())
        except (OSError, ValueError) as exc:
            ap.error(f"--replot: cannot read the report {args.replot}: {exc}")
        if drawn.get("kit_bench") != "session":
            ap.error(f"--replot: {args.replot} is not a session benchmark report")
        png = args.replot.with_suffix(".png")
        chart(drawn, png)
        say(f"drew {png} from {args.replot}")
        return 0
    build = Path(os.environ.get("KIT_BUILD_DIR", ROOT / "build"))
    # the inputs are secrets (identities): they live in memory (/dev/shm) and go with the run
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="kit-bench-session-", dir=shm if shm.is_dir() else None))
    try:
        stages = 4 if args.lab else 3
        say(f"stage 1/{stages}: Semaphore depth 20 artifacts (cached), {max(N_SERIES)} fresh inputs, provers")
        circuit = build / "zk" / "bench-semaphore20"
        build_dev_artifacts(MAIN, circuit, INCLUDES, name="semaphore20")
        pairs = make_inputs(work / "inputs", max(N_SERIES), "host")
        cores = os.cpu_count() or 1
        lab_running = lab_guest_running()
        if lab_running:
            say(
                "  WARNING: a lab guest is running; it takes CPU time from this host's figures (bin/kit stop)"
            )
        report: dict[str, Any] = {
            "kit_bench": "session",
            "command": "bin/kit bench session" + (" --lab" if args.lab else ""),
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine(),
            "circuit": "semaphore20 (Semaphore v4, depth 20: 6,431 constraints)",
            "repeat": args.repeat,
            "quiet_host": {
                "lab_guest_running": lab_running,
                "load_average_1m": round(os.getloadavg()[0], 2),
            },
            "published_ms": PUBLISHED_MS,
            "provers": provers(circuit, pairs, work, args.repeat),
        }
        report["auth_cost_ms"] = auth_cost_ms()
        say(f"  authentication per request (seal and open, in one process): {report['auth_cost_ms']}")
        say(
            f"stage 2/{stages}: sessions of N = {', '.join(map(str, N_SERIES))} through the session service "
            "on this host"
        )
        report["host_sessions"] = []
        for n, workers in [*((n, 1) for n in N_SERIES), (max(N_SERIES), cores)]:
            run = host_session(circuit, pairs, work, n, workers)
            report["host_sessions"].append(run)
            say(
                f"  N={n:2d} workers={workers}: {run['elapsed_s']:.2f} s, "
                f"{run['per_proof_s']:.3f} s per proof (proving {run['proving_s'] / n:.3f} s); "
                f"per request {run['per_request_ms']}"
            )
        cli = report["provers"]["snarkjs_cli"]["median_s"]
        one = next(s for s in report["host_sessions"] if s["n"] == max(N_SERIES) and s["workers"] == 1)
        many = next(s for s in report["host_sessions"] if s["n"] == max(N_SERIES) and s["workers"] == cores)
        report["resident_vs_snarkjs_cli"] = {
            "snarkjs_cli_s": cli,
            "resident_latency_s": one["per_proof_s"],
            "resident_throughput_s": many["per_proof_s"],
            "speedup_latency": round(cli / one["per_proof_s"], 2),
            "speedup_throughput": round(cli / many["per_proof_s"], 2),
            "goal": 8,
            "note": "per proof from its input: the CLI computes its witness too; the session adds HPKE, the "
            "receipt and both proof checks. Latency: one worker, one request at a time; throughput: "
            f"{cores} workers (one per core), {cores} requests in flight.",
        }
        r = report["resident_vs_snarkjs_cli"]
        say(
            f"  resident vs snarkjs CLI: {r['speedup_latency']}x one at a time, {r['speedup_throughput']}x "
            f"with {cores} workers (goal 8x)"
        )
        report["lab_sessions"] = []
        if args.lab:
            say(f"stage 3/{stages}: the lab - a fresh attestation and a session for each N (TCG guest)")
            prove_dir = build / "lab" / "site" / "prove"
            if not lab_guest_running():
                say("  bringing the lab up (playbooks/site.yml, as bin/kit site; it stays up)")
                prove_dir.mkdir(parents=True, exist_ok=True)
                # the image and artifacts are cache hits after a first run
                run_lab_playbook(
                    "site.yml", build / "lab" / "bench-session-site.log", "the lab did not come up"
                )
            lab_pairs = make_inputs(work / "lab-inputs", max(N_SERIES), "lab")
            for n in N_SERIES:
                run = lab_session(n, lab_pairs, prove_dir)
                report["lab_sessions"].append(run)
                say(
                    f"  N={n:2d}: end to end {run['end_to_end_s']:.1f} s (attestation "
                    f"{run['phases']['attestation_total_s']} s), proving {run['phases']['proving_s']} s, "
                    f"overhead {run['overhead']:.3f}; per request {run['per_request_ms']}"
                )
        say(f"stage {stages}/{stages}: amortisation and the report")
        report["amortisation"] = amortisation(report)
        for name, s in report["amortisation"].items():
            at = dict(zip(s["n"], s["overhead"], strict=True))
            say(
                f"  {name}: overhead at N=50 {at.get(50, float('nan')):.3f}"
                + (f", N for {GOAL_OVERHEAD}: {s.get('n_for_goal')}" if "n_for_goal" in s else "")
            )
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "session.json").write_text(json.dumps(report, indent=1) + "\n")
        chart(report, args.out / "session.png")
        say(f"wrote {args.out / 'session.json'} and {args.out / 'session.png'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
