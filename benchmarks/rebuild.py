#!/usr/bin/env python3
"""Benchmark and check image rebuilds after an update (bin/kit bench rebuild).

A local apt repository (served on 127.0.0.1) publishes a small package, kit-probe, that the image installs.
  1. cold build: an empty cache (mmdebstrap, tool venvs, wheels), kit-probe 1.0          -> version A
  2. the same build again: nothing changes                                                -> still A
  3. kit-probe 1.1 published; an update build (guest_image_update=true)                  -> version B
     its change report must name exactly that package and the files it brings
  4. the root filesystem folder removed, the same inputs built again                      -> still B, with
     the same root filesystem digest, root hash and expected RTMRs (reproducible)
Prints a table and writes benchmarks/results/rebuild.json (times are measured, never asserted).

    bin/kit bench rebuild [--work DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import http.server
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "rebuild.json"
PROBE = "kit-probe"
PORT = 18931


def say(msg: str) -> None:
    print(f"[bench rebuild {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_deb(repo: Path, version: str) -> Path:
    """A tiny arch-all package: a command and a version file (both measured by IMA when run/read)."""
    tree = repo / f"src-{version}"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr" / "bin").mkdir(parents=True)
    (tree / "usr" / "lib" / PROBE).mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {PROBE}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: tee-proof-kit <kit@localhost>\n"
        f"Section: misc\nPriority: optional\nDescription: tee-proof-kit update probe\n"
        " A package the rebuild benchmark publishes in two versions.\n"
    )
    (tree / "usr" / "lib" / PROBE / "VERSION").write_text(f"{version}\n")
    cmd = tree / "usr" / "bin" / PROBE
    cmd.write_text(f"#!/bin/sh\necho {PROBE} {version}\n")
    cmd.chmod(0o755)
    deb = repo / f"{PROBE}_{version}_all.deb"
    env = dict(os.environ, SOURCE_DATE_EPOCH="1704067200")
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(tree), str(deb)],
        check=True,
        env=env,
        capture_output=True,
    )
    shutil.rmtree(tree)
    return deb


def publish(repo: Path, version: str) -> None:
    """Exactly one version of kit-probe in the repository: Packages (dpkg-scanpackages) and a Release."""
    for old in repo.glob("*.deb"):
        old.unlink()
    make_deb(repo, version)
    packages = subprocess.run(
        ["dpkg-scanpackages", "-m", "."], cwd=repo, check=True, capture_output=True
    ).stdout
    (repo / "Packages").write_bytes(packages)
    digest = hashlib.sha256(packages).hexdigest()
    (repo / "Release").write_text(
        "Origin: tee-proof-kit bench\nLabel: kit-probe\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\n"
        f"SHA256:\n {digest} {len(packages)} Packages\n"
    )


@contextlib.contextmanager
def serve(repo: Path) -> Iterator[int]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    # a fixed port: the source URI is written into the image, and the same inputs must give the same image
    handler = functools.partial(Quiet, directory=str(repo))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


def build(work: Path, port: int, update: bool, label: str, log: Path) -> dict[str, Any]:
    extra = {
        "guest_image_apt_sources": [
            {
                "name": "kit bench repository",
                "uris": f"http://127.0.0.1:{port}/",
                "suites": "./",
                "trusted": True,
            }
        ],
        "guest_image_apt_packages": [PROBE],
        "guest_image_update": update,
    }
    (work / "extra.json").write_text(json.dumps(extra))
    env = dict(os.environ, KIT_BUILD_DIR=str(work / "build"), KIT_CACHE_DIR=str(work / "cache"))
    argv = [
        "ansible-playbook",
        "-i",
        str(ROOT / "inventories" / "lab"),
        str(ROOT / "playbooks" / "build-image.yml"),
        "-e",
        f"@{work / 'extra.json'}",
    ]
    say(f"{label}: ansible-playbook playbooks/build-image.yml (log: {log})")
    t0 = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    seconds = round(time.monotonic() - t0, 1)
    if done.returncode != 0:
        sys.exit(f"{label} failed (rc {done.returncode}): see {log}")
    releases = work / "build" / "releases"
    index = json.loads((releases / "index.json").read_text())
    version = index["latest"]
    release = json.loads((releases / version / "release.json").read_text())
    manifest = json.loads((work / "build" / "image" / "manifest.json").read_text())
    say(f"{label}: {seconds} s -> {version}")
    return {
        "label": label,
        "seconds": seconds,
        "version": version,
        "versions": len(index["versions"]),
        "content_id": release["content_id"],
        "root_hash": release["record"]["root_hash"],
        "rootfs_tree_sha256": manifest["rootfs_tree_sha256"],
        "measurements": release["record"]["measurements"],
        "probe": manifest["packages"].get(PROBE),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench-rebuild")
    args = parser.parse_args()
    work: Path = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "build").mkdir(parents=True)
    (work / "cache").mkdir()
    # Inputs that are not the image build's own work: the circuit artifacts and the pinned TD firmware.
    shutil.copytree(ROOT / "build" / "zk", work / "build" / "zk")
    src_cache = Path(os.environ.get("KIT_CACHE_DIR", Path.home() / ".cache" / "tee-proof-kit"))
    if (src_cache / "firmware").is_dir():
        shutil.copytree(src_cache / "firmware", work / "cache" / "firmware")
    repo = work / "repo"
    repo.mkdir()
    publish(repo, "1.0")
    steps: list[dict[str, Any]] = []
    with serve(repo) as port:
        steps.append(build(work, port, False, "cold build (empty cache), kit-probe 1.0", work / "1-cold.log"))
        steps.append(build(work, port, False, "the same build again", work / "2-again.log"))
        publish(repo, "1.1")
        steps.append(build(work, port, True, "update build, kit-probe 1.1 published", work / "3-update.log"))
        shutil.rmtree(work / "build" / "image" / "rootfs")
        steps.append(
            build(work, port, True, "the same inputs from a fresh root filesystem", work / "4-again.log")
        )
    cold, again, update, repro = steps
    report = json.loads((work / "build" / "releases" / update["version"] / "changes.json").read_text())
    checks = {
        "no-change rebuild makes no version": again["version"] == cold["version"] and again["versions"] == 1,
        "update build makes the next version": update["version"] != cold["version"]
        and update["probe"] == "1.1",
        "change report: exactly kit-probe upgraded": report["packages"]
        == {"added": {}, "removed": {}, "upgraded": {PROBE: ["1.0", "1.1"]}},
        "change report: the probe's files changed": {f"/usr/bin/{PROBE}", f"/usr/lib/{PROBE}/VERSION"}
        <= set(report["files"]["changed"]),
        "change report: rtmr2 and the root hash moved": {"tdx.rtmr2", "verity.root_hash"}
        <= set(report["measurements"]),
        "reproducible: same content id": repro["content_id"] == update["content_id"]
        and repro["versions"] == 2,
        "reproducible: same rootfs digest": repro["rootfs_tree_sha256"] == update["rootfs_tree_sha256"],
        "reproducible: same root hash and RTMRs": repro["root_hash"] == update["root_hash"]
        and repro["measurements"] == update["measurements"],
    }
    result = {
        "command": "bin/kit bench rebuild",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "steps": steps,
        "update_vs_cold": round(update["seconds"] / cold["seconds"], 3),
        "change_report": {
            "packages": report["packages"],
            "files_changed": report["files"]["changed"],
            "files_added": report["files"]["added"],
            "files_removed": report["files"]["removed"],
            "measurements_moved": sorted(report["measurements"]),
        },
        "checks": checks,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{'step':<52} {'s':>7}  version")
    for step in steps:
        print(f"{step['label']:<52} {step['seconds']:>7}  {step['version']}")
    print(f"update / cold = {result['update_vs_cold']}")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    print(f"wrote {RESULTS}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
