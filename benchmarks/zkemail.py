#!/usr/bin/env python3
"""Benchmark the zkEmail (proof-of-twitter-style) circuit: compile, setup, witness, prove, verify.

    bin/kit bench zkemail [--size full|small] [--rootfs build/image/rootfs] [--with-circom2]

Writes benchmarks/results/zkemail-SIZE.json and prints the table. Every step runs in its own process, watched
for its elapsed time and peak resident size. The full size is circuits/zkemail/twitter.circom (header 1024,
body 1536, From exposed); the small one is the instance the test command proves.

The full size does not compile with circom2 (the WebAssembly build of circom, the compiler the kit pins on
npm): it runs out of wasm32's 4 GiB while building the constraint graph. There is no native circom on any
registry this machine reaches, so the full size is compiled by the circom compiler crates inside groth16py
(``setup_circom``), which also run its setup. groth16py's own witness runner (wasmi) refuses the resulting
WASM, so the WASM is taken out of the saved key and run by snarkjs, and groth16py proves from that witness.
--with-circom2 runs the failing circom2 compile too, to record how far it gets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ansible_collections.teeproof.kit.plugins.module_utils import zk_artifacts, zk_prove, zkemail

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "tools" / "zk" / "node_modules"
SNARKJS = MODULES / "snarkjs" / "build" / "cli.cjs"
SCRIPT = ROOT / "tools" / "zk" / "zkemail-input.js"
CIRCUITS = {
    "full": ROOT / "circuits" / "zkemail" / "twitter.circom",
    "small": ROOT / "circuits" / "zkemail" / "twitter_small.circom",
}
SIZES = {"full": zkemail.FULL, "small": zkemail.SMALL}
ADDRESS = 0xC0FFEE
PUBLISHED = {
    "machine": "Azure TDX VM, 16 vCPUs",
    "prove_s": 67.1,
    "constraints": "about 3.1 M (source comments)",
}

NATIVE_MEMORY = 14 * 2**30
NATIVE_DISK = 5 * 2**30
# A child that compiles with groth16py's circom crates and sets up (circom prints its statistics).
_NATIVE_SETUP = (
    "import sys, groth16py\n"
    "pk, vk = groth16py.setup_circom(sys.argv[1], [sys.argv[2]])\n"
    "pk.save(sys.argv[3])\n"
    "open(sys.argv[4], 'w').write(vk.to_json())\n"
)
_PROVE_WTNS = (
    "import sys, json, time, groth16py\n"
    "t = time.perf_counter(); pk = groth16py.ProvingKey.load(sys.argv[1]); load = time.perf_counter() - t\n"
    "t = time.perf_counter(); blob = groth16py.prove_wtns(pk, sys.argv[2]); prove = time.perf_counter() - t\n"
    "open(sys.argv[3], 'wb').write(bytes(blob))\n"
    "print(json.dumps({'load_key_s': round(load, 2), 'prove_s': round(prove, 2)}))\n"
)


def wasm_from_g16pk(path: Path) -> bytes:
    """The circuit's WASM witness generator inside a key saved by groth16py's setup_circom.

    groth16py 0.2.0 stores it as a u64 little-endian length and the module's bytes; the module is checked
    by walking its sections to exactly that length. A bench workaround for groth16py's own format, not
    a kit interface.
    """
    import mmap
    import struct

    magic = b"\x00asm\x01\x00\x00\x00"
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        start = m.find(magic)
        if start < 8:
            raise SystemExit(f"no WASM module in {path}")
        (length,) = struct.unpack("<Q", m[start - 8 : start])
        pos, end = start + 8, start + length
        while pos < end:
            size, shift, pos = 0, 0, pos + 1
            while True:
                byte = m[pos]
                pos += 1
                size |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            pos += size
        if pos != end:
            raise SystemExit(f"the WASM module in {path} does not end at its stored length")
        return bytes(m[start:end])


def say(msg: str) -> None:
    print(f"[bench zkemail {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def watched(argv: list[str], what: str) -> tuple[dict[str, Any], str]:
    """Elapsed time, peak RSS and standard output of one child (progress every 30 s)."""
    fd, name = tempfile.mkstemp(prefix="zkemail-", suffix=".out")
    os.close(fd)
    wrapped = ["/bin/sh", "-c", 'exec "$@" > "$0"', name, *argv]
    try:
        figures = zk_artifacts.run_watched(wrapped, what, say)
        return figures, Path(name).read_text(errors="replace")
    finally:
        os.unlink(name)


def circom_stats(text: str) -> dict[str, int]:
    """circom's printed statistics (non-linear/linear constraints, inputs, wires), colour codes removed."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    found: dict[str, int] = {}
    for label, key in (
        ("non-linear constraints", "non_linear"),
        ("linear constraints", "linear"),
        ("public inputs", "public_inputs"),
        ("private inputs", "private_inputs"),
        ("public outputs", "outputs"),
        ("wires", "wires"),
        ("template instances", "templates"),
    ):
        match = re.search(rf"^{label}:\s*(\d+)", plain, re.MULTILINE)
        if match:
            found[key] = int(match.group(1))
    if "non_linear" in found:
        found["constraints"] = found["non_linear"] + found.get("linear", 0)
    return found


def r1cs_info(r1cs: Path) -> dict[str, int]:
    done = subprocess.run(
        ["node", str(SNARKJS), "r1cs", "info", str(r1cs)], capture_output=True, text=True, check=True
    )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    return {
        k: int(v)
        for k, v in re.findall(
            r"# of (Constraints|Wires|Private Inputs|Public Inputs|Outputs):\s*(\d+)", plain
        )
    }


def make_input(size: str, work: Path) -> tuple[Path, list[str], bytes]:
    key = zkemail.TestKey.generate()
    if size == "full":
        # A realistic email for the full size: three signed headers and a body with text before the handle.
        email = zkemail.make_email(key, filler_lines=20, signed_headers=("from", "to", "subject"))
    else:
        email = zkemail.make_email(key, **zkemail.SMALL_EMAIL)
    node = shutil.which("node") or "node"
    data = zkemail.circuit_input(email, key.txt, SIZES[size], ADDRESS, node, SCRIPT)
    expected = zkemail.expected_public(email, key.txt, SIZES[size], ADDRESS, node, SCRIPT)
    path = work / "input.json"
    path.write_text(json.dumps(data))
    return path, expected, email


def verify(vkey: Path, blob_path: Path, public: list[str], work: Path) -> dict[str, Any]:
    proof = work / "proof.json"
    proof.write_text(json.dumps(zk_prove.proof_bytes_to_snarkjs(blob_path.read_bytes())))
    public_json = work / "public.json"
    public_json.write_text(json.dumps(public))
    start = time.perf_counter()
    done = subprocess.run(
        ["node", str(SNARKJS), "groth16", "verify", str(vkey), str(public_json), str(proof)],
        capture_output=True,
        text=True,
        check=False,
    )
    ok = done.returncode == 0 and "OK" in done.stdout
    return {"verifier": "snarkjs groth16 verify", "ok": ok, "seconds": round(time.perf_counter() - start, 2)}


def machine() -> dict[str, Any]:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def run_full(
    args: argparse.Namespace, work: Path, data_path: Path, expected: list[str], result: dict[str, Any]
) -> None:
    main = CIRCUITS["full"]
    if args.with_circom2:
        say("compile with circom2 (WebAssembly): expected to run out of its 4 GiB")
        try:
            zk_artifacts.compile_circuit(main, [MODULES], cpp=True, progress=say)
            result["circom2"] = {"ok": True}
        except zk_artifacts.ArtifactsError as exc:
            result["circom2"] = {"ok": False, "error": str(exc).splitlines()[0]}
    import groth16py

    compiler = f"groth16py {groth16py.__version__} setup_circom"
    key = zk_artifacts.compile_key(main.resolve(), [MODULES.resolve()], compiler, [])
    cache = zk_artifacts.cache_root() / "zk" / "ceremony" / f"{key}-groth16py-native"
    pk, vkey = cache / zk_prove.G16PK, cache / zk_prove.VKEY
    if pk.is_file() and vkey.is_file() and (cache / "setup.json").is_file():
        say(f"compile + setup: cached in {cache}")
        result["compile_and_setup"] = {**json.loads((cache / "setup.json").read_text()), "cached": True}
    else:
        # Measured: 12.3 GB resident at the peak (the native compile) and a 2.0 GiB key; with margins.
        zk_artifacts.check_resources(
            "compile + setup of the full zkEmail circuit", NATIVE_MEMORY, NATIVE_DISK, cache.parent
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".native-"))
        say("compile (groth16py's circom crates, native) + setup (arkworks): the long step")
        figures, out = watched(
            [
                sys.executable,
                "-c",
                _NATIVE_SETUP,
                str(main),
                str(MODULES),
                str(tmp / zk_prove.G16PK),
                str(tmp / zk_prove.VKEY),
            ],
            "compile + setup",
        )
        record = {
            **figures,
            "compiler": compiler,
            "circom": circom_stats(out),
            "key_mb": round((tmp / zk_prove.G16PK).stat().st_size / 2**20, 1),
        }
        (tmp / "setup.json").write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, cache)
        result["compile_and_setup"] = record
    say(f"compile + setup: {result['compile_and_setup']}")
    # groth16py.prove (its witness under wasmi) refuses this circuit's WASM: "invalid witness wasm: tried to
    # allocate too many function local constant values" (measured). The WASM that circom made is inside the
    # saved key; it is taken out and run by snarkjs (Node's V8), and the proof made from that witness.
    wasm = work / "circuit.wasm"
    wasm.write_bytes(wasm_from_g16pk(pk))
    result["witness_wasm_mb"] = round(wasm.stat().st_size / 2**20, 1)
    wtns = work / "w.wtns"
    figures, _out = watched(
        ["node", str(SNARKJS), "wtns", "calculate", str(wasm), str(data_path), str(wtns)], "witness (WASM)"
    )
    result["witness"] = {
        "WASM (snarkjs wtns calculate, the WASM from groth16py's compile)": figures,
        "C++": "none: circom2 cannot compile this circuit, and groth16py's compile makes no C++ generator",
        "wasmi (groth16py.prove)": "refused: invalid witness wasm: too many function local constant values",
    }
    public = [str(v) for v in zk_prove.read_wtns(wtns, len(expected) + 1)[1:]]
    result["public_matches_expected"] = public == expected
    blob = work / "proof.bin"
    figures, text = watched(
        [sys.executable, "-c", _PROVE_WTNS, str(pk), str(wtns), str(blob)], "prove (host)"
    )
    result["prove"] = {
        "groth16py on the host (prove_wtns)": {**figures, **json.loads(text.strip().splitlines()[-1])}
    }
    say(f"prove: {result['prove']}")
    result["prove"]["snarkjs"] = (
        "not run: the key is groth16py's own (arkworks setup); snarkjs reads only zkeys"
    )
    result["verification"] = verify(vkey, blob, expected, work)
    say(f"verification: {result['verification']}")


def in_rootfs(rootfs: Path, pk: Path, wtns: Path, work: Path) -> dict[str, Any] | str:
    """prove_wtns with the image's own Python and groth16py, in its root filesystem (read-only nspawn)."""
    if not (rootfs / "usr" / "bin" / "python3").exists():
        return (
            f"no image root filesystem at {rootfs} (build the image first: bin/kit molecule image converge)"
        )
    if shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn is not installed"
    out = work / "nspawn"
    out.mkdir()
    argv = [
        "systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--read-only",
        "--private-network",
        "--tmpfs=/tmp",
        "--setenv=PYTHONDONTWRITEBYTECODE=1",
        "--setenv=PYTHONPATH=/opt/zk-prover/lib",
        f"--bind-ro={pk}:/run/kit.g16pk",
        f"--bind-ro={wtns}:/run/kit.wtns",
        f"--bind={out}:/run/kit-out",
        "-D",
        str(rootfs),
        "/opt/zk-prover/venv/bin/python",
        "-c",
        _PROVE_WTNS,
        "/run/kit.g16pk",
        "/run/kit.wtns",
        "/run/kit-out/proof.bin",
    ]
    try:
        figures, text = watched(argv, "prove in the image root filesystem")
    except zk_artifacts.ArtifactsError as exc:
        return f"failed: {str(exc).splitlines()[0]}"
    return {**figures, **json.loads(text.strip().splitlines()[-1]), "proof": str(out / "proof.bin")}


def run_small(
    args: argparse.Namespace, work: Path, data_path: Path, expected: list[str], result: dict[str, Any]
) -> None:
    main = CIRCUITS["small"]
    start = time.perf_counter()
    compiled = zk_artifacts.compile_circuit(main, [MODULES], cpp=args.cpp, progress=say)
    result["compile"] = {
        "compiler": compiled.compiler,
        "seconds": round(time.perf_counter() - start, 1),
        "stages": compiled.stages,
        "cached": not compiled.changed,
        "r1cs_info": r1cs_info(compiled.dir / "circuit.r1cs"),
    }
    zdir, changed, stages = zk_artifacts.ensure_groth16py_key(compiled, progress=say)
    meta = zdir / "setup.json"
    if stages:
        meta.write_text(json.dumps(stages[0], indent=1) + "\n")
    result["setup"] = {**(json.loads(meta.read_text()) if meta.is_file() else {}), "cached": not changed}
    pk, vkey = zdir / zk_prove.G16PK, zdir / zk_prove.VKEY
    wtns = work / "w.wtns"
    witness: dict[str, Any] = {}
    figures, _out = watched(
        [
            "node",
            str(SNARKJS),
            "wtns",
            "calculate",
            str(compiled.dir / zk_prove.WASM),
            str(data_path),
            str(wtns),
        ],
        "witness (WASM)",
    )
    witness["WASM (snarkjs wtns calculate)"] = figures
    cpp = compiled.dir / zk_prove.WITNESS_CPP
    if cpp.is_file():
        cpp_wtns = work / "cpp.wtns"
        figures, _out = watched([str(cpp), str(data_path), str(cpp_wtns)], "witness (C++)")
        witness["C++ (circom --c, g++ -O3)"] = {
            **figures,
            "same_witness_as_wasm": cpp_wtns.read_bytes() == wtns.read_bytes(),
        }
    else:
        witness["C++ (circom --c, g++ -O3)"] = (
            "not built (--cpp builds it: about 20 minutes of g++ at this size)"
        )
    result["witness"] = witness
    public = [str(v) for v in zk_prove.read_wtns(wtns, len(expected) + 1)[1:]]
    result["public_matches_expected"] = public == expected
    blob = work / "proof.bin"
    figures, text = watched(
        [sys.executable, "-c", _PROVE_WTNS, str(pk), str(wtns), str(blob)], "prove (host)"
    )
    prove: dict[str, Any] = {
        "groth16py on the host (prove_wtns)": {**figures, **json.loads(text.strip().splitlines()[-1])}
    }
    nspawn = in_rootfs(args.rootfs, pk, wtns, work)
    prove["groth16py in the image root filesystem (nspawn)"] = nspawn
    prove["snarkjs"] = "not run: the key is groth16py's own (arkworks setup); snarkjs reads only zkeys"
    result["prove"] = prove
    result["verification"] = verify(vkey, blob, expected, work)
    if isinstance(nspawn, dict):
        result["verification_nspawn"] = verify(vkey, Path(nspawn["proof"]), expected, work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--size", choices=sorted(CIRCUITS), default="full")
    parser.add_argument("--rootfs", type=Path, default=ROOT / "build" / "image" / "rootfs")
    parser.add_argument("--with-circom2", action="store_true")
    parser.add_argument("--cpp", action="store_true", help="small size: build the C++ witness generator too")
    args = parser.parse_args()
    started = time.time()
    result: dict[str, Any] = {
        "command": "bin/kit bench zkemail " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "published": PUBLISHED,
        "size": args.size,
        "sizes": vars(SIZES[args.size]),
    }
    work = Path(tempfile.mkdtemp(prefix="zkemail-bench-"))
    os.chmod(work, 0o700)
    try:
        input_path, expected, email = make_input(args.size, work)
        result["email_bytes"] = len(email)
        result["input_bytes"] = input_path.stat().st_size
        if args.size == "full":
            run_full(args, work, input_path, expected, result)
        else:
            run_small(args, work, input_path, expected, result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["total_s"] = round(time.time() - started, 1)
    out = ROOT / "benchmarks" / "results" / f"zkemail-{args.size}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    say(f"wrote {out.relative_to(ROOT)}")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
