"""Versioned guest image releases: the version record, the change report, signed reference bundles and the
client's reference set.

Build side (``guest_image_release``): every build that changes what a TD would measure or run becomes a
version (``v1``, ``v2``, ...) with its own folder. Its record lists the packages, the kernel, initrd and
command line, the dm-verity root hash, the expected TDX measurements, the runtime policy (whose ``digests``
are the image's per-file SHA-256s) and the circuit artifacts. The change report compares it with the version
before it. The reference bundle (measurements, runtime policy digest, verification key digests) is signed by
the operator as a DSSE envelope, the same envelope Keylime signs runtime policies with.

Client side (``reference_set``): bundles are accepted only with a valid signature by the trusted key; a
version is ``accepted`` or ``retired``, a retired version never comes back (no rollback), and a TD is checked
against the version its quoted image id names, so a retired image is refused with that reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
except ImportError:  # the modules report it with missing_required_lib
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

BUNDLE_TYPE = "application/vnd.teeproof.kit.reference-bundle+json"
# Keylime's payload type for DSSE-signed runtime policies (keylime/policy/sign_runtime_policy.py).
KEYLIME_POLICY_TYPE = "application/vnd.keylime+json"
MEASUREMENTS = ("mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
VERSION_RE = re.compile(r"^v[1-9][0-9]{0,5}$")
SCHEMA = 1


class ReleaseError(ValueError):
    """A release, bundle or reference-set operation was refused; the message says why and what to do."""


# ---------------------------------------------------------------- canonical JSON and digests


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot read {path}: {exc}") from exc


def write_atomic(path: Path, text: str) -> None:
    """Write a new file and rename it over ``path``: a reader or hard link never sees half a file."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)


def policy_content_sha256(policy: Mapping[str, Any]) -> str:
    """SHA-256 of a runtime policy without its ``meta`` (keylime-policy stamps the time there)."""
    return sha256(canonical({k: v for k, v in policy.items() if k != "meta"}))


def version_number(version: str) -> int:
    if not VERSION_RE.match(version):
        raise ReleaseError(f"{version!r} is not a version name (v1, v2, ...)")
    return int(version[1:])


# ---------------------------------------------------------------- the version record (build side)


def release_record(
    manifest: Mapping[str, Any],
    measurements: Mapping[str, Any],
    policy: Mapping[str, Any],
    circuits: Mapping[str, Mapping[str, str]],
    policy_sha256: str,
    firmware_sha256: str = "",
) -> dict[str, Any]:
    """What one image version is: everything a verifier checks or a reviewer compares."""
    boot = manifest.get("boot_chain") or {}
    verity = manifest.get("verity") or {}
    if not verity.get("root_hash") or not boot.get("cmdline"):
        raise ReleaseError("manifest.json has no verity root hash or command line: rebuild the image")
    return {
        "packages": dict(sorted((manifest.get("packages") or {}).items())),
        "kernel": {
            "version": manifest.get("kernel_version", ""),
            "sha384": boot.get("kernel_sha384", ""),
            "initrd_sha384": boot.get("initrd_sha384", ""),
            "cmdline": boot["cmdline"],
        },
        "root_hash": verity["root_hash"],
        "rootfs_tree_sha256": manifest.get("rootfs_tree_sha256", ""),
        "image_id_sha256": (manifest.get("image_id") or {}).get("sha256", ""),
        "measurements": {k: measurements[k] for k in MEASUREMENTS if measurements.get(k)},
        "firmware_sha256": firmware_sha256 if measurements.get("mr_td") else "",
        "runtime_policy": {
            "sha256": policy_sha256,
            "content_sha256": policy_content_sha256(policy),
            "files": len(policy.get("digests") or {}),
        },
        "circuits": {name: dict(sorted(files.items())) for name, files in sorted(circuits.items())},
    }


def content_id(record: Mapping[str, Any]) -> str:
    """Names what a TD on this image measures and runs (not when or where it was built)."""
    keep = {
        k: record[k]
        for k in ("packages", "kernel", "root_hash", "measurements", "circuits", "image_id_sha256")
    }
    keep["runtime_policy"] = record["runtime_policy"]["content_sha256"]
    return sha256(canonical(keep))


def next_version(existing: Iterable[str]) -> str:
    numbers = [version_number(v) for v in existing]
    return f"v{max(numbers, default=0) + 1}"


# ---------------------------------------------------------------- the change report


def _dict_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "added": {k: new[k] for k in sorted(new) if k not in old},
        "removed": {k: old[k] for k in sorted(old) if k not in new},
        "changed": {k: [old[k], new[k]] for k in sorted(new) if k in old and old[k] != new[k]},
    }


def _measured(record: Mapping[str, Any]) -> dict[str, str]:
    flat = {f"tdx.{k}": str(v) for k, v in record.get("measurements", {}).items()}
    kernel = record.get("kernel", {})
    flat.update(
        {
            "kernel.sha384": kernel.get("sha384", ""),
            "kernel.version": kernel.get("version", ""),
            "initrd.sha384": kernel.get("initrd_sha384", ""),
            "cmdline": kernel.get("cmdline", ""),
            "verity.root_hash": record.get("root_hash", ""),
            "image_id.sha256": record.get("image_id_sha256", ""),
            "runtime_policy.content_sha256": record.get("runtime_policy", {}).get("content_sha256", ""),
        }
    )
    for name, files in record.get("circuits", {}).items():
        flat.update({f"circuit.{name}.{f}": d for f, d in files.items()})
    return flat


def change_report(
    old_version: str | None,
    old: Mapping[str, Any] | None,
    new_version: str,
    new: Mapping[str, Any],
    old_files: Mapping[str, Any],
    new_files: Mapping[str, Any],
) -> dict[str, Any]:
    """Packages added, removed or upgraded; files added, removed or changed (the root filesystem's entries:
    type, mode, owner, content); measurements moved."""
    old = old or {}
    pkgs = _dict_diff(old.get("packages", {}), new.get("packages", {}))

    def norm(files: Mapping[str, Any]) -> dict[str, Any]:
        return {k: sorted(v) if isinstance(v, list) else v for k, v in files.items()}

    files = _dict_diff(norm(old_files), norm(new_files))
    moved = _dict_diff(_measured(old), _measured(new)) if old else {"added": {}, "removed": {}, "changed": {}}
    return {
        "from": old_version,
        "to": new_version,
        "first": old_version is None,
        "packages": {"added": pkgs["added"], "removed": pkgs["removed"], "upgraded": pkgs["changed"]},
        "files": {
            "added": sorted(files["added"]),
            "removed": sorted(files["removed"]),
            "changed": sorted(files["changed"]),
        },
        "measurements": {k: {"from": v[0], "to": v[1]} for k, v in moved["changed"].items()}
        | {k: {"from": None, "to": v} for k, v in moved["added"].items()}
        | {k: {"from": v, "to": None} for k, v in moved["removed"].items()},
    }


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:12] + "..." + text[-8:]


def format_report(report: Mapping[str, Any], limit: int = 20) -> list[str]:
    """The change report as lines for the build's output."""
    if report["first"]:
        return [f"{report['to']}: first version ({len(report['files']['added'])} files)"]
    lines = [f"{report['from']} -> {report['to']}"]
    pk = report["packages"]
    lines += [f"  package upgraded: {k} {v[0]} -> {v[1]}" for k, v in pk["upgraded"].items()]
    lines += [f"  package added:    {k} {v}" for k, v in pk["added"].items()]
    lines += [f"  package removed:  {k} {v}" for k, v in pk["removed"].items()]
    for kind in ("changed", "added", "removed"):
        names = report["files"][kind]
        lines += [f"  file {kind}: {n}" for n in names[:limit]]
        if len(names) > limit:
            lines.append(f"  ... and {len(names) - limit} more files {kind} (changes.json lists them all)")
    lines += [
        f"  measurement moved: {k} {_short(v['from'])} -> {_short(v['to'])}"
        for k, v in report["measurements"].items()
    ]
    if len(lines) == 1:
        lines.append("  no change")
    return lines


# ---------------------------------------------------------------- DSSE envelopes (ECDSA P-256, as Keylime's)


def _pae(payload_type: str, payload: bytes) -> bytes:
    return b"DSSEv1 %d %b %d %b" % (len(payload_type), payload_type.encode(), len(payload), payload)


def load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ReleaseError(f"the trusted key is not a PEM public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ReleaseError("the trusted key is not an EC public key (keylime-policy signs with ECDSA P-256)")
    return key


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """Keylime's key id: SHA-256 of the public key's PEM (keylime/dsse/ecdsa.py)."""
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return sha256(pem)


def sign_envelope(payload_type: str, payload: bytes, private_pem: bytes) -> str:
    key = serialization.load_pem_private_key(private_pem, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ReleaseError("the signing key is not an EC private key")
    sig = key.sign(_pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
    return json.dumps(
        {
            "payload": base64.standard_b64encode(payload).decode(),
            "payloadType": payload_type,
            "signatures": [
                {"keyid": key_id(key.public_key()), "sig": base64.standard_b64encode(sig).decode()}
            ],
        }
    )


def open_envelope(text: str | bytes, payload_type: str, trusted_pem: bytes, what: str) -> bytes:
    """The payload of a DSSE envelope signed by the trusted key; ReleaseError if unsigned, foreign or bad."""
    key = load_public_key(trusted_pem)
    try:
        env = json.loads(text)
    except ValueError as exc:
        raise ReleaseError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(env, dict) or "payload" not in env:
        raise ReleaseError(f"{what} is not signed (no DSSE envelope): sign it with the operator's key")
    if env.get("payloadType") != payload_type:
        raise ReleaseError(f"{what} has payload type {env.get('payloadType')!r}, not {payload_type!r}")
    try:
        payload = base64.b64decode(env["payload"], validate=True)
        sigs = [base64.b64decode(s["sig"], validate=True) for s in env.get("signatures") or []]
    except (binascii.Error, KeyError, TypeError) as exc:
        raise ReleaseError(f"{what}: the envelope's payload or signature is not base64") from exc
    if not sigs:
        raise ReleaseError(f"{what} carries no signature: sign it with the operator's key")
    pae = _pae(payload_type, payload)
    for sig in sigs:
        try:
            key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
            return payload
        except InvalidSignature:
            continue
    raise ReleaseError(
        f"{what}: no signature by the trusted key {key_id(key)[:16]} (a foreign key or a changed payload);"
        " nothing was changed"
    )


# ---------------------------------------------------------------- the reference bundle


def make_bundle(version: str, record: Mapping[str, Any], policy_dsse_sha256: str) -> dict[str, Any]:
    version_number(version)
    return {
        "schema": SCHEMA,
        "kind": "tee-proof-kit reference bundle",
        "version": version,
        "content_id": content_id(record),
        "image_id_sha256": record["image_id_sha256"],
        "root_hash": record["root_hash"],
        "measurements": dict(record["measurements"]),
        "firmware_sha256": record.get("firmware_sha256", ""),
        "cmdline": record["kernel"]["cmdline"],
        "runtime_policy": dict(record["runtime_policy"]) | {"dsse_sha256": policy_dsse_sha256},
        "vkeys": {
            name: files["verification_key.json"]
            for name, files in record["circuits"].items()
            if "verification_key.json" in files
        },
    }


def read_bundle(envelope: str | bytes, trusted_pem: bytes) -> dict[str, Any]:
    bundle = json.loads(open_envelope(envelope, BUNDLE_TYPE, trusted_pem, "the reference bundle"))
    if not isinstance(bundle, dict) or bundle.get("schema") != SCHEMA:
        raise ReleaseError(
            f"the reference bundle has schema {bundle.get('schema') if isinstance(bundle, dict) else '?'},"
            f" not {SCHEMA}"
        )
    for key in ("version", "content_id", "image_id_sha256", "measurements", "runtime_policy"):
        if key not in bundle:
            raise ReleaseError(f"the reference bundle lacks {key!r}")
    version_number(bundle["version"])
    return bundle


# ---------------------------------------------------------------- the client's reference set


def empty_set() -> dict[str, Any]:
    return {"schema": SCHEMA, "versions": {}}


def check_set(state: Mapping[str, Any]) -> None:
    if state.get("schema") != SCHEMA or not isinstance(state.get("versions"), dict):
        raise ReleaseError("the reference set file is not a tee-proof-kit reference set (schema 1)")


def accepted(state: Mapping[str, Any]) -> list[str]:
    return sorted((v for v, e in state["versions"].items() if e["state"] == "accepted"), key=version_number)


def accept(state: Mapping[str, Any], bundle: Mapping[str, Any], when: str) -> tuple[dict[str, Any], bool]:
    """The set with ``bundle``'s version accepted, and whether that changed anything."""
    check_set(state)
    version = bundle["version"]
    versions = dict(state["versions"])
    have = versions.get(version)
    retired = [v for v, e in versions.items() if e["state"] == "retired"]
    if have and have["state"] == "retired":
        raise ReleaseError(
            f"{version} was retired on {have.get('retired_at', '?')}: a rollback to it is refused"
        )
    if have and have["bundle"]["content_id"] != bundle["content_id"]:
        raise ReleaseError(
            f"the reference set already holds another {version} (content {have['bundle']['content_id'][:16]})"
        )
    newest_retired = max((version_number(v) for v in retired), default=0)
    if version_number(version) < newest_retired:
        raise ReleaseError(f"{version} is older than the retired v{newest_retired}: a rollback is refused")
    if have:
        return dict(state), False
    versions[version] = {"state": "accepted", "accepted_at": when, "bundle": dict(bundle)}
    return {"schema": SCHEMA, "versions": versions}, True


def retire(state: Mapping[str, Any], version: str, when: str) -> tuple[dict[str, Any], bool]:
    check_set(state)
    versions = dict(state["versions"])
    have = versions.get(version)
    if have is None:
        raise ReleaseError(
            f"unknown version {version}: the reference set holds {', '.join(sorted(versions)) or 'none'}"
        )
    if have["state"] == "retired":
        return dict(state), False
    if accepted(state) == [version]:
        raise ReleaseError(f"{version} is the only accepted version: accept its successor before retiring it")
    versions[version] = dict(have) | {"state": "retired", "retired_at": when}
    return {"schema": SCHEMA, "versions": versions}, True


def lookup(state: Mapping[str, Any], image_id_sha256: str) -> tuple[str, dict[str, Any]]:
    """The accepted version whose image id a TD claims; ReleaseError naming why not (retired or unknown)."""
    check_set(state)
    entries = sorted(state["versions"].items(), key=lambda item: item[1]["state"] != "accepted")
    for version, entry in entries:
        if entry["bundle"]["image_id_sha256"] == image_id_sha256:
            if entry["state"] != "accepted":
                raise ReleaseError(
                    f"the TD runs image {version} (image id {image_id_sha256[:16]}),"
                    f" retired on {entry.get('retired_at', '?')}"
                )
            return version, dict(entry["bundle"])
    raise ReleaseError(f"the TD's image id {image_id_sha256[:16]} is in no version of the reference set")


def merge_policies(policies: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One runtime policy that accepts every given one's files: digests are lists, so old and new coexist."""
    merged: dict[str, Any] = {}
    digests: dict[str, list[str]] = {}
    excludes: list[str] = []
    for policy in policies:
        for key, value in policy.items():
            if key not in ("digests", "excludes", "meta"):
                merged.setdefault(key, value)
        for path, values in (policy.get("digests") or {}).items():
            bucket = digests.setdefault(path, [])
            bucket.extend(v for v in values if v not in bucket)
        excludes.extend(e for e in policy.get("excludes") or [] if e not in excludes)
    if not digests:
        raise ReleaseError("no runtime policy to merge")
    merged["meta"] = {"version": 1, "generator": 0, "timestamp": ""}
    merged["digests"] = {k: digests[k] for k in sorted(digests)}
    merged["excludes"] = excludes
    return merged
