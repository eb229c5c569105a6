"""Fixtures for the TDX tests: recorded test vectors from ../shared/testvectors."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TV = ROOT.parent / "shared" / "testvectors"
DCAP = TV / "dcap-qvl"
GTG = TV / "go-tdx-guest"
AZURE = TV / "azure-cvm"
QUOTE_TIME = 1752919234  # 2025-07-19T10:00:34Z, inside the recorded collateral's validity


@pytest.fixture(scope="session")
def intel_quote() -> bytes:
    return (DCAP / "tdx_quote").read_bytes()


@pytest.fixture(scope="session")
def intel_collateral_json() -> str:
    return (DCAP / "tdx_quote_collateral.json").read_text()


@pytest.fixture(scope="session")
def intel_collateral(intel_collateral_json: str) -> object:
    from ansible_collections.teeproof.kit.plugins.module_utils import tdx_verify

    return tdx_verify.collateral_from_json(intel_collateral_json)
