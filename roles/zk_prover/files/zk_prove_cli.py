#!/usr/bin/env python3
"""zk-prove: the guest's prove-and-verify command (roles/zk_prover installs it as PREFIX/lib/zk_prove_cli.py).

  zk-prove prove --input INPUT.json|- --out OUTDIR [--backend groth16py|snarkjs|rapidsnark] [--witness ...]
  zk-prove backend NAME prove ZKEY WTNS PROOF_JSON PUBLIC_JSON [--vkey VKEY]
  zk-prove verify VKEY PUBLIC_JSON PROOF_JSON [--verifier ...]
  zk-prove backends

The logic is the library ``zk_prove`` (plugins/module_utils/zk_prove.py), which the role installs beside this
file; Python puts this file's folder first on the import path, so that is the one imported. The tests run this
very file with the library beside it, as the guest does. Never prints the input; exits with the library's
exit codes and leaves no proof unless it verified.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from zk_prove import (
    BACKENDS,
    DEFAULT_PREFIX,
    InputError,
    Toolchain,
    ZkProveError,
    backend_available,
    backend_prove,
    n_public_from_zkey,
    prove_job,
    verify_proof,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zk-prove", description="The kit's Groth16 prove-and-verify command."
    )
    parser.add_argument("--node", help="Node.js executable (default: $ZK_PROVER_NODE or node on PATH)")
    parser.add_argument("--snarkjs", help="snarkjs build/cli.cjs (default: $ZK_PROVER_SNARKJS)")
    parser.add_argument("--rapidsnark", help="rapidsnark prover executable (default: $ZK_PROVER_RAPIDSNARK)")
    parser.add_argument(
        "--prefix", type=Path, default=Path(os.environ.get("ZK_PROVER_PREFIX", DEFAULT_PREFIX))
    )
    sub = parser.add_subparsers(dest="command", required=True)

    prove = sub.add_parser("prove", help="input JSON -> witness -> proof -> verification -> result files")
    default_circuit = os.environ.get("ZK_PROVER_CIRCUIT_DIR")
    prove.add_argument(
        "--circuit-dir",
        type=Path,
        default=Path(default_circuit) if default_circuit else None,
        required=not default_circuit,
        help="circuit artifacts folder (default: $ZK_PROVER_CIRCUIT_DIR)",
    )
    prove.add_argument("--input", required=True, help="input JSON file, or - for standard input")
    prove.add_argument(
        "--out", type=Path, required=True, help="folder for proof.json, public.json, result.json"
    )
    prove.add_argument(
        "--backend", default=os.environ.get("ZK_PROVER_BACKEND", "groth16py"), choices=BACKENDS
    )
    prove.add_argument("--witness", default="auto", choices=("auto", "cpp", "wasm"))
    prove.add_argument("--verifier", default="auto", choices=("auto", "groth16py", "snarkjs"))
    prove.add_argument("--quiet", action="store_true", help="print nothing but errors")

    backend = sub.add_parser("backend", help="one backend alone: NAME prove ZKEY WTNS PROOF_JSON PUBLIC_JSON")
    backend.add_argument("name", choices=BACKENDS)
    backend.add_argument("action", choices=("prove",))
    backend.add_argument("zkey", type=Path)
    backend.add_argument("wtns", type=Path)
    backend.add_argument("proof_json", type=Path)
    backend.add_argument("public_json", type=Path)
    backend.add_argument("--vkey", type=Path, help="verification key (groth16py needs nPublic from it)")

    verify = sub.add_parser("verify", help="verify proof.json/public.json with a verification key")
    verify.add_argument("vkey", type=Path)
    verify.add_argument("public_json", type=Path)
    verify.add_argument("proof_json", type=Path)
    verify.add_argument("--verifier", default="auto", choices=("auto", "groth16py", "snarkjs"))

    sub.add_parser("backends", help="list the backends and whether each can run here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    tools = Toolchain.discover(args.node, args.snarkjs, args.rapidsnark, args.prefix)
    try:
        if args.command == "prove":
            if args.input == "-":
                text: str | bytes = sys.stdin.buffer.read()
            else:
                try:
                    text = Path(args.input).read_bytes()
                except OSError as exc:
                    raise InputError("unreadable", f"cannot read the input file ({exc.strerror})") from None

            def say(msg: str) -> None:
                if not args.quiet:
                    print(f"zk-prove: {msg}", file=sys.stderr, flush=True)

            result = prove_job(
                args.circuit_dir, text, args.out, args.backend, args.witness, args.verifier, tools, say
            )
            if not args.quiet:
                print(json.dumps({"verified": True, **result.as_dict()}))
        elif args.command == "backend":
            n_public = (
                int(json.loads(args.vkey.read_text())["nPublic"])
                if args.vkey
                else n_public_from_zkey(args.zkey)
            )
            backend_prove(args.name, args.zkey, args.wtns, args.proof_json, args.public_json, n_public, tools)
        elif args.command == "verify":
            used = verify_proof(args.vkey, args.proof_json, args.public_json, args.verifier, tools)
            print(f"OK ({used})")
        elif args.command == "backends":
            for name in BACKENDS:
                ok, why = backend_available(name, tools)
                print(f"{name}: {'available' if ok else 'unavailable: ' + why}")
    except ZkProveError as exc:
        print(f"zk-prove: error [{exc.kind}]: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
