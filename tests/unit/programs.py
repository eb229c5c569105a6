"""Load a program without a .py suffix (bin/, roles/*/files/) as a module, for its unit tests."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType


def load_program(path: Path, name: str) -> ModuleType:
    """Execute the program at path as the module name (its ``__main__`` guard does not run)."""
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
