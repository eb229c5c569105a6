"""Verify TDX quotes: Intel's signature chain and TCB status (dcap-qvl) plus the kit's policy.

Two layers, both always evaluated so the verdict lists *every* reason a quote fails:

1. ``dcap_qvl.verify`` (Intel SGX Root CA built into dcap-qvl) or, only when simulation is
   explicitly enabled, ``dcap_qvl.verify_with_root_ca`` with the lab's simulated test root.
   Collateral is the stored ``QuoteCollateralV3`` JSON and the time is a parameter.
2. A policy on the TD report: allowed TCB statuses, debug forbidden, SEPT_VE_DISABLE required,
   expected MRTD / RTMR0-3 (and optionally MRSEAM, MRCONFIGID, MROWNER, MROWNERCONFIG),
   REPORTDATA == SHA-512(nonce || binding data), forbidden advisory ids.

SEPT_VE_DISABLE and dcap-qvl 0.7.0: dcap-qvl itself rejects any TD whose attributes lack
SEPT_VE_DISABLE (also debug TDs and TDs with reserved attribute bits) and its Python API has no
switch to turn that off.  ``require_sept_ve_disable: false`` therefore only relaxes the kit's own
check; a quote from such a TD still fails at the dcap-qvl layer and the verdict says so
(reason code ``dcap_qvl`` with a note that the policy cannot relax it).  Verifying such TDs
(for example Azure TDX CVMs, td_attributes = 0) needs another verifier.

If the signature check fails, the policy checks still run on the *unauthenticated* parsed
fields so the operator sees every problem; the verdict is then never ``ok``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # the Ansible way: a module that needs it says so (missing_required_lib) instead of failing to import
    import dcap_qvl

    HAS_DCAP_QVL = True
    DCAP_QVL_IMPORT_ERROR: str | None = None
except ImportError as _exc:
    HAS_DCAP_QVL = False
    DCAP_QVL_IMPORT_ERROR = str(_exc)
from ansible_collections.teeproof.kit.plugins.module_utils import rtmr0_reference
from ansible_collections.teeproof.kit.plugins.module_utils.tdx_quote import (
    SIM_MARKER,
    Quote,
    QuoteFormatError,
    TdReport,
    parse_quote,
    quote_to_dict,
)

TCB_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
MEASUREMENT_FIELDS = (
    "mr_td",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "mr_seam",
    "mr_config_id",
    "mr_owner",
    "mr_owner_config",
)
_BOOL_KEYS = ("allow_debug", "require_sept_ve_disable")
_LIST_KEYS = ("allowed_tcb_statuses", "forbidden_advisory_ids", "required")
# rtmr0_reference: RTMR0's events of a trusted reference launch (rtmr0_reference.record); with it, RTMR0 is
# checked event by event against the quote's event log instead of against one value.
POLICY_KEYS = frozenset((*MEASUREMENT_FIELDS, *_BOOL_KEYS, *_LIST_KEYS, "waivers", "rtmr0_reference"))
SEPT_NOTE = (
    "dcap-qvl 0.7.0 enforces SEPT_VE_DISABLE (and no debug / reserved TD attribute bits) itself; "
    "the kit's policy cannot relax that check"
)


class PolicyError(ValueError):
    """The policy document is malformed; the message names the offending key."""


class CollateralError(ValueError):
    """The collateral JSON cannot be read or is not dcap-qvl QuoteCollateralV3 JSON."""


@dataclass(frozen=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True)
class Policy:
    allowed_tcb_statuses: tuple[str, ...] = ("UpToDate",)
    allow_debug: bool = False
    require_sept_ve_disable: bool = True
    forbidden_advisory_ids: tuple[str, ...] = ()
    expected: Mapping[str, bytes] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    waivers: Mapping[str, str] = field(default_factory=dict)
    rtmr0_reference: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TrustAnchors:
    """Which root the verifier accepts: Intel's, or (lab only) the simulated test root and nothing else.

    ``simulated_root_sha256`` pins the simulated root: a root file whose SHA-256 differs is refused, so a
    root that someone swapped on the way (e.g. in a host-writable run folder) signs nothing."""

    allow_simulated: bool = False
    simulated_root_der: bytes | None = None
    simulated_root_sha256: str | None = None


@dataclass
class Verdict:
    ok: bool
    simulated: bool
    authenticated: bool
    tcb_status: str | None
    advisory_ids: list[str]
    reasons: list[Reason]
    warnings: list[str]
    report_data_checked: bool
    quote: dict[str, Any] | None
    waivers: dict[str, str] = field(default_factory=dict)
    rtmr0_events: int | None = None  # RTMR0's events checked against the policy's reference, when it has one

    def to_dict(self) -> dict[str, Any]:
        return {
            "rtmr0_events": self.rtmr0_events,
            "waivers": dict(self.waivers),
            "unchecked": sorted(self.waivers),
            "ok": self.ok,
            "simulated": self.simulated,
            "authenticated": self.authenticated,
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
            "warnings": list(self.warnings),
            "report_data_checked": self.report_data_checked,
            "quote": self.quote,
        }

    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]


# ---------------------------------------------------------------- policy loading


def _hex_field(key: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise PolicyError(f"policy key {key!r}: expected a hex string, got {type(value).__name__}")
    text = value.strip().lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise PolicyError(f"policy key {key!r}: not valid hex") from exc
    if len(raw) != 48:
        raise PolicyError(f"policy key {key!r}: expected 48 bytes (96 hex digits), got {len(raw)} bytes")
    return raw


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"policy key {key!r}: expected a list of strings")
    return tuple(value)


def _statuses(value: Any) -> tuple[str, ...]:
    statuses = _str_list("allowed_tcb_statuses", value)
    unknown = [s for s in statuses if s not in TCB_STATUSES]
    if unknown:
        raise PolicyError(f"policy key 'allowed_tcb_statuses': unknown status {unknown[0]!r}")
    if not statuses:
        raise PolicyError("policy key 'allowed_tcb_statuses': must not be empty")
    return statuses


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"policy key {key!r}: expected true or false, got {value!r}")
    return value


def policy_from_mapping(data: Mapping[str, Any]) -> Policy:
    """Build a :class:`Policy`; unknown keys and bad values raise :class:`PolicyError` naming the key."""
    if not isinstance(data, Mapping):
        raise PolicyError("policy must be a mapping")
    for key in data:
        if key not in POLICY_KEYS:
            raise PolicyError(f"unknown policy key {key!r} (allowed: {', '.join(sorted(POLICY_KEYS))})")
    expected = {k: _hex_field(k, data[k]) for k in MEASUREMENT_FIELDS if data.get(k) is not None}
    required = _measurement_names("required", data.get("required", []))
    waivers = _waivers(data.get("waivers", {}))
    both = sorted(set(waivers) & set(expected))
    if both:
        raise PolicyError(f"policy key 'waivers': {both[0]!r} has an expected value; drop the waiver")
    reference = data.get("rtmr0_reference")
    if reference is not None:
        try:
            rtmr0_reference.parse_reference(reference)
        except rtmr0_reference.Rtmr0Error as exc:
            raise PolicyError(f"policy key 'rtmr0_reference': {exc}") from None
        if "rtmr0" in waivers or "rtmr0" in expected:
            raise PolicyError(
                "policy key 'rtmr0_reference': rtmr0 is then checked by it; drop its waiver or value"
            )
    return Policy(
        allowed_tcb_statuses=_statuses(data.get("allowed_tcb_statuses", ["UpToDate"])),
        allow_debug=_bool("allow_debug", data.get("allow_debug", False)),
        require_sept_ve_disable=_bool("require_sept_ve_disable", data.get("require_sept_ve_disable", True)),
        forbidden_advisory_ids=_str_list("forbidden_advisory_ids", data.get("forbidden_advisory_ids", [])),
        expected=expected,
        required=required,
        waivers=waivers,
        rtmr0_reference=dict(reference) if reference is not None else None,
    )


def _measurement_names(key: str, value: Any) -> tuple[str, ...]:
    names = _str_list(key, value)
    unknown = [n for n in names if n not in MEASUREMENT_FIELDS]
    if unknown:
        raise PolicyError(
            f"policy key {key!r}: {unknown[0]!r} is not a measurement ({', '.join(MEASUREMENT_FIELDS)})"
        )
    return names


def _waivers(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise PolicyError("policy key 'waivers': expected a mapping of measurement name to reason")
    _measurement_names("waivers", list(value))
    for name, reason in value.items():
        if not isinstance(reason, str) or not reason.strip():
            raise PolicyError(f"policy key 'waivers': {name!r} needs a reason (a non-empty string)")
    return {str(k): str(v) for k, v in value.items()}


def load_policy(path: str | Path) -> Policy:
    """Load a policy from a YAML or JSON file (JSON is valid YAML; YAML needs PyYAML)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PolicyError(f"policy file {path}: not valid YAML/JSON: {exc}") from exc
    if data is None:
        data = {}
    return policy_from_mapping(data)


# ---------------------------------------------------------------- collateral / signature


def load_collateral(source: str | Path) -> Any:
    """Read dcap-qvl ``QuoteCollateralV3`` JSON from a file path."""
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CollateralError(f"cannot read collateral {source}: {exc}") from exc
    return collateral_from_json(text)


def collateral_from_json(text: str) -> Any:
    try:
        return dcap_qvl.QuoteCollateralV3.from_json(text)
    except (ValueError, TypeError) as exc:
        raise CollateralError(f"not dcap-qvl QuoteCollateralV3 JSON: {exc}") from exc


@dataclass(frozen=True)
class SignatureResult:
    status: str | None
    advisory_ids: tuple[str, ...]
    simulated: bool
    reasons: tuple[Reason, ...]


def _dcap(raw: bytes, collateral: Any, now: int, root_der: bytes | None) -> tuple[Any, str | None]:
    try:
        if root_der is None:
            return dcap_qvl.verify(raw, collateral, now), None
        return dcap_qvl.verify_with_root_ca(raw, collateral, root_der, now), None
    except (ValueError, RuntimeError, TypeError) as exc:
        return None, str(exc)


def _dcap_reason(error: str, root: str) -> Reason:
    message = f"dcap-qvl verification against the {root} failed: {error}"
    if "SEPT_VE_DISABLE" in error or "Debug mode" in error or "Reserved bits" in error:
        message += f" ({SEPT_NOTE})"
    return Reason("dcap_qvl", message)


SIMULATED_REFUSED = (
    "the quote is SIMULATED (made by the lab's test provider, not by TDX hardware): simulated quotes are "
    "refused outside the lab inventory (inventories/lab sets kit_tdx_simulated)"
)


def looks_simulated(raw: bytes) -> bool:
    """The kit's simulated provider marks its quotes (header user data, test-PKI names); unauthenticated."""
    return SIM_MARKER in raw


def _simulated_root(trust: TrustAnchors) -> bytes | Reason:
    """The simulated root DER when it is given and matches its pin, else the reason it cannot be used."""
    root = trust.simulated_root_der
    if root is None:
        return Reason("simulated_root_missing", "simulation enabled but no simulated root CA given")
    pin = (trust.simulated_root_sha256 or "").strip().lower()
    if not pin:
        return Reason(
            "simulated_root_pin", "simulation enabled but the simulated root is not pinned by its SHA-256"
        )
    got = hashlib.sha256(root).hexdigest()
    if got != pin:
        return Reason(
            "simulated_root_pin",
            f"the simulated root CA given has SHA-256 {got}, not the pinned {pin}: refused",
        )
    return root


def check_signature(raw: bytes, collateral: Any, now: int, trust: TrustAnchors) -> SignatureResult:
    """Signature chain, collateral validity and TCB status against exactly one root: Intel's, or in the
    lab only the pinned simulated root."""
    if trust.allow_simulated:
        root = _simulated_root(trust)
        if isinstance(root, Reason):
            return SignatureResult(None, (), False, (root,))
        sim_report, sim_error = _dcap(raw, collateral, now, root)
        if sim_report is None:
            reason = _dcap_reason(sim_error or "unknown error", "pinned simulated test root CA")
            return SignatureResult(None, (), False, (reason,))
        return SignatureResult(str(sim_report.status), tuple(sim_report.advisory_ids), True, ())
    report, error = _dcap(raw, collateral, now, None)
    if report is not None:
        return SignatureResult(str(report.status), tuple(report.advisory_ids), False, ())
    if looks_simulated(raw):
        return SignatureResult(None, (), True, (Reason("simulated_refused", SIMULATED_REFUSED),))
    return SignatureResult(None, (), False, (_dcap_reason(error or "unknown error", "Intel SGX root CA"),))


# ---------------------------------------------------------------- policy evaluation


def expected_report_data(nonce: bytes, binding: bytes = b"") -> bytes:
    """REPORTDATA the kit expects: SHA-512(nonce || binding data)."""
    return hashlib.sha512(nonce + binding).digest()


def _check_tcb(policy: Policy, sig: SignatureResult) -> list[Reason]:
    reasons: list[Reason] = []
    if sig.status is not None and sig.status not in policy.allowed_tcb_statuses:
        allowed = ", ".join(policy.allowed_tcb_statuses)
        reasons.append(Reason("tcb_status", f"TCB status {sig.status} is not allowed (allowed: {allowed})"))
    bad = sorted(set(sig.advisory_ids) & set(policy.forbidden_advisory_ids))
    if bad:
        reasons.append(Reason("advisory", f"forbidden advisories apply: {', '.join(bad)}"))
    return reasons


def _check_attributes(policy: Policy, report: TdReport) -> list[Reason]:
    reasons: list[Reason] = []
    if report.debug and not policy.allow_debug:
        reasons.append(Reason("debug", "TD is in debug mode (TD_ATTRIBUTES.DEBUG set): host can read it"))
    if policy.require_sept_ve_disable and not report.sept_ve_disable:
        reasons.append(Reason("sept_ve_disable", "TD_ATTRIBUTES.SEPT_VE_DISABLE (bit 28) is not set"))
    return reasons


def _check_measurements(policy: Policy, report: TdReport) -> list[Reason]:
    reasons: list[Reason] = []
    for name in policy.required:
        if name == "rtmr0" and policy.rtmr0_reference is not None:
            continue  # checked event by event (_check_event_log)
        if name not in policy.expected and name not in policy.waivers:
            reasons.append(
                Reason(
                    "measurement_missing",
                    f"{name} is required but the policy has no expected value for it (and no waiver): "
                    "refused rather than unchecked",
                )
            )
    for name in MEASUREMENT_FIELDS:
        want = policy.expected.get(name)
        got: bytes = getattr(report, name)
        if want is not None and got != want:
            reasons.append(Reason(name, f"{name} mismatch: quote has {got.hex()}, expected {want.hex()}"))
    return reasons


def _check_event_log(
    policy: Policy, report: TdReport, event_log: bytes | None
) -> tuple[list[Reason], int | None]:
    """RTMR0 event by event, when the policy has a reference: the log must replay to the quote's RTMRs."""
    if policy.rtmr0_reference is None:
        return [], None
    if event_log is None:
        return [
            Reason("rtmr0", "the policy checks RTMR0 by its events, and the quote came with no event log")
        ], None
    rtmrs = [report.rtmr(i) for i in range(4)]
    try:
        summary = rtmr0_reference.check(event_log, rtmrs, policy.rtmr0_reference)
    except rtmr0_reference.Rtmr0Error as exc:
        return [Reason("rtmr0", str(exc))], None
    return [], int(summary["rtmr0_events"])


def _check_report_data(report: TdReport, expected: bytes | None) -> list[Reason]:
    if expected is None or report.report_data == expected:
        return []
    return [
        Reason(
            "report_data",
            "REPORTDATA is not SHA-512(nonce || binding): stale nonce or wrong binding "
            f"(quote {report.report_data.hex()[:32]}..., expected {expected.hex()[:32]}...)",
        )
    ]


def evaluate_policy(
    report: TdReport, policy: Policy, sig: SignatureResult, expected_rd: bytes | None
) -> list[Reason]:
    """Every policy reason the report fails (independent of the signature result)."""
    return (
        _check_tcb(policy, sig)
        + _check_attributes(policy, report)
        + _check_measurements(policy, report)
        + _check_report_data(report, expected_rd)
    )


def _summary(quote: Quote) -> dict[str, Any]:
    return quote_to_dict(quote)


def verify_quote(
    raw: bytes,
    collateral: Any,
    now: int,
    policy: Policy | None = None,
    nonce: bytes | None = None,
    binding: bytes = b"",
    trust: TrustAnchors | None = None,
    event_log: bytes | None = None,
) -> Verdict:
    """Verify ``raw`` at time ``now`` (Unix seconds) and return a verdict listing every failure.

    ``event_log``: the TD's CC event log, checked when the policy has an RTMR0 reference."""
    policy = policy or Policy()
    trust = trust or TrustAnchors()
    try:
        quote = parse_quote(raw)
    except QuoteFormatError as exc:
        reason = Reason("quote_format", str(exc))
        return Verdict(False, False, False, None, [], [reason], [], False, None)
    sig = check_signature(quote.raw, collateral, now, trust)
    expected_rd = None if nonce is None else expected_report_data(nonce, binding)
    log_reasons, rtmr0_events = _check_event_log(policy, quote.report, event_log)
    reasons = list(sig.reasons) + evaluate_policy(quote.report, policy, sig, expected_rd) + log_reasons
    warnings = _warnings(policy, nonce, sig)
    return Verdict(
        ok=not reasons,
        simulated=sig.simulated,
        authenticated=not sig.reasons,
        tcb_status=sig.status,
        advisory_ids=list(sig.advisory_ids),
        reasons=reasons,
        warnings=warnings,
        report_data_checked=expected_rd is not None,
        quote=_summary(quote),
        waivers=dict(policy.waivers),
        rtmr0_events=rtmr0_events,
    )


def _warnings(policy: Policy, nonce: bytes | None, sig: SignatureResult) -> list[str]:
    warnings: list[str] = []
    if nonce is None:
        warnings.append("no nonce given: REPORTDATA not checked, freshness NOT established")
    if not policy.expected:
        warnings.append("policy has no expected measurements: any image is accepted")
    if sig.simulated:
        warnings.append("SIMULATED TDX quote: signed by the lab's test PKI, not by Intel hardware")
    for name, why in sorted(policy.waivers.items()):
        warnings.append(f"{name} NOT checked (waived by the inventory: {why})")
    return warnings


def verify_quote_files(
    quote_path: str | Path,
    collateral_path: str | Path,
    now: int,
    policy: Policy | None = None,
    nonce: bytes | None = None,
    binding: bytes = b"",
    trust: TrustAnchors | None = None,
) -> Verdict:
    """Convenience wrapper reading the quote and collateral from files."""
    raw = Path(quote_path).read_bytes()
    return verify_quote(raw, load_collateral(collateral_path), now, policy, nonce, binding, trust)


def reasons_text(reasons: Sequence[Reason]) -> str:
    return "; ".join(f"{r.code}: {r.message}" for r in reasons)
