"""A task's `register` never reuses the name of a variable that a task or block of the same file defines.

In a loop, the registered result shadows that variable for the items after the first (ansible-core 2.19):
prove.yml's stale-registration step once passed the first item's result as the agent UUID of the second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]


def _walk(node: Any, registers: set[str], defined: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, registers, defined)
    elif isinstance(node, dict):
        if isinstance(node.get("register"), str):
            registers.add(node["register"])
        if isinstance(node.get("vars"), dict):
            defined.update(node["vars"])
        for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            _walk(node.get(key), registers, defined)


def clashes(doc: Any) -> set[str]:
    registers: set[str] = set()
    defined: set[str] = set()
    _walk(doc, registers, defined)
    return registers & defined


def test_no_register_reuses_a_variable_name() -> None:
    files = [*ROOT.glob("roles/*/tasks/*.yml"), *ROOT.glob("playbooks/*.yml"), *ROOT.glob("molecule/*/*.yml")]
    files += list(ROOT.glob("molecule/*/tasks/*.yml"))
    found = {}
    for f in files:
        if c := clashes(yaml.safe_load(f.read_text())):
            found[str(f.relative_to(ROOT))] = sorted(c)
    assert len(files) > 80
    assert found == {}


def test_the_check_finds_the_clash() -> None:
    doc = [{"vars": {"__x": "uuid"}, "block": [{"ansible.builtin.command": "true", "register": "__x"}]}]
    assert clashes(doc) == {"__x"}
