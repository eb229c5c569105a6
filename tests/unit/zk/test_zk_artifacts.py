"""The artifacts pipeline: cache hits do no work, user artifacts are checked by SHA-256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import zk_artifacts, zk_prove
from conftest import MULTIPLIER, MULTIPLIER_INCLUDES


def test_power_from_constraints() -> None:
    assert zk_artifacts.power_for({"constraints": 6431, "public_inputs": 2, "outputs": 2}) == 13
    assert zk_artifacts.power_for({"constraints": 8187, "public_inputs": 2, "outputs": 2}) == 13
    assert zk_artifacts.power_for({"constraints": 8188, "public_inputs": 2, "outputs": 2}) == 14
    assert zk_artifacts.power_for({"constraints": 2, "public_inputs": 1, "outputs": 1}) == 3


def test_compile_key_depends_on_content_not_location(tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "multiplier.circom"
    copy.parent.mkdir()
    copy.write_text(MULTIPLIER.read_text())
    key = zk_artifacts.compile_key(MULTIPLIER, MULTIPLIER_INCLUDES, "circom2 0.2.23", ["--O2"])
    assert zk_artifacts.compile_key(copy, MULTIPLIER_INCLUDES, "circom2 0.2.23", ["--O2"]) == key
    assert zk_artifacts.compile_key(copy, MULTIPLIER_INCLUDES, "circom2 0.2.24", ["--O2"]) != key
    copy.write_text(MULTIPLIER.read_text() + "\n// changed\n")
    assert zk_artifacts.compile_key(copy, MULTIPLIER_INCLUDES, "circom2 0.2.23", ["--O2"]) != key


def test_rerun_with_unchanged_inputs_does_no_work(
    circuit_dir: Path, tools: zk_artifacts.Tools, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in circuit_dir.iterdir()}

    def no_tools(*_args: object, **_kwargs: object) -> str:
        raise AssertionError("a cached rerun ran a tool")

    monkeypatch.setattr(zk_artifacts, "_run", no_tools)
    result = zk_artifacts.build_dev_artifacts(
        MULTIPLIER, circuit_dir, MULTIPLIER_INCLUDES, name="multiplier", cache_dir=cache_dir, tools=tools
    )
    assert result["changed"] is False
    assert result["stages"] == []
    assert {p.name: p.stat().st_mtime_ns for p in circuit_dir.iterdir()} == before


def test_publish_check_mode_reports_without_writing(circuit_dir: Path, tmp_path: Path) -> None:
    files = {zk_prove.VKEY: circuit_dir / zk_prove.VKEY}
    _unused, changed = zk_artifacts.publish(tmp_path / "out", files, {"circuit": "x"}, check_only=True)
    assert changed is True
    assert not (tmp_path / "out").exists()
    _unused, changed = zk_artifacts.publish(tmp_path / "out", files, {"circuit": "x"})
    assert changed is True
    _unused, changed = zk_artifacts.publish(tmp_path / "out", files, {"circuit": "x"}, check_only=True)
    assert changed is False


def test_user_artifact_sha256_checked(circuit_dir: Path, tmp_path: Path) -> None:
    zkey = circuit_dir / zk_prove.ZKEY
    good = hashlib.sha256(zkey.read_bytes()).hexdigest()
    path, changed = zk_artifacts.fetch_artifact(str(zkey), good, cache_dir=tmp_path)
    assert path == zkey and changed is False
    path, _unused = zk_artifacts.fetch_artifact(f"file://{zkey}", good.upper(), cache_dir=tmp_path)
    assert path == zkey
    bad = "0" * 64
    with pytest.raises(zk_artifacts.ArtifactsError, match="SHA-256 mismatch"):
        zk_artifacts.fetch_artifact(str(zkey), bad, cache_dir=tmp_path)
    with pytest.raises(zk_artifacts.ArtifactsError, match="not a SHA-256"):
        zk_artifacts.fetch_artifact(str(zkey), "abc", cache_dir=tmp_path)
    with pytest.raises(zk_artifacts.ArtifactsError, match="not found"):
        zk_artifacts.fetch_artifact(str(tmp_path / "missing.zkey"), good, cache_dir=tmp_path)


def test_manifest_records_hashes_and_dev_warning(circuit_dir: Path) -> None:
    manifest = json.loads((circuit_dir / zk_prove.MANIFEST).read_text())
    assert manifest["ceremony"]["kind"] == "development"
    assert "FOR DEVELOPMENT ONLY" in manifest["ceremony"]["warning"]
    for name in (zk_prove.WASM, zk_prove.ZKEY, zk_prove.VKEY, zk_prove.WITNESS_CPP):
        assert manifest["files"][name]["sha256"] == zk_prove.sha256_file(circuit_dir / name)
    assert manifest["power"] == 3 and manifest["constraints"] == 2
