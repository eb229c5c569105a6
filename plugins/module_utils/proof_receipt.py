"""Check a proof receipt end to end: quote, measurements, binding, receipt signature, proof, public signals.

What a thin client or a third party runs (``bin/proof-receipt verify``), and what ``playbooks/prove.yml`` runs
before it accepts a proof. The bundle (``receipt-bundle.json``, written next to the proof) holds what the TD
returned: its quote, the claims it bound into the quote, the nonce the client drew, and the receipt the TD
signed. The reference (``reference.json``) holds what the client expects of the image: the measurement policy
(MRTD, RTMR1, RTMR2 as computed from the image's boot artifacts) and the image identity digest.

Every check has its own exit code, and the error names it:

====  ==================  ===================================================================
code  check               refused when
====  ==================  ===================================================================
0     (all)               -
2     input               a file is missing or malformed (bundle, reference, proof, ...)
10    quote               the signature chain, TCB status, debug bit (dcap-qvl + policy) fail
11    measurements        MRTD/RTMRs differ from the reference
12    binding             REPORTDATA is not SHA-512(nonce || SHA-512(claims))
13    claims              the claims are malformed or name another image
14    signature           the receipt is not signed by the receipt key bound in the quote
15    receipt             a receipt field differs (proof, public signals, vkey, nonce, claims)
16    proof               the Groth16 proof does not verify under the verification key
17    public_signals      a public signal differs from the value the client expects
18    input_commitment    the receipt commits to another input
====  ==================  ===================================================================
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.teeproof.kit.plugins.module_utils import td_claims

EXIT = {
    "input": 2,
    "quote": 10,
    "measurements": 11,
    "binding": 12,
    "claims": 13,
    "signature": 14,
    "receipt": 15,
    "proof": 16,
    "public_signals": 17,
    "input_commitment": 18,
}
MEASUREMENT_CODES = ("mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "measurement_missing")
BUNDLE_VERSION = 1


class ReceiptCheckFailed(Exception):
    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.code = EXIT[check]


@dataclass
class Inputs:
    bundle: dict[str, Any]
    reference: dict[str, Any]
    proof: bytes
    public: bytes
    vkey: bytes
    vkey_path: Path
    proof_path: Path
    public_path: Path
    collateral: Path | None
    expected_public: list[str | None] | None = None
    input_data: bytes | None = None
    commit_key: bytes | None = None
    allow_simulated: bool = False
    sim_root: bytes | None = None
    now: int = field(default_factory=lambda: int(time.time()))


def make_bundle(
    quote_b64: str,
    claims: Mapping[str, Any],
    nonce_hex: str,
    receipt: Mapping[str, Any],
    simulated: bool,
    event_log_b64: str | None = None,
) -> dict[str, Any]:
    return {
        "kit_receipt_bundle": BUNDLE_VERSION,
        "simulated": simulated,
        "nonce": nonce_hex,
        "claims": dict(claims),
        "quote_b64": quote_b64,
        "event_log_b64": event_log_b64,
        "receipt": dict(receipt),
    }


def event_log_from(doc: Mapping[str, Any]) -> bytes | None:
    """The CC event log a quote came with (``event_log_b64``, base64 or absent/null)."""
    text = doc.get("event_log_b64")
    if text is None:
        return None
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise ReceiptCheckFailed("input", "event_log_b64 is not base64") from None


def _json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReceiptCheckFailed("input", f"{what} {path}: {exc}") from None


def _bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ReceiptCheckFailed("input", f"{what} {path}: {exc.strerror}") from None


def load_inputs(
    *,
    bundle: Path,
    reference: Path,
    proof: Path,
    public: Path,
    vkey: Path,
    collateral: Path | None,
    expect: Path | None = None,
    input_file: Path | None = None,
    commit_key_file: Path | None = None,
    allow_simulated: bool = False,
    sim_root: Path | None = None,
    now: int | None = None,
) -> Inputs:
    expected = None
    if expect is not None:
        data = _json_file(expect, "expected public signals")
        if not isinstance(data, list) or not all(v is None or isinstance(v, str) for v in data):
            raise ReceiptCheckFailed("input", f"{expect}: a JSON list of strings (null: any value) expected")
        expected = data
    if (input_file is None) != (commit_key_file is None):
        raise ReceiptCheckFailed("input", "--input and --commit-key go together")
    commit_key = None
    if commit_key_file is not None:
        try:
            commit_key = bytes.fromhex(_bytes(commit_key_file, "commit key").decode().strip())
        except (ValueError, UnicodeDecodeError):
            raise ReceiptCheckFailed("input", f"{commit_key_file}: not a hex commit key") from None
    return Inputs(
        bundle=_json_file(bundle, "bundle"),
        reference=_json_file(reference, "reference"),
        proof=_bytes(proof, "proof"),
        public=_bytes(public, "public signals"),
        vkey=_bytes(vkey, "verification key"),
        vkey_path=vkey,
        proof_path=proof,
        public_path=public,
        collateral=collateral,
        expected_public=expected,
        input_data=_bytes(input_file, "input") if input_file is not None else None,
        commit_key=commit_key,
        allow_simulated=allow_simulated,
        sim_root=_bytes(sim_root, "simulated root") if sim_root is not None else None,
        now=now if now is not None else int(time.time()),
    )


def _bundle_fields(bundle: Mapping[str, Any]) -> tuple[bytes, dict[str, Any], bytes, Any]:
    if not isinstance(bundle, dict) or bundle.get("kit_receipt_bundle") != BUNDLE_VERSION:
        raise ReceiptCheckFailed("input", f"not a receipt bundle (kit_receipt_bundle {BUNDLE_VERSION})")
    try:
        quote = base64.b64decode(str(bundle["quote_b64"]), validate=True)
        nonce = td_claims.nonce_from_hex(str(bundle["nonce"]))
        claims = bundle["claims"]
        receipt = bundle["receipt"]
    except KeyError as exc:
        raise ReceiptCheckFailed("input", f"bundle lacks {exc.args[0]}") from None
    except (ValueError, td_claims.ClaimsError) as exc:
        raise ReceiptCheckFailed("input", f"bundle: {exc}") from None
    if not isinstance(claims, dict):
        raise ReceiptCheckFailed("claims", "not a JSON object")
    return quote, claims, nonce, receipt


def check_quote(
    inputs: Inputs,
    quote: bytes,
    nonce: bytes,
    claims: Mapping[str, Any],
    event_log: bytes | None = None,
) -> dict[str, Any]:
    """The quote against the reference's policy (with its RTMR0 reference, the event log is required)."""
    from ansible_collections.teeproof.kit.plugins.module_utils import tdx_verify

    policy_map = inputs.reference.get("policy")
    if not isinstance(policy_map, dict):
        raise ReceiptCheckFailed("input", "reference lacks its measurement policy")
    if inputs.collateral is None:
        raise ReceiptCheckFailed("input", "--collateral is required to check the quote's chain")
    try:
        policy = tdx_verify.policy_from_mapping(policy_map)
        collateral = tdx_verify.load_collateral(inputs.collateral)
    except (tdx_verify.PolicyError, tdx_verify.CollateralError) as exc:
        raise ReceiptCheckFailed("input", str(exc)) from None
    pin = inputs.reference.get("sim_root_sha256")
    trust = tdx_verify.TrustAnchors(
        allow_simulated=inputs.allow_simulated,
        simulated_root_der=inputs.sim_root,
        simulated_root_sha256=pin if isinstance(pin, str) else None,
    )
    verdict = tdx_verify.verify_quote(
        quote,
        collateral,
        inputs.now,
        policy,
        nonce,
        td_claims.claims_digest(claims),
        trust,
        event_log=event_log,
    )
    if not verdict.ok:
        codes = verdict.codes()
        text = tdx_verify.reasons_text(verdict.reasons)
        others = [c for c in codes if c not in (*MEASUREMENT_CODES, "report_data")]
        if others:
            raise ReceiptCheckFailed("quote", text)
        if any(c in MEASUREMENT_CODES for c in codes):
            raise ReceiptCheckFailed("measurements", text)
        raise ReceiptCheckFailed("binding", text)
    return verdict.to_dict()


def check_public(public: bytes, expected: Sequence[str | None] | None) -> None:
    if expected is None:
        return
    try:
        signals = json.loads(public)
    except ValueError:
        raise ReceiptCheckFailed("public_signals", "public.json is not JSON") from None
    if not isinstance(signals, list) or len(signals) != len(expected):
        raise ReceiptCheckFailed(
            "public_signals",
            f"{len(signals) if isinstance(signals, list) else '?'} signals, expected {len(expected)}",
        )
    for index, (got, want) in enumerate(zip(signals, expected, strict=True)):
        if want is not None and str(got) != want:
            raise ReceiptCheckFailed(
                "public_signals", f"signal {index} is {str(got)[:24]}..., the client expects {want[:24]}..."
            )


def check_proof(inputs: Inputs) -> str:
    from ansible_collections.teeproof.kit.plugins.module_utils import zk_prove

    try:
        return zk_prove.verify_proof(
            inputs.vkey_path, inputs.proof_path, inputs.public_path, "auto", zk_prove.Toolchain.discover()
        )
    except zk_prove.ZkProveError as exc:
        raise ReceiptCheckFailed("proof", str(exc)) from None


def verify(inputs: Inputs, check_groth16: bool = True) -> dict[str, Any]:
    """Run every check in order; raise ReceiptCheckFailed at the first that fails."""
    quote, claims_doc, nonce, receipt = _bundle_fields(inputs.bundle)
    try:
        claims = td_claims.parse_claims(claims_doc)
    except td_claims.ClaimsError as exc:
        raise ReceiptCheckFailed("claims", str(exc)) from None
    want_image = inputs.reference.get("image_id_sha256")
    if claims.image_id_sha256 != want_image:
        raise ReceiptCheckFailed(
            "claims",
            f"image_id_sha256: the TD names image {claims.image_id_sha256[:16]}..., not the reference",
        )
    verdict = check_quote(inputs, quote, nonce, claims_doc, event_log_from(inputs.bundle))
    try:
        body, signature = td_claims.parse_receipt(receipt)
    except td_claims.ClaimsError as exc:
        raise ReceiptCheckFailed("receipt", str(exc)) from None
    try:
        td_claims.verify_receipt_signature(body, signature, claims.receipt_key)
    except td_claims.ClaimsError as exc:
        raise ReceiptCheckFailed("signature", str(exc)) from None
    expected_body = {
        "proof_sha256": td_claims.sha256_hex(inputs.proof),
        "public_sha256": td_claims.sha256_hex(inputs.public),
        "vkey_sha256": td_claims.sha256_hex(inputs.vkey),
        "nonce": nonce.hex(),
        "image_id_sha256": claims.image_id_sha256,
        "claims_sha512": td_claims.claims_digest(claims_doc).hex(),
    }
    try:
        td_claims.compare_receipt(body, expected_body)
    except td_claims.ClaimsError as exc:
        raise ReceiptCheckFailed("receipt", str(exc)) from None
    verifier = check_proof(inputs) if check_groth16 else "skipped"
    check_public(inputs.public, inputs.expected_public)
    committed = False
    if inputs.input_data is not None and inputs.commit_key is not None:
        if td_claims.input_commitment(inputs.commit_key, inputs.input_data) != body["input_commitment"]:
            raise ReceiptCheckFailed("input_commitment", "the receipt commits to another input than yours")
        committed = True
    return {
        "ok": True,
        "simulated": bool(verdict.get("simulated")),
        "agent_uuid": claims.uuid,
        "image_id_sha256": claims.image_id_sha256,
        "verifier": verifier,
        "public_signals_checked": inputs.expected_public is not None,
        "input_commitment_checked": committed,
        "tcb_status": verdict.get("tcb_status"),
        "rtmr0_events": verdict.get("rtmr0_events"),
    }
