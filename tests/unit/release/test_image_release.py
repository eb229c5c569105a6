"""Versions, change reports, signed bundles and the reference set (plugins/module_utils/image_release.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.teeproof.kit.plugins.module_utils import image_release as rel

Keys = Callable[[], tuple[bytes, bytes]]
VECTORS = Path(__file__).parent / "vectors"


def manifest(root_hash: str = "a" * 64, probe: str = "1.0", image_id: str = "1" * 64) -> dict[str, Any]:
    return {
        "packages": {"kit-probe": probe, "bash": "5.2"},
        "kernel_version": "6.12.0-1-amd64",
        "boot_chain": {
            "kernel_sha384": "k" * 96,
            "initrd_sha384": "i" * 96,
            "cmdline": f"root=x kit.verity.roothash={root_hash}",
        },
        "verity": {"root_hash": root_hash},
        "rootfs_tree_sha256": "t" * 64,
        "image_id": {"sha256": image_id},
    }


def policy(probe_digest: str = "d1") -> dict[str, Any]:
    return {
        "meta": {"version": 1, "timestamp": "now"},
        "digests": {"/usr/bin/kit-probe": [probe_digest], "/bin/sh": ["s"]},
        "excludes": [],
    }


def record(
    probe: str = "1.0", root: str = "a" * 64, digest: str = "d1", rtmr2: str = "r2", image_id: str = "1" * 64
) -> dict[str, Any]:
    return rel.release_record(
        manifest(root, probe, image_id),
        {"mr_td": "m", "rtmr1": "r1", "rtmr2": rtmr2},
        policy(digest),
        {"semaphore20": {"verification_key.json": "vk"}},
        "p",
    )


# ---------------------------------------------------------------- records and the change report


def test_content_id_ignores_the_policy_timestamp_but_not_a_package() -> None:
    a = record()
    b = rel.release_record(
        manifest(),
        {"mr_td": "m", "rtmr1": "r1", "rtmr2": "r2"},
        policy() | {"meta": {"timestamp": "later"}},
        {"semaphore20": {"verification_key.json": "vk"}},
        "q",
    )
    assert rel.content_id(a) == rel.content_id(b)
    assert rel.content_id(a) != rel.content_id(record(probe="1.1"))


def test_release_record_refuses_a_manifest_without_root_hash() -> None:
    with pytest.raises(rel.ReleaseError, match="rebuild the image"):
        rel.release_record({"boot_chain": {}}, {}, policy(), {}, "p")


def test_change_report_names_exactly_the_package_file_and_measurements_moved() -> None:
    old, new = record(), record(probe="1.1", root="b" * 64, digest="d2", rtmr2="r2new", image_id="2" * 64)
    report = rel.change_report("v1", old, "v2", new, policy()["digests"], policy("d2")["digests"])
    assert report["packages"] == {"added": {}, "removed": {}, "upgraded": {"kit-probe": ["1.0", "1.1"]}}
    assert report["files"] == {"added": [], "removed": [], "changed": ["/usr/bin/kit-probe"]}
    assert set(report["measurements"]) == {
        "tdx.rtmr2",
        "verity.root_hash",
        "cmdline",
        "image_id.sha256",
        "runtime_policy.content_sha256",
    }
    assert report["measurements"]["tdx.rtmr2"] == {"from": "r2", "to": "r2new"}
    text = "\n".join(rel.format_report(report))
    assert "package upgraded: kit-probe 1.0 -> 1.1" in text and "file changed: /usr/bin/kit-probe" in text


def test_change_report_of_the_first_version_and_of_no_change() -> None:
    first = rel.change_report(None, None, "v1", record(), {}, policy()["digests"])
    assert first["first"] and first["files"]["added"] == ["/bin/sh", "/usr/bin/kit-probe"]
    same = rel.change_report("v1", record(), "v2", record(), policy()["digests"], policy()["digests"])
    assert rel.format_report(same)[-1] == "  no change"


def test_packages_added_and_removed() -> None:
    old, new = record(), record()
    new["packages"] = {"bash": "5.2", "curl": "8"}
    report = rel.change_report("v1", old, "v2", new, {}, {})
    assert report["packages"]["added"] == {"curl": "8"} and report["packages"]["removed"] == {
        "kit-probe": "1.0"
    }


def test_next_version_and_names() -> None:
    assert rel.next_version([]) == "v1" and rel.next_version(["v1", "v9", "v10"]) == "v11"
    for bad in ("1", "v0", "v01", "latest", "v1/../x"):
        with pytest.raises(rel.ReleaseError):
            rel.version_number(bad)


# ---------------------------------------------------------------- DSSE envelopes


def test_keylime_signed_policy_opens_with_its_key() -> None:
    """A recorded envelope made by keylime-policy sign itself."""
    payload = rel.open_envelope(
        (VECTORS / "keylime-policy-sign.dsse.json").read_bytes(),
        rel.KEYLIME_POLICY_TYPE,
        (VECTORS / "keylime-policy-sign.pub.pem").read_bytes(),
        "policy",
    )
    assert json.loads(payload) == json.loads((VECTORS / "keylime-policy-sign.policy.json").read_text())
    env = json.loads((VECTORS / "keylime-policy-sign.dsse.json").read_text())
    key = rel.load_public_key((VECTORS / "keylime-policy-sign.pub.pem").read_bytes())
    assert env["signatures"][0]["keyid"] == rel.key_id(key)


def test_keylime_signed_policy_refused_with_another_key_or_changed_payload(keypair: Keys) -> None:
    raw = (VECTORS / "keylime-policy-sign.dsse.json").read_text()
    with pytest.raises(rel.ReleaseError, match="no signature by the trusted key"):
        rel.open_envelope(raw, rel.KEYLIME_POLICY_TYPE, keypair()[1], "policy")
    env = json.loads(raw)
    body = json.loads(base64.b64decode(env["payload"]))
    body["digests"]["/usr/bin/evil"] = ["00"]
    env["payload"] = base64.standard_b64encode(json.dumps(body).encode()).decode()
    with pytest.raises(rel.ReleaseError, match="changed payload"):
        rel.open_envelope(
            json.dumps(env),
            rel.KEYLIME_POLICY_TYPE,
            (VECTORS / "keylime-policy-sign.pub.pem").read_bytes(),
            "policy",
        )


@pytest.mark.parametrize(
    ("envelope", "match"),
    [
        ("not json", "not JSON"),
        (json.dumps(policy()), "not signed"),
        (json.dumps({"payload": "eyJ9", "payloadType": rel.BUNDLE_TYPE, "signatures": []}), "no signature"),
        (
            json.dumps({"payload": "%%%", "payloadType": rel.BUNDLE_TYPE, "signatures": [{"sig": "x"}]}),
            "base64",
        ),
        (
            json.dumps({"payload": "e30=", "payloadType": "text/plain", "signatures": [{"sig": "eA=="}]}),
            "payload type",
        ),
    ],
)
def test_bad_envelopes_are_refused(envelope: str, match: str, keypair: Keys) -> None:
    with pytest.raises(rel.ReleaseError, match=match):
        rel.open_envelope(envelope, rel.BUNDLE_TYPE, keypair()[1], "the bundle")


def test_trusted_key_must_be_ec_pem() -> None:
    with pytest.raises(rel.ReleaseError, match="PEM public key"):
        rel.load_public_key(b"nonsense")


# ---------------------------------------------------------------- bundles and the reference set


def signed_bundle(version: str, priv: bytes, rec: dict[str, Any] | None = None) -> str:
    return rel.sign_envelope(
        rel.BUNDLE_TYPE, rel.canonical(rel.make_bundle(version, rec or record(), "dsse")), priv
    )


def test_bundle_round_trip_and_foreign_key(keypair: Keys) -> None:
    priv, pub = keypair()
    bundle = rel.read_bundle(signed_bundle("v1", priv), pub)
    assert bundle["version"] == "v1" and bundle["vkeys"] == {"semaphore20": "vk"}
    assert bundle["measurements"] == {"mr_td": "m", "rtmr1": "r1", "rtmr2": "r2"}
    with pytest.raises(rel.ReleaseError, match="trusted key"):
        rel.read_bundle(signed_bundle("v1", keypair()[0]), pub)


def test_rollout_then_retire_then_lookups(keypair: Keys) -> None:
    priv, pub = keypair()
    v1 = rel.read_bundle(signed_bundle("v1", priv), pub)
    v2 = rel.read_bundle(signed_bundle("v2", priv, record(probe="1.1", image_id="2" * 64)), pub)
    state, changed = rel.accept(rel.empty_set(), v1, "t0")
    assert changed
    state, changed = rel.accept(state, v1, "t0")
    assert not changed
    state, _unused = rel.accept(state, v2, "t1")
    assert rel.accepted(state) == ["v1", "v2"]
    assert rel.lookup(state, "1" * 64)[0] == "v1" and rel.lookup(state, "2" * 64)[0] == "v2"
    state, changed = rel.retire(state, "v1", "t2")
    assert changed and rel.accepted(state) == ["v2"]
    with pytest.raises(rel.ReleaseError, match="retired on t2"):
        rel.lookup(state, "1" * 64)
    with pytest.raises(rel.ReleaseError, match="in no version"):
        rel.lookup(state, "3" * 64)
    with pytest.raises(rel.ReleaseError, match="rollback"):
        rel.accept(state, v1, "t3")
    with pytest.raises(rel.ReleaseError, match="only accepted version"):
        rel.retire(state, "v2", "t3")
    with pytest.raises(rel.ReleaseError, match="unknown version v7"):
        rel.retire(state, "v7", "t3")


def test_an_older_version_than_a_retired_one_is_a_rollback(keypair: Keys) -> None:
    priv, pub = keypair()
    state: dict[str, Any] = rel.empty_set()
    for version, image in (("v2", "2"), ("v3", "3")):
        state, _unused = rel.accept(
            state, rel.read_bundle(signed_bundle(version, priv, record(image_id=image * 64)), pub), "t"
        )
    state, _unused = rel.retire(state, "v2", "t")
    with pytest.raises(rel.ReleaseError, match="older than the retired v2"):
        rel.accept(state, rel.read_bundle(signed_bundle("v1", priv), pub), "t")


def test_a_second_bundle_under_a_held_version_name_is_refused(keypair: Keys) -> None:
    priv, pub = keypair()
    state, _unused = rel.accept(rel.empty_set(), rel.read_bundle(signed_bundle("v1", priv), pub), "t")
    other = rel.read_bundle(signed_bundle("v1", priv, record(probe="9")), pub)
    with pytest.raises(rel.ReleaseError, match="another v1"):
        rel.accept(state, other, "t")


def test_a_set_file_of_another_kind_is_refused() -> None:
    with pytest.raises(rel.ReleaseError, match="schema 1"):
        rel.check_set({"versions": []})


def test_merged_policy_accepts_both_versions_files() -> None:
    merged = rel.merge_policies(
        [policy("d1") | {"excludes": ["^a$"]}, policy("d2") | {"excludes": ["^a$", "^b$"]}]
    )
    assert merged["digests"]["/usr/bin/kit-probe"] == ["d1", "d2"]
    assert merged["digests"]["/bin/sh"] == ["s"]
    assert merged["excludes"] == ["^a$", "^b$"]
    with pytest.raises(rel.ReleaseError, match="no runtime policy"):
        rel.merge_policies([])
