"""No YAML play, and no run of three tasks, stands in two places (`duplicates` does not read YAML).

Plays and tasks are compared with every `name` removed, so that a copy that was only renamed is found too.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
RUN = 3


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k != "name"}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _key(node: Any) -> str:
    return json.dumps(_strip(node), sort_keys=True, default=str)


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None


def playbooks() -> list[Path]:
    return sorted([*ROOT.glob("playbooks/*.yml"), *ROOT.glob("molecule/*/*.yml")])


def plays() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in playbooks():
        doc = _load(path)
        if isinstance(doc, list):
            for i, play in enumerate(doc):
                if isinstance(play, dict) and "hosts" in play:
                    found.append((f"{path.relative_to(ROOT)}#{i + 1}", play))
    return found


def task_lists() -> list[tuple[str, list[Any]]]:
    lists: list[tuple[str, list[Any]]] = []
    files = sorted([*ROOT.glob("roles/*/tasks/*.yml"), *ROOT.glob("roles/*/handlers/*.yml")])
    files += sorted(ROOT.glob("molecule/*/tasks/*.yml"))
    for path in files:
        doc = _load(path)
        if isinstance(doc, list):
            lists.append((str(path.relative_to(ROOT)), doc))
    for where, play in plays():
        for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            if isinstance(play.get(section), list):
                lists.append((f"{where}:{section}", play[section]))
    return lists


def _blocks(where: str, tasks: list[Any]) -> list[tuple[str, list[Any]]]:
    """The list and the task lists nested in its blocks."""
    out = [(where, tasks)]
    for i, task in enumerate(tasks):
        if isinstance(task, dict):
            for section in ("block", "rescue", "always"):
                if isinstance(task.get(section), list):
                    out += _blocks(f"{where}[{i}].{section}", task[section])
    return out


def test_the_check_reads_the_kit() -> None:
    assert len(plays()) >= 30
    assert len(task_lists()) >= 60


def test_no_play_stands_twice() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for where, play in plays():
        seen[_key(play)].append(where)
    copies = [places for places in seen.values() if len(places) > 1]
    assert copies == []


def test_no_run_of_tasks_stands_twice() -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    for where, tasks in task_lists():
        for place, block in _blocks(where, tasks):
            for i in range(len(block) - RUN + 1):
                seen[_key(block[i : i + RUN])].add(place.split("[")[0])
    copies = sorted(sorted(places) for places in seen.values() if len(places) > 1)
    assert copies == []


def test_the_check_finds_a_copy(tmp_path: Path) -> None:
    tasks: list[dict[str, Any]] = [{"name": f"t{i}", "ansible.builtin.debug": {"msg": i}} for i in range(4)]
    renamed = [{**t, "name": "other " + t["name"]} for t in tasks[1:]]
    seen: dict[str, set[str]] = defaultdict(set)
    for where, block in (("a", tasks), ("b", renamed)):
        for i in range(len(block) - RUN + 1):
            seen[_key(block[i : i + RUN])].add(where)
    assert [sorted(p) for p in seen.values() if len(p) > 1] == [["a", "b"]]
