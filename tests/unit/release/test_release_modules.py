"""The two modules end to end on a folder: a build becomes v1, an update v2; the verifier side accepts,
retires and refuses bad bundles without changing its file."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import image_release as rel
from ansible_collections.teeproof.kit.plugins.modules import guest_image_release, reference_set

FILES = ["disk.raw", "vmlinuz", "initrd.img", "cmdline", "manifest.json"]


def fake_keylime_policy(tmp: Path) -> Path:
    """Stands in for keylime-policy sign (its envelope format is checked against a recorded one)."""
    cli = tmp / "keylime-policy"
    cli.write_text(
        f"#!{sys.executable}\n"
        "import sys, pathlib\n"
        "from ansible_collections.teeproof.kit.plugins.module_utils import image_release as rel\n"
        "a = sys.argv; p = pathlib.Path(a[a.index('--runtime-policy') + 1]).read_bytes()\n"
        "k = pathlib.Path(a[a.index('--keyfile') + 1]).read_bytes()\n"
        "o = pathlib.Path(a[a.index('--output') + 1])\n"
        "o.write_text(rel.sign_envelope(rel.KEYLIME_POLICY_TYPE, p, k))\n"
    )
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    return cli


def put(path: Path, text: str) -> None:
    """Writes as the build does: a new file renamed over the old one, never in place."""
    path.with_suffix(".partial").write_text(text)
    path.with_suffix(".partial").replace(path)


def build(out: Path, probe: str, root_hash: str) -> None:
    out.mkdir(exist_ok=True)
    for name in FILES[:-1]:
        put(out / name, f"{name} {probe}")
    put(
        out / "manifest.json",
        json.dumps(
            {
                "packages": {"kit-probe": probe},
                "kernel_version": "6.12",
                "boot_chain": {
                    "kernel_sha384": "k",
                    "initrd_sha384": "i",
                    "cmdline": f"roothash={root_hash}",
                },
                "verity": {"root_hash": root_hash},
                "image_id": {"sha256": root_hash[:1] * 64},
            }
        ),
    )
    put(
        out / "rootfs.entries.json",
        json.dumps({"/usr/bin/kit-probe": f"100000 755 0 0 {probe}", "/bin": "40000 755 0 0 "}),
    )
    put(
        out / "runtime-policy.json",
        json.dumps(
            {
                "meta": {"version": 1},
                "digests": {"/usr/bin/kit-probe": [probe]},
                "excludes": [],
            }
        ),
    )


@pytest.fixture
def lab(tmp_path: Path, keypair: Callable[[], tuple[bytes, bytes]]) -> dict[str, Any]:
    priv, pub = keypair()
    (tmp_path / "op.pem").write_bytes(priv)
    (tmp_path / "op.pub.pem").write_bytes(pub)
    return {
        "tmp": tmp_path,
        "keypair": keypair,
        "params": {
            "output_dir": str(tmp_path / "image"),
            "releases_dir": str(tmp_path / "releases"),
            "measurements": {"mr_td": "m", "rtmr1": "r1", "rtmr2": "r2"},
            "firmware_sha256": "f" * 64,
            "signing_key": str(tmp_path / "op.pem"),
            "keylime_policy": str(fake_keylime_policy(tmp_path)),
            "circuits": {},
            "policy_excludes": ["^boot_aggregate$"],
            "files": FILES,
            "entries": str(tmp_path / "image" / "rootfs.entries.json"),
        },
        "set": {
            "path": str(tmp_path / "client" / "reference-set.json"),
            "trusted_key": str(tmp_path / "op.pub.pem"),
            "releases_dir": str(tmp_path / "releases"),
            "version": None,
            "image_id_sha256": None,
            "dest": None,
        },
    }


def test_build_update_and_rollout(lab: dict[str, Any]) -> None:
    p, tmp = lab["params"], lab["tmp"]
    build(tmp / "image", "1.0", "a" * 64)
    first = guest_image_release.run(p, False)
    assert first["changed"] and first["version"] == "v1" and first["report"]["first"]
    again = guest_image_release.run(p, False)
    assert not again["changed"] and again["version"] == "v1"
    v1 = Path(first["folder"])
    assert os.stat(v1 / "disk.raw").st_ino == os.stat(tmp / "image" / "disk.raw").st_ino
    build(tmp / "image", "1.1", "b" * 64)
    second = guest_image_release.run(p, False)
    assert second["version"] == "v2" and second["previous"] == "v1"
    assert second["report"]["packages"]["upgraded"] == {"kit-probe": ["1.0", "1.1"]}
    assert second["report"]["files"]["changed"] == ["/usr/bin/kit-probe"]
    assert (v1 / "disk.raw").read_text() == "disk.raw 1.0"
    released = json.loads((Path(second["folder"]) / "runtime-policy.json").read_text())
    assert released["excludes"] == ["^boot_aggregate$"]

    s = lab["set"]
    assert reference_set.run(s | {"action": "accept", "version": "v1"}, False)["accepted"] == ["v1"]
    assert reference_set.run(s | {"action": "accept", "version": "v2"}, False)["accepted"] == ["v1", "v2"]
    merged = reference_set.run(s | {"action": "policy", "dest": str(tmp / "merged.json")}, False)
    assert merged["changed"]
    assert json.loads((tmp / "merged.json").read_text())["digests"]["/usr/bin/kit-probe"] == ["1.0", "1.1"]
    found = reference_set.run(s | {"action": "lookup", "image_id_sha256": "b" * 64}, False)
    assert found["version"] == "v2" and found["bundle"]["measurements"]["rtmr2"] == "r2"
    assert reference_set.run(s | {"action": "retire", "version": "v1"}, False)["retired"] == ["v1"]
    with pytest.raises(rel.ReleaseError, match="retired on"):
        reference_set.run(s | {"action": "lookup", "image_id_sha256": "a" * 64}, False)
    held = Path(s["path"]).read_bytes()
    with pytest.raises(rel.ReleaseError, match="rollback"):
        reference_set.run(s | {"action": "accept", "version": "v1"}, False)
    assert Path(s["path"]).read_bytes() == held


def bad_input(lab: dict[str, Any], version: str) -> None:
    held = Path(lab["set"]["path"]).read_bytes()
    with pytest.raises(rel.ReleaseError) as err:
        reference_set.run(lab["set"] | {"action": "accept", "version": version}, False)
    assert Path(lab["set"]["path"]).read_bytes() == held, "a refused bundle changed the reference set"
    lab["error"] = str(err.value)


@pytest.fixture
def v1_accepted(lab: dict[str, Any]) -> dict[str, Any]:
    build(lab["tmp"] / "image", "1.0", "a" * 64)
    guest_image_release.run(lab["params"], False)
    reference_set.run(lab["set"] | {"action": "accept", "version": "v1"}, False)
    build(lab["tmp"] / "image", "1.1", "b" * 64)
    guest_image_release.run(lab["params"], False)
    return lab


def test_foreign_bundle_refused(v1_accepted: dict[str, Any]) -> None:
    folder = Path(v1_accepted["params"]["releases_dir"]) / "v2"
    bundle = json.loads(
        rel.open_envelope(
            (folder / "bundle.dsse.json").read_bytes(),
            rel.BUNDLE_TYPE,
            (v1_accepted["tmp"] / "op.pub.pem").read_bytes(),
            "b",
        )
    )
    (folder / "bundle.dsse.json").write_text(
        rel.sign_envelope(rel.BUNDLE_TYPE, rel.canonical(bundle), v1_accepted["keypair"]()[0])
    )
    bad_input(v1_accepted, "v2")
    assert "no signature by the trusted key" in v1_accepted["error"]


def test_unsigned_bundle_refused(v1_accepted: dict[str, Any]) -> None:
    folder = Path(v1_accepted["params"]["releases_dir"]) / "v2"
    (folder / "bundle.dsse.json").write_text(json.dumps({"version": "v2"}))
    bad_input(v1_accepted, "v2")
    assert "not signed" in v1_accepted["error"]


def test_swapped_policy_refused(v1_accepted: dict[str, Any]) -> None:
    folder = Path(v1_accepted["params"]["releases_dir"])
    (folder / "v2" / "runtime-policy.dsse.json").write_bytes(
        (folder / "v1" / "runtime-policy.dsse.json").read_bytes()
    )
    bad_input(v1_accepted, "v2")
    assert "not the policy its bundle signs" in v1_accepted["error"]


def test_unknown_version_refused(v1_accepted: dict[str, Any]) -> None:
    bad_input(v1_accepted, "v9")
    assert "unknown version v9" in v1_accepted["error"]


def test_bundle_under_another_version_name_refused(v1_accepted: dict[str, Any]) -> None:
    releases = Path(v1_accepted["params"]["releases_dir"])
    (releases / "v3").mkdir()
    for name in ("bundle.dsse.json", "runtime-policy.dsse.json"):
        (releases / "v3" / name).write_bytes((releases / "v2" / name).read_bytes())
    bad_input(v1_accepted, "v3")
    assert "signed as v2, not v3" in v1_accepted["error"]


def test_release_check_mode_writes_nothing(lab: dict[str, Any]) -> None:
    build(lab["tmp"] / "image", "1.0", "a" * 64)
    result = guest_image_release.run(lab["params"], True)
    assert result["changed"] and result["version"] == "v1"
    assert not Path(lab["params"]["releases_dir"]).exists()


def test_release_refuses_a_missing_output(lab: dict[str, Any]) -> None:
    build(lab["tmp"] / "image", "1.0", "a" * 64)
    (lab["tmp"] / "image" / "vmlinuz").unlink()
    with pytest.raises(rel.ReleaseError, match="vmlinuz is missing"):
        guest_image_release.run(lab["params"], False)
    assert not (Path(lab["params"]["releases_dir"]) / "v1").exists()


def test_policy_needs_an_accepted_version(lab: dict[str, Any]) -> None:
    with pytest.raises(rel.ReleaseError, match="accepts no image version"):
        reference_set.run(lab["set"] | {"action": "policy", "dest": str(lab["tmp"] / "p.json")}, False)


def test_a_build_like_an_older_version_is_that_version_again(lab: dict[str, Any]) -> None:
    build(lab["tmp"] / "image", "1.0", "a" * 64)
    guest_image_release.run(lab["params"], False)
    build(lab["tmp"] / "image", "1.1", "b" * 64)
    guest_image_release.run(lab["params"], False)
    build(lab["tmp"] / "image", "1.0", "a" * 64)
    back = guest_image_release.run(lab["params"], False)
    assert back["version"] == "v1" and back["changed"]
    index = json.loads((Path(lab["params"]["releases_dir"]) / "index.json").read_text())
    assert index["latest"] == "v1" and [v["version"] for v in index["versions"]] == ["v1", "v2"]
