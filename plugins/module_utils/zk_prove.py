"""The kit's Groth16 prove-and-verify library (run by the guest's `zk-prove`, roles/zk_prover/files).

Input JSON -> validated circuit input -> witness (C++ generator when built, else WASM) -> proof with the
requested backend -> local verification with the verification key -> result files.

Guarantees (each has a test in tests/unit/zk):
- Nothing of the input is ever logged or printed: error messages name signals and JSON types, never values,
  and the output of witness generators and provers (which may echo signal values) is never forwarded.
- Malformed JSON, missing or extra signals, wrong types and inputs that violate the circuit's constraints each
  fail with their own message and exit code.
- proof.json / public.json / result.json appear in the output folder only after the proof has verified
  against the verification key: everything is written in a private work folder first, then renamed.
- A backend that was asked for and is not available is an error. There is never a fallback to another one.

Backends follow one contract, rapidsnark's CLI: ``prove ZKEY WTNS PROOF_JSON PUBLIC_JSON``
(``zk-prove backend NAME ZKEY WTNS PROOF_JSON PUBLIC_JSON`` runs one of them alone).

Only the Python standard library is required; ``groth16py`` (native prover and verifier) and Node.js with
snarkjs are used when present. Python >= 3.11.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The BN254 (bn128) scalar field: every circuit signal is an element of it.
BN254_R = 21888242871839275222246405745257275088548364400416034343698204186575808495617

MANIFEST = "manifest.json"
WASM = "circuit.wasm"
WITNESS_CPP = "circuit-witness"  # needs WITNESS_CPP + ".dat" beside it
ZKEY = "circuit_final.zkey"
# A proving key from groth16py's own (arkworks) setup, in its serialization: only the groth16py backend
# reads it. Large circuits use it, where snarkjs's powers of tau would take hours
# (zk_artifacts.ensure_groth16py_key).
G16PK = "circuit_final.g16pk"
VKEY = "verification_key.json"
OUTPUT_FILES = ("proof.json", "public.json", "result.json")
BACKENDS = ("groth16py", "snarkjs", "rapidsnark")
DEFAULT_PREFIX = Path("/opt/zk-prover")

EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_CONSTRAINTS = 4
EXIT_UNAVAILABLE = 5
EXIT_ARTIFACTS = 6
EXIT_BACKEND = 7
EXIT_NOT_VERIFIED = 8

_DECIMAL = re.compile(r"(0|[1-9][0-9]*)\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")


class ZkProveError(Exception):
    """A failure the entrypoint reports as one clear line and a non-zero exit code."""

    exit_code = EXIT_USAGE
    kind = "error"


class InputError(ZkProveError):
    exit_code = EXIT_INPUT

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ConstraintError(ZkProveError):
    exit_code = EXIT_CONSTRAINTS
    kind = "constraint_violation"


class BackendUnavailable(ZkProveError):
    exit_code = EXIT_UNAVAILABLE
    kind = "backend_unavailable"


class ArtifactError(ZkProveError):
    exit_code = EXIT_ARTIFACTS
    kind = "artifacts"


class BackendError(ZkProveError):
    exit_code = EXIT_BACKEND
    kind = "backend_failed"


class NotVerified(ZkProveError):
    exit_code = EXIT_NOT_VERIFIED
    kind = "not_verified"


# ----------------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise InputError("malformed_json", f"input is not valid JSON: {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InputError("malformed_json", "input is not valid JSON for a circuit: a key appears twice")
        out[key] = value
    return out


def parse_input(text: str | bytes) -> dict[str, Any]:
    """Parse the input document. Messages give positions, never content."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise InputError("malformed_json", "input is not valid JSON: it is not UTF-8") from None
    except json.JSONDecodeError as exc:
        # exc.msg is e.g. "Expecting value": it names the grammar rule, not the text.
        raise InputError(
            "malformed_json", f"input is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InputError("malformed_json", "input is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise InputError(
            "malformed_json", f"input must be a JSON object of signal names, got a JSON {_json_type(data)}"
        )
    return data


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number with a fraction or exponent"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _shape_text(dims: Sequence[int]) -> str:
    if not dims:
        return "a field element"
    return "an array " + "x".join(str(d) for d in dims) + " of field elements"


def _field_element(name: str, value: object) -> str:
    """One scalar signal value as a canonical decimal string."""
    hint = (
        f"signal '{name}' must be a field element (a non-negative integer below the BN254 scalar field, "
        "as a JSON integer or a decimal or 0x-hex string)"
    )
    number: int
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputError("wrong_type", f"{hint}; got a JSON {_json_type(value)}")
    if isinstance(value, int):
        number = value
    elif _DECIMAL.match(value):
        number = int(value, 10)
    elif _HEX.match(value):
        number = int(value, 16)
    else:
        raise InputError("wrong_type", f"{hint}; got a string that is not a number")
    if number < 0:
        raise InputError("wrong_type", f"{hint}; got a negative integer")
    if number >= BN254_R:
        raise InputError("wrong_type", f"{hint}; got an integer outside the field")
    return str(number)


def _shaped(name: str, value: object, dims: Sequence[int]) -> Any:
    if not dims:
        return _field_element(name, value)
    if not isinstance(value, list):
        raise InputError(
            "wrong_type", f"signal '{name}' must be {_shape_text(dims)}; got a JSON {_json_type(value)}"
        )
    if len(value) != dims[0]:
        raise InputError(
            "wrong_type", f"signal '{name}' must be {_shape_text(dims)}; got an array of length {len(value)}"
        )
    return [_shaped(f"{name}[{i}]", item, dims[1:]) for i, item in enumerate(value)]


def validate_input(data: dict[str, Any], schema: dict[str, list[int]] | None) -> dict[str, Any]:
    """Check names, shapes and types against the circuit's input schema; return the normalised input.

    ``schema`` maps each input signal of the main component to its dimensions ([] for a scalar).
    Without a schema (a user's artifacts without their source) only the types are checked.
    """
    if schema is not None:
        declared = ", ".join(sorted(schema))
        extra = [k for k in data if k not in schema]
        if extra:
            # The unexpected names come from the input: count them, do not print them.
            raise InputError(
                "extra_signal",
                f"input has {len(extra)} signal(s) that the circuit does not declare; "
                f"the circuit's inputs are: {declared}",
            )
        missing = sorted(k for k in schema if k not in data)
        if missing:
            raise InputError("missing_signal", f"input is missing signal(s): {', '.join(missing)}")
        return {name: _shaped(name, data[name], schema[name]) for name in schema}
    out: dict[str, Any] = {}
    for index, (name, value) in enumerate(data.items()):
        label = f"#{index + 1}"
        out[name] = _shaped_any(label, value)
    return out


def _shaped_any(name: str, value: object) -> Any:
    if isinstance(value, list):
        return [_shaped_any(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return _field_element(name, value)


def schema_from_sym(
    sym_text: str, n_outputs: int, n_pub_inputs: int, n_prv_inputs: int
) -> dict[str, list[int]]:
    """Derive the main component's input signals (and dimensions) from a circom .sym file.

    Each line is ``label,wire,component,name``. Label 0 is the constant 1, labels 1..nOut the main
    component's outputs, then its inputs in declaration order. The label, not the wire, is used: with
    --O2 circom may substitute an input away (wire -1), and then the wire numbers of the inputs after it
    no longer line up with their declaration (seen in the zkEmail circuit: emailHeaderLength).
    """
    first, last = n_outputs + 1, n_outputs + n_pub_inputs + n_prv_inputs
    dims: dict[str, list[int]] = {}
    for line in sym_text.splitlines():
        parts = line.split(",", 3)
        if len(parts) != 4:
            continue
        label, name = int(parts[0]), parts[3]
        if not (first <= label <= last) or not name.startswith("main."):
            continue
        local = name[len("main.") :]
        if "." in local.split("[", 1)[0]:
            continue
        base, _unused, rest = local.partition("[")
        indices = [int(x) for x in re.findall(r"\[(\d+)\]", "[" + rest)] if rest else []
        current = dims.setdefault(base, [0] * len(indices))
        for i, idx in enumerate(indices):
            current[i] = max(current[i], idx + 1)
    return dims


# ----------------------------------------------------------------------------------------------------
# Files: witness, proof conversion, hashes
# ----------------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_wtns(path: Path, count: int) -> list[int]:
    """The first ``count`` witness values of a snarkjs/circom .wtns file (wire 0 is the constant 1)."""
    data = path.read_bytes()
    if data[:4] != b"wtns":
        raise BackendError("the witness file is not a .wtns file")
    n_sections = struct.unpack_from("<I", data, 8)[0]
    pos = 12
    n8 = 0
    values_at = -1
    for _unused in range(n_sections):
        sec_type, sec_len = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if sec_type == 1:
            n8 = struct.unpack_from("<I", data, pos)[0]
        elif sec_type == 2:
            values_at = pos
        pos += sec_len
    if n8 == 0 or values_at < 0:
        raise BackendError("the witness file has no header or no values")
    return [
        int.from_bytes(data[values_at + i * n8 : values_at + (i + 1) * n8], "little") for i in range(count)
    ]


def proof_bytes_to_snarkjs(blob: bytes) -> dict[str, Any]:
    """groth16py's 256-byte Ethereum proof (a, b with Fp2 as (c1, c0), c) -> snarkjs proof.json."""
    if len(blob) != 256:
        raise BackendError(f"the native prover returned {len(blob)} bytes, not a 256-byte Groth16 proof")
    w = [str(int.from_bytes(blob[i * 32 : (i + 1) * 32], "big")) for i in range(8)]
    return {
        "pi_a": [w[0], w[1], "1"],
        "pi_b": [[w[3], w[2]], [w[5], w[4]], ["1", "0"]],
        "pi_c": [w[6], w[7], "1"],
        "protocol": "groth16",
        "curve": "bn128",
    }


def _write_json(path: Path, value: object) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)
        handle.write("\n")


def _run_quiet(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run a tool without forwarding its output: witness generators and provers may print signal values."""
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise BackendUnavailable(f"cannot run {argv[0]}: not found") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s") from None


# ----------------------------------------------------------------------------------------------------
# Toolchain and backends
# ----------------------------------------------------------------------------------------------------


@dataclass
class Toolchain:
    """Where the external tools are. Each is optional until a step needs it."""

    node: str | None = None
    snarkjs_cli: str | None = None
    rapidsnark: str | None = None
    timeout: float = 600.0

    @classmethod
    def discover(
        cls,
        node: str | None = None,
        snarkjs_cli: str | None = None,
        rapidsnark: str | None = None,
        prefix: Path = DEFAULT_PREFIX,
    ) -> Toolchain:
        env = os.environ
        node = node or env.get("ZK_PROVER_NODE") or shutil.which("node") or shutil.which("nodejs")
        if not snarkjs_cli:
            snarkjs_cli = env.get("ZK_PROVER_SNARKJS")
        if not snarkjs_cli:
            candidate = prefix / "node" / "node_modules" / "snarkjs" / "build" / "cli.cjs"
            snarkjs_cli = str(candidate) if candidate.is_file() else None
        if not rapidsnark:
            rapidsnark = env.get("ZK_PROVER_RAPIDSNARK")
        if not rapidsnark:
            candidate = prefix / "bin" / "rapidsnark"
            rapidsnark = str(candidate) if candidate.is_file() else shutil.which("rapidsnark")
        return cls(node=node, snarkjs_cli=snarkjs_cli, rapidsnark=rapidsnark)

    def snarkjs(self) -> list[str]:
        if not self.node:
            raise BackendUnavailable("snarkjs needs Node.js, and no 'node' executable was found")
        if not self.snarkjs_cli or not Path(self.snarkjs_cli).is_file():
            raise BackendUnavailable(
                "snarkjs is not installed: set ZK_PROVER_SNARKJS to its build/cli.cjs "
                f"(looked for {self.snarkjs_cli or 'ZK_PROVER_SNARKJS'})"
            )
        return [self.node, self.snarkjs_cli]


def _groth16py() -> Any:
    try:
        return importlib.import_module("groth16py")
    except ImportError:
        raise BackendUnavailable(
            "backend 'groth16py' was requested but the groth16py package is not importable by "
            f"{sys.executable}; nothing was proved (there is no fallback to another backend)"
        ) from None


def backend_available(name: str, tools: Toolchain) -> tuple[bool, str]:
    """Whether a backend can run here, and why not."""
    try:
        if name == "groth16py":
            _groth16py()
        elif name == "snarkjs":
            tools.snarkjs()
        elif name == "rapidsnark":
            _rapidsnark_path(tools)
        else:
            return False, f"unknown backend '{name}'"
    except ZkProveError as exc:
        return False, str(exc)
    return True, "available"


def _rapidsnark_path(tools: Toolchain) -> str:
    path = tools.rapidsnark
    if path and Path(path).is_file() and os.access(path, os.X_OK):
        return path
    where = (
        f"no executable at {path}" if path else "no 'rapidsnark' executable on PATH or in /opt/zk-prover/bin"
    )
    raise BackendUnavailable(
        f"backend 'rapidsnark' was requested but rapidsnark is not installed ({where}). rapidsnark comes "
        "from its GitHub release archive or source (see roles/zk_prover, zk_prover_rapidsnark_*); a host "
        "that cannot reach GitHub cannot install it. Nothing was proved, and the kit never falls back to "
        "another backend: ask for 'groth16py' or 'snarkjs' instead."
    )


def _check_key_reader(backend: str, key: Path) -> None:
    """Refuse a backend that cannot read ``key``: a groth16py key is read by the groth16py backend only."""
    if key.suffix == Path(G16PK).suffix and backend != "groth16py":
        raise BackendUnavailable(
            f"backend '{backend}' was requested, but this circuit's proving key is groth16py's own "
            f"({key.name}, from an arkworks setup), which only the groth16py backend reads. "
            "Nothing was proved."
        )


def load_groth16py_key(zkey: Path) -> Any:
    """groth16py's proving key from a snarkjs zkey or its own saved key (what a resident prover keeps)."""
    _check_key_reader("groth16py", zkey)
    g16 = _groth16py()
    try:
        if zkey.suffix == Path(G16PK).suffix:
            return g16.ProvingKey.load(str(zkey))
        return g16.import_zkey(str(zkey))[0]
    except Exception as exc:  # the extension raises its own exception types
        raise ArtifactError(f"groth16py cannot read the proving key {zkey} ({type(exc).__name__})") from None


def backend_prove(
    name: str,
    zkey: Path,
    wtns: Path,
    proof_json: Path,
    public_json: Path,
    n_public: int,
    tools: Toolchain,
    loaded_key: Any = None,
) -> None:
    """The one backend contract: ``prove ZKEY WTNS PROOF_JSON PUBLIC_JSON``.

    ``loaded_key`` (groth16py only): the key already in memory (``load_groth16py_key``), not read again.
    """
    _check_key_reader(name, zkey)
    if name == "groth16py":
        g16 = _groth16py()
        pk = loaded_key if loaded_key is not None else load_groth16py_key(zkey)
        try:
            blob = g16.prove_wtns(pk, str(wtns))
        except Exception as exc:  # the extension raises its own exception types
            raise BackendError(f"groth16py failed to prove ({type(exc).__name__})") from None
        _write_json(proof_json, proof_bytes_to_snarkjs(bytes(blob)))
        _write_json(public_json, [str(v) for v in read_wtns(wtns, n_public + 1)[1:]])
        return
    if name == "snarkjs":
        argv = [*tools.snarkjs(), "groth16", "prove", str(zkey), str(wtns), str(proof_json), str(public_json)]
    elif name == "rapidsnark":
        argv = [_rapidsnark_path(tools), str(zkey), str(wtns), str(proof_json), str(public_json)]
    else:
        raise ZkProveError(f"unknown backend '{name}' (choose one of: {', '.join(BACKENDS)})")
    done = _run_quiet(argv, tools.timeout)
    if done.returncode != 0 or not proof_json.is_file() or not public_json.is_file():
        raise BackendError(f"backend '{name}' failed to prove (exit {done.returncode})")


def verify_proof(vkey: Path, proof_json: Path, public_json: Path, verifier: str, tools: Toolchain) -> str:
    """Verify with the verification key; return the verifier used. Raise NotVerified on a bad proof."""
    if verifier == "auto":
        verifier = "groth16py" if backend_available("groth16py", tools)[0] else "snarkjs"
    if verifier == "groth16py":
        g16 = _groth16py()
        try:
            vk = g16.VerifyingKey.from_snarkjs_file(str(vkey))
            ok = bool(g16.Verifier(vk).verify_snarkjs(proof_json.read_text(), public_json.read_text()))
        except Exception as exc:
            raise NotVerified(
                f"the proof could not be checked ({type(exc).__name__}); it was discarded"
            ) from None
    elif verifier == "snarkjs":
        argv = [*tools.snarkjs(), "groth16", "verify", str(vkey), str(public_json), str(proof_json)]
        done = _run_quiet(argv, tools.timeout)
        ok = done.returncode == 0 and b"OK" in done.stdout
    else:
        raise ZkProveError(f"unknown verifier '{verifier}' (choose auto, groth16py or snarkjs)")
    if not ok:
        raise NotVerified(
            f"the proof did not verify against the verification key ({verifier}); it was discarded"
        )
    return verifier


# ----------------------------------------------------------------------------------------------------
# Circuit folder
# ----------------------------------------------------------------------------------------------------


@dataclass
class Circuit:
    """A circuit artifacts folder as the pipeline writes it (and the role installs it)."""

    root: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path, check_hashes: bool = True) -> Circuit:
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise ArtifactError(f"no {MANIFEST} in the circuit folder {root}")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{manifest_path} is not readable JSON ({type(exc).__name__})") from None
        circuit = cls(root, manifest)
        if not (root / VKEY).is_file():
            raise ArtifactError(f"the circuit folder {root} has no {VKEY}")
        if not (root / ZKEY).is_file() and not (root / G16PK).is_file():
            raise ArtifactError(f"the circuit folder {root} has no proving key ({ZKEY} or {G16PK})")
        if check_hashes:
            for name, meta in manifest.get("files", {}).items():
                path = root / name
                if path.is_file() and sha256_file(path) != meta.get("sha256"):
                    raise ArtifactError(f"{path} does not match the SHA-256 in {MANIFEST}: refusing to prove")
        return circuit

    @property
    def name(self) -> str:
        return str(self.manifest.get("circuit", self.root.name))

    @property
    def proving_key(self) -> Path:
        """The snarkjs zkey when there is one, else groth16py's own proving key."""
        zkey = self.root / ZKEY
        return zkey if zkey.is_file() else self.root / G16PK

    @property
    def n_public(self) -> int:
        vkey = json.loads((self.root / VKEY).read_text())
        return int(vkey["nPublic"])

    @property
    def schema(self) -> dict[str, list[int]] | None:
        inputs = self.manifest.get("inputs")
        if inputs is None:
            return None
        return {str(k): [int(d) for d in v] for k, v in inputs.items()}

    def witness_cpp(self) -> Path | None:
        path = self.root / WITNESS_CPP
        if path.is_file() and os.access(path, os.X_OK) and Path(str(path) + ".dat").is_file():
            return path
        return None

    def wasm(self) -> Path | None:
        path = self.root / WASM
        return path if path.is_file() else None


def compute_witness(circuit: Circuit, input_json: Path, wtns: Path, mode: str, tools: Toolchain) -> str:
    """Run the witness generator; return which one ran ("cpp" or "wasm")."""
    cpp = circuit.witness_cpp()
    if mode == "auto":
        mode = "cpp" if cpp else "wasm"
    if mode == "cpp":
        if cpp is None:
            raise BackendUnavailable(f"the C++ witness generator was requested but {circuit.root} has none")
        done = _run_quiet([str(cpp), str(input_json), str(wtns)], tools.timeout)
    elif mode == "wasm":
        wasm = circuit.wasm()
        if wasm is None:
            raise ArtifactError(f"the circuit folder {circuit.root} has neither {WITNESS_CPP} nor {WASM}")
        done = _run_quiet(
            [*tools.snarkjs(), "wtns", "calculate", str(wasm), str(input_json), str(wtns)], tools.timeout
        )
    else:
        raise ZkProveError(f"unknown witness generator '{mode}' (choose auto, cpp or wasm)")
    if done.returncode != 0 or not wtns.is_file() or wtns.stat().st_size == 0:
        raise ConstraintError(
            f"the input does not satisfy the circuit's constraints: witness generation ({mode}) failed "
            f"with exit {done.returncode}; nothing was proved"
        )
    return mode


# ----------------------------------------------------------------------------------------------------
# The whole job
# ----------------------------------------------------------------------------------------------------


@dataclass
class ProveResult:
    backend: str
    witness: str
    verifier: str
    timings: dict[str, float]
    out_dir: Path

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "witness": self.witness,
            "verifier": self.verifier,
            "timings_s": self.timings,
            "out_dir": str(self.out_dir),
        }


def _clear_outputs(out_dir: Path) -> None:
    for name in OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)


def prove_job(
    circuit_dir: Path,
    input_text: str | bytes,
    out_dir: Path,
    backend: str = "groth16py",
    witness: str = "auto",
    verifier: str = "auto",
    tools: Toolchain | None = None,
    progress: Callable[[str], None] | None = None,
    check_hashes: bool = True,
    circuit: Circuit | None = None,
    loaded_key: Any = None,
) -> ProveResult:
    """Validate, witness, prove, verify; publish proof.json/public.json/result.json only when verified.

    A resident prover passes the ``circuit`` it loaded once and its groth16py ``loaded_key``.
    """
    tools = tools or Toolchain.discover()
    say = progress or (lambda _msg: None)
    if backend not in BACKENDS:
        raise ZkProveError(f"unknown backend '{backend}' (choose one of: {', '.join(BACKENDS)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out_dir)  # a stale proof must never pass for the result of this run
    timings: dict[str, float] = {}
    start = time.perf_counter()

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        timings[stage] = round(now - since, 4)
        say(f"{stage}: {timings[stage]:.3f} s")
        return now

    ok, why = backend_available(backend, tools)
    if not ok:
        raise BackendUnavailable(why)
    if loaded_key is not None and backend != "groth16py":
        raise ZkProveError("a loaded proving key is groth16py's; ask for the groth16py backend")
    circuit = circuit or Circuit.load(circuit_dir, check_hashes=check_hashes)
    # Refused before the input is even read: no witness is computed for a proof that cannot be made.
    _check_key_reader(backend, circuit.proving_key)
    t = lap("load", start)
    data = validate_input(parse_input(input_text), circuit.schema)
    t = lap("validate", t)
    work = Path(tempfile.mkdtemp(prefix=".zk-prove-", dir=out_dir))
    try:
        os.chmod(work, 0o700)
        input_json = work / "input.json"
        _write_json(input_json, data)
        del data
        wtns = work / "witness.wtns"
        used_witness = compute_witness(circuit, input_json, wtns, witness, tools)
        input_json.unlink()
        t = lap("witness", t)
        proof, public = work / "proof.json", work / "public.json"
        backend_prove(backend, circuit.proving_key, wtns, proof, public, circuit.n_public, tools, loaded_key)
        wtns.unlink()
        t = lap("prove", t)
        used_verifier = verify_proof(circuit.root / VKEY, proof, public, verifier, tools)
        t = lap("verify", t)
        timings["total"] = round(t - start, 4)
        files = circuit.manifest.get("files", {})
        result = ProveResult(backend, used_witness, used_verifier, timings, out_dir)
        _write_json(
            work / "result.json",
            {
                "verified": True,
                "circuit": circuit.name,
                "backend": backend,
                "witness": used_witness,
                "verifier": used_verifier,
                "timings_s": timings,
                "zkey_sha256": files.get(circuit.proving_key.name, {}).get("sha256"),
                "vkey_sha256": sha256_file(circuit.root / VKEY),
                "proof_sha256": sha256_file(proof),
                "public_sha256": sha256_file(public),
            },
        )
        for name in OUTPUT_FILES:  # result.json last: its presence means the set is complete
            os.replace(work / name, out_dir / name)
        return result
    except BaseException:
        _clear_outputs(out_dir)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def n_public_from_zkey(zkey: Path) -> int:
    """nPublic from a Groth16 .zkey header (section 2)."""
    data = zkey.read_bytes()[: 1 << 16]
    n_sections = struct.unpack_from("<I", data, 8)[0]
    pos = 12
    for _unused in range(n_sections):
        sec_type, sec_len = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if sec_type == 2:
            n8q = struct.unpack_from("<I", data, pos)[0]
            p = pos + 4 + n8q
            n8r = struct.unpack_from("<I", data, p)[0]
            p += 4 + n8r + 4  # skip r and nVars
            return int(struct.unpack_from("<I", data, p)[0])
        pos += sec_len
    raise ArtifactError(f"{zkey} has no Groth16 header")
