"""The runtime-policy check catches missing, wrong and excluded files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import runtime_policy


@pytest.fixture
def image(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "opt/zk-prover/circuits").mkdir(parents=True)
    (root / "opt/zk-prover/circuits/c.zkey").write_bytes(b"zkey")
    (root / "opt/zk-prover/bin").mkdir()
    (root / "opt/zk-prover/bin/zk-prove").write_text("#!/bin/sh\n")
    return root


def good_policy(root: Path) -> dict[str, object]:
    return {
        "digests": {
            "/opt/zk-prover/circuits/c.zkey": [hashlib.sha256(b"zkey").hexdigest()],
            "/opt/zk-prover/bin/zk-prove": [hashlib.sha256(b"#!/bin/sh\n").hexdigest()],
        },
        "excludes": [],
    }


def test_all_listed(image: Path) -> None:
    files = runtime_policy.files_under(image, "/opt/zk-prover")
    assert files == ["/opt/zk-prover/bin/zk-prove", "/opt/zk-prover/circuits/c.zkey"]
    assert runtime_policy.check_files(good_policy(image), image, files) == []


def test_tampered_file_is_reported(image: Path) -> None:
    (image / "opt/zk-prover/circuits/c.zkey").write_bytes(b"evil")
    problems = runtime_policy.check_files(
        good_policy(image), image, runtime_policy.files_under(image, "/opt/zk-prover")
    )
    assert len(problems) == 1 and "c.zkey: policy lists" in problems[0]


def test_missing_and_excluded(image: Path) -> None:
    policy = good_policy(image)
    policy["excludes"] = ["^/opt/zk-prover/bin/"]
    del policy["digests"]["/opt/zk-prover/circuits/c.zkey"]  # type: ignore[attr-defined]
    problems = runtime_policy.check_files(policy, image, runtime_policy.files_under(image, "/opt/zk-prover"))
    assert any("excluded" in p for p in problems)
    assert any("not in the policy" in p for p in problems)


def test_load_rejects_non_policy(tmp_path: Path) -> None:
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"x": 1}))
    with pytest.raises(ValueError):
        runtime_policy.load(p)


def test_flat_allowlist_lists_files_and_aliases(image: Path) -> None:
    (image / "etc").mkdir()
    (image / "etc/fstab").write_text("# empty\n")
    text = runtime_policy.flat_allowlist(image, ["/opt/zk-prover"], {"/etc/fstab": ["/root/etc/fstab"]})
    lines = text.splitlines()
    assert f"{hashlib.sha256(b'zkey').hexdigest()}  /opt/zk-prover/circuits/c.zkey" in lines
    fstab = hashlib.sha256(b"# empty\n").hexdigest()
    assert f"{fstab}  /root/etc/fstab" in lines
    assert len(lines) == 3
    # the TD's IMA starts in TPM-bypass (its vTPM comes later): boot_aggregate is pinned to zeros
    bypass = runtime_policy.flat_allowlist(image, ["/opt/zk-prover"], tpm_bypass=True).splitlines()
    assert f"{'0' * 64}  boot_aggregate" in bypass and len(bypass) == 3
