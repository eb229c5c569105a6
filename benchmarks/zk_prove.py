#!/usr/bin/env python3
"""Benchmark the kit's witness generators and proving backends on a circuit (default: Semaphore v4, depth 20).

Prints (does not assert): witness time WASM vs C++, prove time of every available backend, median of N runs,
peak RSS of each child process, and each backend's ratio to snarkjs measured in the same run.

    .venv/bin/python benchmarks/zk_prove.py [--circuit-dir build/zk/semaphore20] [--runs 5]

Build the artifacts first: ansible-playbook playbooks/circuit-artifacts.yml (or bin/zk-artifacts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ansible_collections.teeproof.kit.plugins.module_utils import zk_prove

ROOT = Path(__file__).resolve().parent.parent

SNARKJS = ROOT / "tools" / "zk" / "node_modules" / "snarkjs" / "build" / "cli.cjs"
# The guest's layout (roles/zk_prover): the command with its library beside it.
GUEST_LIB = Path(tempfile.mkdtemp(prefix="kit-zk-bench-"))
shutil.copy2(ROOT / "roles" / "zk_prover" / "files" / "zk_prove_cli.py", GUEST_LIB)
shutil.copy2(ROOT / "plugins" / "module_utils" / "zk_prove.py", GUEST_LIB)
ENTRY = GUEST_LIB / "zk_prove_cli.py"


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall time (s) and peak RSS (MB) of one child process; output discarded."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _unused, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(argv[:4])} ...")
    return elapsed, usage.ru_maxrss // 1024


def series(argv: list[str], runs: int) -> dict[str, float]:
    timed(argv)  # warm the page cache
    samples = [timed(argv) for _unused in range(runs)]
    return {
        "median_s": statistics.median(s[0] for s in samples),
        "min_s": min(s[0] for s in samples),
        "peak_rss_mb": max(s[1] for s in samples),
    }


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    return f"{model}, {os.cpu_count()} cores, {mem_kb // 1024 // 1024} GiB, {platform.platform()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--circuit-dir", type=Path, default=ROOT / "build" / "zk" / "semaphore20")
    parser.add_argument("--input", type=Path, help="circuit input JSON (default: a Semaphore input)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    node = shutil.which("node") or "node"
    circuit = zk_prove.Circuit.load(args.circuit_dir)
    tools = zk_prove.Toolchain.discover(node, str(SNARKJS))
    work = Path(tempfile.mkdtemp(prefix="zk-bench-"))
    try:
        input_json = args.input or work / "input.json"
        if not args.input:
            gen = [node, str(ROOT / "tools" / "zk" / "semaphore-input.js"), "--members", "8", "--index", "3"]
            subprocess.run([*gen, "--out", str(input_json)], check=True)
        wtns = work / "w.wtns"
        zkey, vkey = circuit.root / zk_prove.ZKEY, circuit.root / zk_prove.VKEY
        manifest = circuit.manifest
        print(f"machine: {machine()}")
        size = f"{manifest.get('constraints')} constraints, power {manifest.get('power')}"
        print(f"circuit: {circuit.name} ({size})")
        print(f"runs: median of {args.runs} (after one warm-up run); each step is a separate process")
        rows: list[tuple[str, dict[str, float] | None, str]] = []

        wasm = series(
            [node, str(SNARKJS), "wtns", "calculate", str(circuit.wasm()), str(input_json), str(wtns)],
            args.runs,
        )
        rows.append(("witness: WASM (snarkjs wtns calculate)", wasm, ""))
        cpp = circuit.witness_cpp()
        if cpp:
            res = series([str(cpp), str(input_json), str(wtns)], args.runs)
            rows.append(
                ("witness: C++ generator", res, f"{wasm['median_s'] / res['median_s']:.1f}x faster than WASM")
            )
        else:
            rows.append(("witness: C++ generator", None, "not built"))

        prove: dict[str, dict[str, float] | None] = {}
        for backend in zk_prove.BACKENDS:
            ok, why = zk_prove.backend_available(backend, tools)
            if not ok:
                prove[backend] = None
                rows.append((f"prove: {backend}", None, "unavailable: " + why.split(" (", maxsplit=1)[0]))
                continue
            proof, public = work / f"{backend}.proof.json", work / f"{backend}.public.json"
            if backend == "snarkjs":
                argv = [node, str(SNARKJS), "groth16", "prove", str(zkey), str(wtns), str(proof), str(public)]
            elif backend == "rapidsnark":
                argv = [str(tools.rapidsnark), str(zkey), str(wtns), str(proof), str(public)]
            else:
                argv = [
                    sys.executable,
                    str(ENTRY),
                    "backend",
                    backend,
                    "prove",
                    str(zkey),
                    str(wtns),
                    str(proof),
                ]
                argv += [str(public), "--vkey", str(vkey)]
            prove[backend] = series(argv, args.runs)
            zk_prove.verify_proof(vkey, proof, public, "snarkjs", tools)  # every backend's proof must verify
        base = prove.get("snarkjs")
        for backend, measured in prove.items():
            if measured is None:
                continue
            note = "verified with snarkjs"
            if base and backend != "snarkjs":
                note += f"; {base['median_s'] / measured['median_s']:.2f}x faster than snarkjs"
            rows.append((f"prove: {backend} (CLI process)", measured, note))

        # groth16py in a warm process (key imported once, as a long-running prover would).
        if prove.get("groth16py"):
            import groth16py

            pk, _unused = groth16py.import_zkey(str(zkey))
            samples = []
            for _round in range(args.runs + 1):
                start = time.perf_counter()
                groth16py.prove_wtns(pk, str(wtns))
                samples.append(time.perf_counter() - start)
            warm = {"median_s": statistics.median(samples[1:]), "min_s": min(samples[1:]), "peak_rss_mb": -1}
            note = f"{base['median_s'] / warm['median_s']:.2f}x faster than snarkjs CLI" if base else ""
            rows.append(("prove: groth16py (warm, key loaded once)", warm, note))

        print()
        print(f"| {'step':<42} | {'median':>9} | {'min':>9} | {'peak RSS':>9} | note")
        print(f"| {'-' * 42} | {'-' * 9} | {'-' * 9} | {'-' * 9} | ----")
        for name, row, note in rows:
            if row is None:
                print(f"| {name:<42} | {'-':>9} | {'-':>9} | {'-':>9} | {note}")
            else:
                rss = f"{row['peak_rss_mb']:.0f} MB" if row["peak_rss_mb"] >= 0 else "n/a"
                med, low = f"{row['median_s']:.3f} s", f"{row['min_s']:.3f} s"
                print(f"| {name:<42} | {med:>9} | {low:>9} | {rss:>9} | {note}")
        print()
        print(json.dumps({"rows": [{"step": n, **(r or {}), "note": t} for n, r, t in rows]}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
