"""Receipts: a real proof, a SIMULATED quote over the TD's claims, the TD's signature; every field attacked.

The standalone command (bin/proof-receipt) and prove.yml run proof_receipt.verify; each check refuses with
its own name and exit code.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tdx_sim
from ansible_collections.teeproof.kit.plugins.module_utils import proof_receipt, td_claims, zk_prove
from conftest import ROOT, valid_input

NOW = 1760000000


@pytest.fixture(scope="module")
def job(
    circuit_dir: Path,
    toolchain: zk_prove.Toolchain,
    tmp_path_factory: pytest.TempPathFactory,
    td: dict[str, Any],
    nonce: bytes,
) -> dict[str, Any]:
    """One finished job: proof, public signals, bundle (quote + claims + signed receipt), reference."""
    out = tmp_path_factory.mktemp("job")
    input_text = json.dumps(valid_input()).encode()
    zk_prove.prove_job(circuit_dir, input_text, out, tools=toolchain)
    pki = tdx_sim.create_pki(NOW)
    (out / "collateral.json").write_text(json.dumps(tdx_sim.make_collateral(pki, NOW)))
    (out / "root.der").write_bytes(pki.root_der)
    m = tdx_sim.SimMeasurements(
        mr_td=b"\xaa" * 48, rtmr0=b"\xbb" * 48, rtmr1=b"\x11" * 48, rtmr2=b"\x22" * 48
    )
    claims = td["claims"]
    quote = tdx_sim.make_quote(pki, m, td_claims.report_data(nonce, claims))
    commit_key = os.urandom(32)
    body = td_claims.receipt_body(
        proof=(out / "proof.json").read_bytes(),
        public=(out / "public.json").read_bytes(),
        vkey=(circuit_dir / zk_prove.VKEY).read_bytes(),
        commitment=td_claims.input_commitment(commit_key, input_text),
        nonce=nonce,
        image_id_sha256=claims["image_id_sha256"],
        claims=claims,
    )
    receipt = td_claims.sign_receipt(body, td["receipt_private"])
    bundle = proof_receipt.make_bundle(base64.b64encode(quote).decode(), claims, nonce.hex(), receipt, True)
    reference = {
        "policy": {
            "mr_td": "aa" * 48,
            "rtmr1": "11" * 48,
            "rtmr2": "22" * 48,
            "required": ["mr_td", "rtmr0", "rtmr1", "rtmr2"],
            "waivers": {"rtmr0": "not computed in this test"},
        },
        "image_id_sha256": claims["image_id_sha256"],
        "sim_root_sha256": hashlib.sha256(pki.root_der).hexdigest(),
    }
    (out / "bundle.json").write_text(json.dumps(bundle))
    (out / "reference.json").write_text(json.dumps(reference))
    (out / "input.json").write_bytes(input_text)
    (out / "commit.key").write_text(commit_key.hex())
    public = json.loads((out / "public.json").read_text())
    (out / "expect.json").write_text(json.dumps([None, public[1]]))
    return {
        "dir": out,
        "bundle": bundle,
        "reference": reference,
        "vkey": circuit_dir / zk_prove.VKEY,
        "pki": pki,
        "report_data": td_claims.report_data(nonce, claims),
    }


def _inputs(job: dict[str, Any], **over: Any) -> proof_receipt.Inputs:
    d: Path = job["dir"]
    inputs = proof_receipt.load_inputs(
        bundle=d / "bundle.json",
        reference=d / "reference.json",
        proof=d / "proof.json",
        public=d / "public.json",
        vkey=job["vkey"],
        collateral=d / "collateral.json",
        expect=d / "expect.json",
        input_file=d / "input.json",
        commit_key_file=d / "commit.key",
        allow_simulated=True,
        sim_root=d / "root.der",
        now=NOW + 60,
    )
    for key, value in over.items():
        setattr(inputs, key, value)
    return inputs


def _refused(job: dict[str, Any], **over: Any) -> str:
    with pytest.raises(proof_receipt.ReceiptCheckFailed) as err:
        proof_receipt.verify(_inputs(job, **over))
    return err.value.check


def test_a_genuine_receipt_passes_every_check(job: dict[str, Any]) -> None:
    result = proof_receipt.verify(_inputs(job))
    assert result["ok"] and result["simulated"]
    assert result["public_signals_checked"] and result["input_commitment_checked"]


def _bundle_with(job: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    bundle: dict[str, Any] = copy.deepcopy(job["bundle"])
    node = bundle
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return bundle


@pytest.mark.parametrize("name", [f for f in td_claims.RECEIPT_FIELDS if f != "kit_receipt"])
def test_each_receipt_field_changed_truncated_or_missing_is_refused(job: dict[str, Any], name: str) -> None:
    original = job["bundle"]["receipt"][name]
    changed = ("f" if original[0] != "f" else "e") + original[1:]
    # changed: the signature no longer covers the body; truncated/missing: the field's form is wrong
    assert _refused(job, bundle=_bundle_with(job, ("receipt", name), changed)) == "signature"
    assert _refused(job, bundle=_bundle_with(job, ("receipt", name), original[:-1])) == "receipt"
    assert _refused(job, bundle=_bundle_with(job, ("receipt", name), KeyError)) == "receipt"


def test_bad_signature_is_refused(job: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(job["bundle"]["receipt"]["signature"]))
    sig[10] ^= 1
    flipped = base64.b64encode(bytes(sig)).decode()
    assert _refused(job, bundle=_bundle_with(job, ("receipt", "signature"), flipped)) == "signature"
    short = base64.b64encode(bytes(sig[:40])).decode()
    assert _refused(job, bundle=_bundle_with(job, ("receipt", "signature"), short)) == "receipt"
    assert _refused(job, bundle=_bundle_with(job, ("receipt", "signature"), KeyError)) == "receipt"


def test_receipt_signed_by_another_key_is_refused(job: dict[str, Any], td: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    body = {k: v for k, v in job["bundle"]["receipt"].items() if k != "signature"}
    forged = td_claims.sign_receipt(body, other)
    assert _refused(job, bundle=_bundle_with(job, ("receipt",), forged)) == "signature"


def test_swapped_proof_is_refused(job: dict[str, Any], tmp_path: Path) -> None:
    # The host plants another valid proof: its hash is not the one the TD signed.
    other = json.loads((job["dir"] / "proof.json").read_text())
    other["pi_a"][0] = str(int(other["pi_a"][0]) + 1)
    (tmp_path / "proof.json").write_text(json.dumps(other))
    assert _refused(job, proof=(tmp_path / "proof.json").read_bytes()) == "receipt"


def test_unexpected_public_signal_is_refused(job: dict[str, Any]) -> None:
    public = json.loads((job["dir"] / "public.json").read_text())
    assert _refused(job, expected_public=[None, str(int(public[1]) + 1)]) == "public_signals"
    assert _refused(job, expected_public=[None]) == "public_signals"


def test_receipt_for_another_input_is_refused(job: dict[str, Any]) -> None:
    assert _refused(job, input_data=b'{"a": "1"}') == "input_commitment"


def test_replayed_receipt_under_a_new_nonce_is_refused(job: dict[str, Any]) -> None:
    # An old bundle presented for a new session: the quote's REPORTDATA does not bind the new nonce.
    bundle = _bundle_with(job, ("nonce",), "ab" * 32)
    assert _refused(job, bundle=bundle) == "binding"


def test_claims_changed_after_the_quote_are_refused(job: dict[str, Any], other_td: dict[str, Any]) -> None:
    bundle = _bundle_with(job, ("claims", "agent", "mtls_cert"), other_td["cert_pem"])
    assert _refused(job, bundle=bundle) == "binding"
    assert _refused(job, bundle=_bundle_with(job, ("claims", "agent"), KeyError)) == "claims"
    assert _refused(job, bundle=_bundle_with(job, ("claims", "image_id_sha256"), "0" * 64)) == "claims"


def test_wrong_measurement_and_wrong_root_are_refused(job: dict[str, Any]) -> None:
    reference = {**job["reference"], "policy": {**job["reference"]["policy"], "rtmr2": "33" * 48}}
    assert _refused(job, reference=reference) == "measurements"
    unwaived = {**job["reference"], "policy": {**job["reference"]["policy"], "waivers": {}}}
    assert _refused(job, reference=unwaived) == "measurements"
    assert _refused(job, allow_simulated=False) == "quote"
    assert _refused(job, reference={**job["reference"], "sim_root_sha256": "0" * 64}) == "quote"


def test_rtmr0_is_checked_by_the_event_log_the_bundle_carries(job: dict[str, Any]) -> None:
    """A reference with an RTMR0 reference needs the quote's event log from the bundle: the TD's own passes;
    none, or the log of a launch with one more ACPI table, is refused on the measurements."""
    from ansible_collections.teeproof.kit.plugins.module_utils import rtmr0_reference as r0
    from ansible_collections.teeproof.kit.plugins.module_utils import tdx_measure

    def launch(tables: tuple[bytes, ...]) -> bytes:
        events = r0.simulated_rtmr0_events(r0.simulated_shape(2048, 2), b"", tables)
        return tdx_measure.write_event_log(events + tdx_measure.direct_boot_events(b"\x01" * 48, "ro", None))

    reference_log = launch(())
    rtmrs = tdx_measure.replay_log(reference_log)
    reference = copy.deepcopy(job["reference"])
    reference["policy"] = {
        "mr_td": "aa" * 48,
        "rtmr1": rtmrs[1].hex(),
        "rtmr2": rtmrs[2].hex(),
        "required": ["mr_td", "rtmr0", "rtmr1", "rtmr2"],
        "rtmr0_reference": r0.simulated_reference(2048, 2, b""),
    }

    def bundle(log: bytes, sent: bytes | None) -> dict[str, Any]:
        replayed = tdx_measure.replay_log(log)
        m = tdx_sim.SimMeasurements(b"\xaa" * 48, replayed[0], replayed[1], replayed[2])
        quote = tdx_sim.make_quote(job["pki"], m, job["report_data"])
        return {
            **job["bundle"],
            "quote_b64": base64.b64encode(quote).decode(),
            "event_log_b64": base64.b64encode(sent).decode() if sent is not None else None,
        }

    ok = proof_receipt.verify(_inputs(job, reference=reference, bundle=bundle(reference_log, reference_log)))
    assert ok["ok"] and ok["rtmr0_events"] == 4
    assert _refused(job, reference=reference, bundle=bundle(reference_log, None)) == "measurements"
    added = launch((b"SSDT" + bytes(32),))
    assert _refused(job, reference=reference, bundle=bundle(added, added)) == "measurements"
    not_b64 = {**bundle(reference_log, reference_log), "event_log_b64": "%%"}
    assert _refused(job, reference=reference, bundle=not_b64) == "input"


def test_the_command_names_the_check_and_exits_with_its_code(job: dict[str, Any], tmp_path: Path) -> None:
    d: Path = job["dir"]
    base = [
        sys.executable,
        str(ROOT / "bin" / "proof-receipt"),
        "verify",
        "--bundle",
        str(d / "bundle.json"),
        "--reference",
        str(d / "reference.json"),
        "--proof",
        str(d / "proof.json"),
        "--public",
        str(d / "public.json"),
        "--vkey",
        str(job["vkey"]),
        "--collateral",
        str(d / "collateral.json"),
        "--now",
        str(NOW + 60),
        "--expect",
        str(d / "expect.json"),
    ]
    sim = ["--allow-simulated", "--sim-root", str(d / "root.der")]
    ok = subprocess.run(base + sim, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "SIMULATED" in ok.stdout
    intel_only = subprocess.run(base, capture_output=True, text=True, check=False)
    assert intel_only.returncode == proof_receipt.EXIT["quote"] and "REFUSED (quote" in intel_only.stderr
    (tmp_path / "expect.json").write_text(json.dumps([None, "1"]))
    wrong = [*base[:-1], str(tmp_path / "expect.json"), *sim]
    bad = subprocess.run(wrong, capture_output=True, text=True, check=False)
    assert bad.returncode == proof_receipt.EXIT["public_signals"], bad.stderr
    missing = subprocess.run(
        [*base[:4], str(tmp_path / "nope.json"), *base[5:], *sim], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and "bundle" in missing.stderr
