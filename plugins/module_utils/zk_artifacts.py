"""Circuit artifacts pipeline on the build host: compile, development ceremony, user artifacts, publish.

Everything expensive is cached by content under ``$KIT_CACHE_DIR/zk`` (default ~/.cache/tee-proof-kit/zk):
- compile/<key>/   r1cs, sym, wasm and the C++ witness generator; key = sha256 of the circuit sources
  (main file + every file it includes, by content), the compiler version and the flags;
- ptau/pot<power>_final.ptau   phase 1, prepared for phase 2 (shared by every circuit of that power);
- ceremony/<key>-p<power>/   circuit_final.zkey and verification_key.json; key = compile key + power;
- ceremony/<key>-groth16py/   circuit_final.g16pk (groth16py's own proving key) and verification_key.json,
  from groth16py's arkworks setup: for circuits too large for snarkjs's powers of tau on this machine;
- downloads/<sha256>   user artifacts fetched by URL.
A rerun with unchanged inputs finds every step in the cache and changes nothing.

A local ceremony has one contributor (this machine): it is FOR DEVELOPMENT ONLY.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible.module_utils.urls import open_url
from ansible_collections.teeproof.kit.plugins.module_utils.zk_prove import (
    G16PK,
    MANIFEST,
    VKEY,
    WASM,
    WITNESS_CPP,
    ZKEY,
    schema_from_sym,
    sha256_file,
)

DEV_ONLY_WARNING = (
    "FOR DEVELOPMENT ONLY: this proving key comes from a local ceremony with a single contributor (this "
    "machine). Whoever holds its toxic waste can forge proofs. Use a key from a real multi-party ceremony "
    "(zk_circuit_artifacts_source: user) for anything that matters."
)
MANIFEST_FORMAT = 1
_INCLUDE = re.compile(r'^\s*include\s+"([^"]+)"\s*;', re.MULTILINE)
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")

Progress = Callable[[str], None]
SETUP_TOOLS = ("snarkjs", "groth16py")
# 2: input schemas read from the .sym file by label, not by wire (zk_prove.schema_from_sym).
SCHEMA_FORMAT = 2


class ArtifactsError(Exception):
    """A pipeline failure with a message meant for the operator."""


def _quiet(_msg: str) -> None:
    return None


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("KIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "tee-proof-kit"


@dataclass
class Tools:
    """The pinned Node tools (tools/zk/node_modules)."""

    node: str
    node_modules: Path

    @classmethod
    def from_kit(
        cls, kit_root: Path | None = None, node: str | None = None, node_modules: Path | None = None
    ) -> Tools:
        root = kit_root or Path(os.environ.get("KIT_ROOT") or Path(__file__).resolve().parents[2])
        node_exe = node or shutil.which("node") or shutil.which("nodejs")
        if not node_exe:
            raise ArtifactsError(
                "Node.js is not installed on the build host (needed for circom2 and snarkjs)"
            )
        modules = node_modules or root / "tools" / "zk" / "node_modules"
        if not (modules / "snarkjs").is_dir():
            raise ArtifactsError(f"{modules} has no snarkjs: run 'bin/kit setup' (npm ci in tools/zk)")
        return cls(node_exe, modules)

    @property
    def circom2(self) -> list[str]:
        return [self.node, str(self.node_modules / "circom2" / "cli.js")]

    @property
    def snarkjs(self) -> list[str]:
        return [self.node, str(self.node_modules / "snarkjs" / "build" / "cli.cjs")]

    def version(self, package: str) -> str:
        meta = json.loads((self.node_modules / package / "package.json").read_text())
        return str(meta["version"])


@contextlib.contextmanager
def _cache_lock(folder: Path, name: str) -> Iterator[None]:
    """Serialise builders of the same cache entry (two runs at once would both do the slow work)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: Sequence[str], what: str, cwd: Path | None = None, timeout: float = 7200) -> str:
    done = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ArtifactsError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def circom_workdir(paths: Sequence[Path]) -> Path:
    """The working directory for circom2: the deepest folder that holds every path it is given.

    circom2 runs under WASI and rewrites each path relative to its working directory; a path that has to
    climb out of it with ``..`` (an include path above the working directory) is not found. From the
    common ancestor every path is a plain descendant, whatever folder the caller was started from.
    """
    return Path(os.path.commonpath([str(Path(p).resolve()) for p in paths]))


class Stopwatch:
    """Stage timings with progress lines ("stage ... done in N s")."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.stages: list[dict[str, Any]] = []

    def run(self, stage: str, fn: Callable[[], object]) -> None:
        self.progress(f"{stage} ...")
        start = time.monotonic()
        fn()
        elapsed = round(time.monotonic() - start, 2)
        self.stages.append({"stage": stage, "elapsed_s": elapsed})
        self.progress(f"{stage} done in {elapsed:.1f} s")


# ----------------------------------------------------------------------------------------------------
# Compile
# ----------------------------------------------------------------------------------------------------


def _resolve_include(name: str, current: Path, include_paths: Sequence[Path]) -> Path:
    for base in (current.parent, *include_paths):
        candidate = (base / name).resolve()
        if candidate.is_file():
            return candidate
    raise ArtifactsError(
        f"{current}: cannot find the included file '{name}' (include paths: {include_paths})"
    )


def source_closure(main: Path, include_paths: Sequence[Path]) -> list[tuple[str, Path]]:
    """The main file and every file it includes (transitively), as (name as written, path)."""
    seen: dict[Path, str] = {}
    todo: list[tuple[str, Path]] = [(main.name, main.resolve())]
    while todo:
        name, path = todo.pop()
        if path in seen:
            continue
        seen[path] = name
        for inc in _INCLUDE.findall(path.read_text()):
            todo.append((inc, _resolve_include(inc, path, include_paths)))
    return sorted(((n, p) for p, n in seen.items()), key=lambda item: (item[0], str(item[1])))


def compile_key(main: Path, include_paths: Sequence[Path], compiler: str, flags: Sequence[str]) -> str:
    """Content hash of the sources + compiler version + flags (independent of where the files live)."""
    digest = hashlib.sha256()
    digest.update(f"compiler={compiler}\nflags={' '.join(flags)}\n".encode())
    for name, path in source_closure(main, include_paths):
        digest.update(f"{name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def r1cs_info(path: Path) -> dict[str, int]:
    """Header of a circom .r1cs file (the header section may come after the constraints)."""
    with path.open("rb") as handle:
        if handle.read(4) != b"r1cs":
            raise ArtifactsError(f"{path} is not an .r1cs file")
        _version, n_sections = struct.unpack("<II", handle.read(8))
        for _unused in range(n_sections):
            sec_type, sec_len = struct.unpack("<IQ", handle.read(12))
            if sec_type != 1:
                handle.seek(sec_len, os.SEEK_CUR)
                continue
            (n8,) = struct.unpack("<I", handle.read(4))
            handle.seek(n8, os.SEEK_CUR)
            n_wires, n_out, n_pub, n_prv, n_labels, n_constraints = struct.unpack("<IIIIQI", handle.read(28))
            return {
                "wires": n_wires,
                "outputs": n_out,
                "public_inputs": n_pub,
                "private_inputs": n_prv,
                "labels": n_labels,
                "constraints": n_constraints,
            }
    raise ArtifactsError(f"{path} has no r1cs header section")


def power_for(info: dict[str, int]) -> int:
    """Smallest powers-of-tau power whose domain holds the circuit (snarkjs' rule), at least 2."""
    need = info["constraints"] + info["public_inputs"] + info["outputs"] + 1
    return max(2, math.ceil(math.log2(need)))


@dataclass
class Compiled:
    key: str
    dir: Path
    info: dict[str, int]
    inputs: dict[str, list[int]]
    compiler: str
    cpp: bool
    changed: bool
    stages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def power(self) -> int:
        return power_for(self.info)


def compile_circuit(
    main: Path,
    include_paths: Sequence[Path] = (),
    cache_dir: Path | None = None,
    tools: Tools | None = None,
    cpp: bool = True,
    optimize: str = "--O2",
    progress: Progress = _quiet,
    check_only: bool = False,
) -> Compiled:
    """Compile with circom2 into the cache (r1cs, sym, wasm; the C++ witness generator built with make)."""
    tools = tools or Tools.from_kit()
    main = main.resolve()
    includes = [Path(p).resolve() for p in include_paths]
    compiler = f"circom2 {tools.version('circom2')}"
    flags = [optimize, "--c" if cpp else "--no-c"]
    key = compile_key(main, includes, compiler, flags)
    target = cache_root(cache_dir) / "zk" / "compile" / key
    info_file = target / "info.json"
    if info_file.is_file():
        meta = json.loads(info_file.read_text())
        if meta.get("schema_format") != SCHEMA_FORMAT and not check_only:
            # An entry from before schemas were read by label (zk_prove.schema_from_sym): redo the schema.
            info = meta["r1cs"]
            meta["inputs"] = schema_from_sym(
                (target / "circuit.sym").read_text(),
                info["outputs"],
                info["public_inputs"],
                info["private_inputs"],
            )
            meta["schema_format"] = SCHEMA_FORMAT
            info_file.write_text(json.dumps(meta, indent=1) + "\n")
        return Compiled(key, target, meta["r1cs"], meta["inputs"], compiler, cpp, changed=False)
    if check_only:
        return Compiled(key, target, {}, {}, compiler, cpp, changed=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    watch = Stopwatch(progress)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        argv = [*tools.circom2, str(main), "--r1cs", "--wasm", "--sym", optimize, "-o", str(work)]
        for inc in includes:
            argv += ["-l", str(inc)]
        if cpp:
            argv.append("--c")
        cwd = circom_workdir([main, *includes, work])
        try:
            watch.run(f"compile {main.name} ({compiler} {optimize})", lambda: _run(argv, "circom2", cwd))
        except ArtifactsError as exc:
            if "memory allocation of" in str(exc):
                raise ArtifactsError(
                    f"circom2 ran out of memory compiling {main.name}: as WebAssembly (wasm32) it can use at "
                    "most 4 GiB, and this circuit needs more (measured: the full-size zkEmail circuit, 3.1 M "
                    "constraints, fails after about 7 minutes). Compile it natively instead: bin/kit bench "
                    "zkemail uses the circom compiler inside groth16py (setup_circom)."
                ) from None
            raise
        stem = main.stem
        out = work / "out"
        out.mkdir()
        shutil.move(work / f"{stem}.r1cs", out / "circuit.r1cs")
        shutil.move(work / f"{stem}.sym", out / "circuit.sym")
        shutil.move(work / f"{stem}_js" / f"{stem}.wasm", out / WASM)
        if cpp:
            cpp_dir = work / f"{stem}_cpp"
            jobs = str(max(1, min(2, os.cpu_count() or 1)))
            watch.run(
                "build the C++ witness generator (make)", lambda: _run(["make", "-j", jobs], "make", cpp_dir)
            )
            shutil.move(cpp_dir / stem, out / WITNESS_CPP)
            shutil.move(cpp_dir / f"{stem}.dat", out / f"{WITNESS_CPP}.dat")
        info = r1cs_info(out / "circuit.r1cs")
        inputs = schema_from_sym(
            (out / "circuit.sym").read_text(), info["outputs"], info["public_inputs"], info["private_inputs"]
        )
        meta = {
            "key": key,
            "compiler": compiler,
            "flags": flags,
            "r1cs": info,
            "inputs": inputs,
            "schema_format": SCHEMA_FORMAT,
            "main": main.name,
        }
        (out / "info.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(out, target)
    progress(f"compiled: {info['constraints']} constraints, power {power_for(info)} needed")
    return Compiled(key, target, info, inputs, compiler, cpp, changed=True, stages=watch.stages)


# ----------------------------------------------------------------------------------------------------
# Development ceremony
# ----------------------------------------------------------------------------------------------------


def ptau_path(power: int, cache_dir: Path | None = None) -> Path:
    return cache_root(cache_dir) / "zk" / "ptau" / f"pot{power:02d}_final.ptau"


def ensure_ptau(
    power: int,
    cache_dir: Path | None = None,
    tools: Tools | None = None,
    progress: Progress = _quiet,
    check_only: bool = False,
) -> tuple[Path, bool, list[dict[str, Any]]]:
    """Phase 1 (powers of tau) at ``power``, prepared for phase 2; cached per power."""
    final = ptau_path(power, cache_dir)
    if final.is_file() or check_only:
        return final, not final.is_file(), []
    with _cache_lock(final.parent, final.name):
        if final.is_file():  # made by another run while this one waited
            return final, False, []
        return _make_ptau(power, final, tools or Tools.from_kit(), progress)


def _make_ptau(
    power: int, final: Path, tools: Tools, progress: Progress
) -> tuple[Path, bool, list[dict[str, Any]]]:
    watch = Stopwatch(progress)
    sj = tools.snarkjs
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".ptau-") as tmp:
        work = Path(tmp)
        p0, p1, p2 = work / "pot_0000.ptau", work / "pot_0001.ptau", work / "final.ptau"
        watch.run(
            f"powers of tau: new (power {power})",
            lambda: _run([*sj, "powersoftau", "new", "bn128", str(power), str(p0)], "ptau new"),
        )
        entropy = secrets.token_hex(32)
        watch.run(
            "powers of tau: contribute (1 local contributor)",
            lambda: _run(
                [*sj, "powersoftau", "contribute", str(p0), str(p1), "--name=kit-dev", f"-e={entropy}"],
                "ptau contribute",
            ),
        )
        watch.run(
            "powers of tau: prepare phase 2 (the slow step)",
            lambda: _run([*sj, "powersoftau", "prepare", "phase2", str(p1), str(p2)], "ptau prepare phase2"),
        )
        os.replace(p2, final)
    return final, True, watch.stages


def ceremony_dir(compiled: Compiled, power: int, cache_dir: Path | None = None) -> Path:
    return cache_root(cache_dir) / "zk" / "ceremony" / f"{compiled.key}-p{power:02d}"


def ensure_zkey(
    compiled: Compiled,
    power: int | None = None,
    cache_dir: Path | None = None,
    tools: Tools | None = None,
    progress: Progress = _quiet,
    check_only: bool = False,
) -> tuple[Path, bool, list[dict[str, Any]]]:
    """Phase 2 for the circuit: zkey (one contribution) + verification key; cached by compile key + power."""
    power = power or compiled.power
    target = ceremony_dir(compiled, power, cache_dir)
    if (target / ZKEY).is_file() and (target / VKEY).is_file():
        return target, False, []
    if check_only:
        return target, True, []
    with _cache_lock(target.parent, target.name):
        if (target / ZKEY).is_file() and (target / VKEY).is_file():
            return target, False, []
        return _make_zkey(compiled, power, target, cache_dir, tools or Tools.from_kit(), progress)


def _make_zkey(
    compiled: Compiled, power: int, target: Path, cache_dir: Path | None, tools: Tools, progress: Progress
) -> tuple[Path, bool, list[dict[str, Any]]]:
    if compiled.info and power < compiled.power:
        raise ArtifactsError(f"power {power} is too small for {compiled.info['constraints']} constraints")
    progress(DEV_ONLY_WARNING)
    ptau, _unused, stages = ensure_ptau(power, cache_dir, tools, progress)
    watch = Stopwatch(progress)
    watch.stages = list(stages)
    sj = tools.snarkjs
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".zkey-") as tmp:
        work = Path(tmp)
        out = work / "out"
        out.mkdir()
        z0 = work / "circuit_0000.zkey"
        r1cs = compiled.dir / "circuit.r1cs"
        watch.run(
            "phase 2: groth16 setup",
            lambda: _run([*sj, "groth16", "setup", str(r1cs), str(ptau), str(z0)], "groth16 setup"),
        )
        entropy = secrets.token_hex(32)
        watch.run(
            "phase 2: contribute (1 local contributor)",
            lambda: _run(
                [*sj, "zkey", "contribute", str(z0), str(out / ZKEY), "--name=kit-dev", f"-e={entropy}"],
                "zkey contribute",
            ),
        )
        watch.run(
            "phase 2: export verification key",
            lambda: _run(
                [*sj, "zkey", "export", "verificationkey", str(out / ZKEY), str(out / VKEY)], "export vkey"
            ),
        )
        meta = {"kind": "development", "contributors": 1, "power": power, "compile_key": compiled.key}
        (out / "ceremony.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(out, target)
    return target, True, watch.stages


# ----------------------------------------------------------------------------------------------------
# groth16py's setup (arkworks), for large circuits
#
# Measured on this kit's 2-core build host (docs/zk.md): a 1.12 M-constraint circuit peaked at 2.93 GB
# resident and a 0.86 M one at 1.9 GB; the saved key is about 0.4 kB per constraint. The estimate below is
# deliberately above those points, so that a machine that passes the check does not run out halfway.
SETUP_MEM_BYTES_PER_CONSTRAINT = 3000
SETUP_MEM_BASE_BYTES = 512 * 1024 * 1024
SETUP_DISK_BYTES_PER_CONSTRAINT = 1200
_SETUP_CHILD = (
    "import sys, groth16py\n"
    "pk, vk = groth16py.setup(sys.argv[1])\n"
    "pk.save(sys.argv[2])\n"
    "open(sys.argv[3], 'w').write(vk.to_json())\n"
)


def setup_needs(constraints: int) -> tuple[int, int]:
    """(memory, disk) in bytes that groth16py's setup is expected to need for ``constraints``."""
    return (
        SETUP_MEM_BASE_BYTES + constraints * SETUP_MEM_BYTES_PER_CONSTRAINT,
        constraints * SETUP_DISK_BYTES_PER_CONSTRAINT,
    )


def available_memory() -> int:
    """MemAvailable from /proc/meminfo, in bytes (0 when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def check_resources(what: str, memory: int, disk: int, where: Path, mem_free: int | None = None) -> None:
    """Refuse, before any work, when ``where``'s file system or this machine's memory will not suffice."""
    gib = 1024**3
    free_mem = available_memory() if mem_free is None else mem_free
    if free_mem and memory > free_mem:
        raise ArtifactsError(
            f"{what} needs about {memory / gib:.1f} GiB of memory and {free_mem / gib:.1f} GiB is available: "
            "nothing was run. Free memory, or run it on a larger machine."
        )
    probe = where
    while not probe.exists():
        probe = probe.parent
    free_disk = shutil.disk_usage(probe).free
    if disk > free_disk:
        raise ArtifactsError(
            f"{what} needs about {disk / gib:.1f} GiB of disk in {where} and {free_disk / gib:.1f} GiB is "
            "free: nothing was run. Free space there, or point KIT_CACHE_DIR elsewhere."
        )


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_watched(
    argv: Sequence[str], what: str, progress: Progress, every: float = 30, timeout: float = 6 * 3600
) -> dict[str, Any]:
    """Run a long child, printing its elapsed time and resident size every ``every`` s; its figures."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT)
        next_report = start + every
        while True:
            waited, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if waited:
                break
            now = time.monotonic()
            if now - start > timeout:
                proc.kill()
                proc.wait()
                raise ArtifactsError(f"{what} did not finish in {timeout:.0f} s and was stopped")
            if now >= next_report:
                progress(f"{what}: {now - start:.0f} s, {_rss_bytes(proc.pid) / 1024**3:.2f} GiB resident")
                next_report = now + every
            time.sleep(min(1.0, every))
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            tail = "\n".join(log.read().decode(errors="replace").strip().splitlines()[-15:])
            if proc.returncode == -9:
                tail += "\n(killed: out of memory?)"
            raise ArtifactsError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return {"elapsed_s": round(time.monotonic() - start, 2), "peak_rss_mb": usage.ru_maxrss // 1024}


def groth16py_dir(compiled: Compiled, cache_dir: Path | None = None) -> Path:
    return cache_root(cache_dir) / "zk" / "ceremony" / f"{compiled.key}-groth16py"


def ensure_groth16py_key(
    compiled: Compiled,
    cache_dir: Path | None = None,
    progress: Progress = _quiet,
    check_only: bool = False,
    python: str = sys.executable,
    mem_free: int | None = None,
) -> tuple[Path, bool, list[dict[str, Any]]]:
    """A development proving key from groth16py's single-party setup; cached by compile key.

    Checks memory and disk first. The stage record carries the elapsed time, the peak resident size and the
    key's size on disk.
    """
    target = groth16py_dir(compiled, cache_dir)
    if (target / G16PK).is_file() and (target / VKEY).is_file():
        return target, False, []
    if check_only:
        return target, True, []
    constraints = int(compiled.info.get("constraints", 0))
    memory, disk = setup_needs(constraints)
    check_resources(f"groth16py setup of {constraints} constraints", memory, disk, target.parent, mem_free)
    with _cache_lock(target.parent, target.name):
        if (target / G16PK).is_file() and (target / VKEY).is_file():
            return target, False, []
        progress(DEV_ONLY_WARNING)
        stage = f"setup: groth16py (arkworks), {constraints} constraints"
        progress(f"{stage} ...")
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".g16-") as tmp:
            out = Path(tmp) / "out"
            out.mkdir()
            argv = [
                python,
                "-c",
                _SETUP_CHILD,
                str(compiled.dir / "circuit.r1cs"),
                str(out / G16PK),
                str(out / VKEY),
            ]
            figures = run_watched(argv, "groth16py setup", progress)
            size = (out / G16PK).stat().st_size
            meta = {
                "kind": "development",
                "contributors": 1,
                "tool": "groth16py",
                "compile_key": compiled.key,
            }
            (out / "ceremony.json").write_text(json.dumps(meta, indent=1) + "\n")
            os.replace(out, target)
        record = {"stage": stage, **figures, "key_mb": round(size / 1024**2, 1)}
        progress(
            f"{stage} done in {figures['elapsed_s']:.1f} s, peak {figures['peak_rss_mb']} MB, "
            f"key {record['key_mb']} MB"
        )
    return target, True, [record]


# ----------------------------------------------------------------------------------------------------
# User artifacts
# ----------------------------------------------------------------------------------------------------


def fetch_artifact(
    source: str, sha256: str, cache_dir: Path | None = None, check_only: bool = False, timeout: float = 300
) -> tuple[Path, bool]:
    """A user artifact (path, file:// or http(s) URL) whose SHA-256 must be ``sha256``.

    Local paths are checked in place; downloads land in downloads/<sha256> only after the check.
    """
    want = sha256.lower().strip()
    if not _SHA256.match(want):
        raise ArtifactsError(f"'{sha256}' is not a SHA-256 (64 hex digits) for {source}")
    if "://" not in source or source.startswith("file://"):
        path = Path(source[len("file://") :] if source.startswith("file://") else source).expanduser()
        if not path.is_file():
            raise ArtifactsError(f"artifact not found: {path}")
        got = sha256_file(path)
        if got != want:
            raise ArtifactsError(
                f"SHA-256 mismatch for {path}: expected {want}, got {got}. Refusing to use it."
            )
        return path, False
    target = cache_root(cache_dir) / "zk" / "downloads" / want
    if target.is_file() and sha256_file(target) == want:
        return target, False
    if check_only:
        return target, True
    if not source.startswith(("https://", "http://")):
        raise ArtifactsError(f"unsupported URL scheme in {source} (use https://, http://, file:// or a path)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".download-")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, open_url(source, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        got = digest.hexdigest()
        if got != want:
            raise ArtifactsError(
                f"SHA-256 mismatch for {source}: expected {want}, got {got}. Refusing to use it."
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target, True


# ----------------------------------------------------------------------------------------------------
# Publish: the output folder and its manifest
# ----------------------------------------------------------------------------------------------------


def publish(
    out_dir: Path,
    files: dict[str, Path],
    info: dict[str, Any],
    check_only: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Copy ``files`` (name in out_dir -> source) and write manifest.json; change nothing when equal."""
    changed = False
    entries: dict[str, dict[str, Any]] = {}
    for name, src in sorted(files.items()):
        digest = sha256_file(src)
        entries[name] = {"sha256": digest, "size": src.stat().st_size}
        dest = out_dir / name
        mode = 0o755 if os.access(src, os.X_OK) and name == WITNESS_CPP else 0o644
        same = dest.is_file() and sha256_file(dest) == digest and (dest.stat().st_mode & 0o777) == mode
        if same:
            continue
        changed = True
        if check_only:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    manifest = {"format": MANIFEST_FORMAT, **info, "files": entries}
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    path = out_dir / MANIFEST
    if not path.is_file() or path.read_text() != text:
        changed = True
        if not check_only:
            out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if not check_only:
        for stale in out_dir.glob("*"):
            if stale.is_file() and stale.name not in entries and stale.name != MANIFEST:
                stale.unlink()
                changed = True
    return manifest, changed


def build_dev_artifacts(
    main: Path,
    out_dir: Path,
    include_paths: Sequence[Path] = (),
    name: str | None = None,
    cache_dir: Path | None = None,
    power: int | None = None,
    cpp: bool = True,
    progress: Progress = _quiet,
    tools: Tools | None = None,
    setup: str = "snarkjs",
) -> dict[str, Any]:
    """The whole development pipeline (what the role's tasks do one by one).

    ``setup`` is snarkjs (powers of tau and phase 2: a zkey every backend reads) or groth16py (its arkworks
    setup: minutes where snarkjs takes hours at 2^22, but a key only the groth16py backend reads).
    """
    if setup not in SETUP_TOOLS:
        raise ArtifactsError(f"unknown setup tool '{setup}' (choose one of: {', '.join(SETUP_TOOLS)})")
    tools = tools or Tools.from_kit()
    compiled = compile_circuit(main, include_paths, cache_dir, tools, cpp=cpp, progress=progress)
    power = power or compiled.power
    if setup == "groth16py":
        zdir, zchanged, stages = ensure_groth16py_key(compiled, cache_dir, progress)
        files = {WASM: compiled.dir / WASM, G16PK: zdir / G16PK, VKEY: zdir / VKEY}
    else:
        zdir, zchanged, stages = ensure_zkey(compiled, power, cache_dir, tools, progress)
        files = {WASM: compiled.dir / WASM, ZKEY: zdir / ZKEY, VKEY: zdir / VKEY}
    if cpp:
        files[WITNESS_CPP] = compiled.dir / WITNESS_CPP
        files[f"{WITNESS_CPP}.dat"] = compiled.dir / f"{WITNESS_CPP}.dat"
    info = manifest_info(name or main.stem, compiled, power, "development")
    manifest, pchanged = publish(out_dir, files, info)
    return {
        "changed": compiled.changed or zchanged or pchanged,
        "manifest": manifest,
        "stages": compiled.stages + stages,
    }


def manifest_info(name: str, compiled: Compiled, power: int, ceremony: str) -> dict[str, Any]:
    return {
        "circuit": name,
        "curve": "bn128",
        "protocol": "groth16",
        "compiler": compiled.compiler,
        "compile_key": compiled.key,
        "constraints": compiled.info.get("constraints"),
        "power": power,
        "inputs": compiled.inputs,
        "ceremony": {"kind": ceremony, "warning": DEV_ONLY_WARNING if ceremony == "development" else None},
    }
