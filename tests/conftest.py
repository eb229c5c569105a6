"""Shared pytest set-up: make the kit's module_utils importable as plain modules."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
SHARED = ROOT.parent / "shared"
TESTVECTORS = SHARED / "testvectors"
