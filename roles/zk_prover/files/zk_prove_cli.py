#!/usr/bin/env python3
"""zk-prove: the guest's prove-and-verify command (roles/zk_prover installs it as PREFIX/lib/zk_prove_cli.py).

  zk-prove prove --input INPUT.json|- --out OUTDIR [--backend groth16py|snarkjs|rapidsnark] [--witness ...]
  zk-prove backend NAME prove ZKEY WTNS PROOF_JSON PUBLIC_JSON [--vkey VKEY]
  zk-prove verify VKEY PUBLIC_JSON PROOF_JSON [--verifier ...]
  zk-prove backends
  zk-prove open-job --sealed SEALED --key KEY --out DIR

The logic is the library ``zk_prove`` (plugins/module_utils/zk_prove.py), which the role installs beside this
file; Python puts this file's folder first on the import path, so that is the one imported. The tests run this
very file with the library beside it, as the guest does. Never prints the input; exits with the library's
exit codes and leaves no proof unless it verified.

``open-job`` opens a job sealed to this TD's job key (SEALED: base64, sealed_job.py beside this file; KEY: the
private half, base64): it deletes KEY first
(one use, whatever follows), then writes DIR/input.json (the input's bytes) and DIR/job.json (the nonce and
the commit key), both 0600, and deletes SEALED. A job that does not open exits 3 (input) and writes nothing.
"""

from __future__ import annotations

import argparse
import base64
import binascii
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

    job = sub.add_parser("open-job", help="open a job sealed to this TD's job key (the key is deleted first)")
    job.add_argument("--sealed", required=True, type=Path, help="the sealed job (deleted once opened)")
    job.add_argument("--key", required=True, type=Path, help="the job key's private half (deleted first)")
    job.add_argument("--out", required=True, type=Path, help="folder for input.json and job.json")
    return parser


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def open_job(sealed: Path, key: Path, out: Path) -> None:
    """The sealed job's input and job files in out; InputError when it does not open (nothing written)."""
    sys.path.append(os.environ.get("KIT_GUEST_LIB", "/usr/local/lib/tee-proof-kit"))
    import sealed_job

    try:
        text = key.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            "job_key", f"no job key at {key} ({exc}): the TD drew none for this job, or it was used"
        ) from None
    finally:
        key.unlink(missing_ok=True)
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        job = sealed_job.open_sealed(
            raw, base64.b64decode(sealed.read_text(encoding="ascii").strip(), validate=True)
        )
    except (OSError, binascii.Error, ValueError) as exc:
        raise InputError("sealed_job", f"the sealed job does not open ({exc})") from None
    _write_private(out / "input.json", job.input)
    _write_private(out / "job.json", (json.dumps(job.job_document()) + "\n").encode())
    sealed.unlink(missing_ok=True)


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
        elif args.command == "open-job":
            open_job(args.sealed, args.key, args.out)
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
