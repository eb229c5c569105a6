"""Trust steps run on the controller (or the verifier), never on the TD host or the TD.

Walks every playbook (import_playbook followed) and every role entry point it reaches (roles:, include_role,
import_role, include_tasks, import_tasks, followed into the roles' task files), resolves each play's hosts in
the real-use inventories (inventories/local and the rendered bare-metal template), and fails when a trust
step can run on a host of the TD host's party: the ``td_host`` or ``td`` group, or any host that launches
the TD (runs roles/td_host). A task that runs a trust module must not be delegated to either of them.

The trust steps: the reference values and their signing, the nonce, the quote check, the claims check and the
SSH pin, the commit key, the input, the receipt and proof check (docs/parties.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.teeproof.kit.plugins.module_utils.kit_parties import party_problems

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))
ALL = "*"
# Role entry points that decide or hold what the client trusts.
TRUST_STEPS = {
    ("prove", "reference"),  # reference values of the image
    ("prove", "attest"),  # the nonce, the quote check
    ("prove", "pin"),  # the SSH pin, the commit key
    ("prove", "check"),  # the receipt and proof check
    ("prove", "session"),  # the session client's checks
    ("lab_input", "main"),  # the secret input
    ("tdx_attestation", ALL),  # nonce, quote, claims, pin
    ("reference_set", ALL),  # accepted versions, the signed runtime policy
    ("guest_image", "finalize"),  # reference values and the signed release bundle
    ("guest_image", "release"),
}
# Modules whose answer is a trust decision: never delegated to the TD host or the TD.
TRUST_MODULES = {
    "teeproof.kit.tdx_quote_verify",
    "teeproof.kit.td_claims_check",
    "teeproof.kit.reference_set",
    "teeproof.kit.guest_image_release",
}
LAUNCHER = "td_host"
INCLUDES = ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role")
TASK_INCLUDES = (
    "ansible.builtin.include_tasks",
    "ansible.builtin.import_tasks",
    "include_tasks",
    "import_tasks",
)


@dataclass(frozen=True)
class Step:
    """A role entry point or a task reached from a play, with where it runs."""

    playbook: str
    play: str
    hosts: str
    role: str
    entry: str
    module: str = ""
    delegate_to: str = ""


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _task_files(role: str, entry: str) -> list[Path]:
    tasks = ROOT / "roles" / role / "tasks"
    if "{{" in entry:  # a templated entry (e.g. reference_set_step): any of them
        return sorted(tasks.glob("*.yml"))
    path = tasks / f"{entry}.yml"
    return [path] if path.is_file() else []


def _entry(name: str) -> str:
    return name[: -len(".yml")] if name.endswith(".yml") else name


def _walk_tasks(tasks: Any, base: Step, seen: set[tuple[str, str, str]]) -> Iterator[Step]:
    """Every step under these tasks; a delegate_to on a block or an include (or its apply) holds inside."""
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        delegate = str(task.get("delegate_to", "")) or base.delegate_to
        here = Step(base.playbook, base.play, base.hosts, base.role, base.entry, "", delegate)
        for key in ("block", "rescue", "always"):
            yield from _walk_tasks(task.get(key), here, seen)
        for key in INCLUDES:
            if key in task:
                spec = task[key]
                applied = str((spec.get("apply") or {}).get("delegate_to", "")) or delegate
                yield from _walk_role(
                    str(spec["name"]),
                    _entry(str(spec.get("tasks_from", "main"))),
                    Step(base.playbook, base.play, base.hosts, "", "", "", applied),
                    seen,
                )
        for key in TASK_INCLUDES:
            if key in task and base.role:
                spec = task[key]
                name = spec if isinstance(spec, str) else spec.get("file", "")
                yield from _walk_role(base.role, _entry(str(name)), here, seen)
        for module in TRUST_MODULES:
            if module in task:
                yield Step(base.playbook, base.play, base.hosts, base.role, base.entry, module, delegate)


def _walk_role(role: str, entry: str, base: Step, seen: set[tuple[str, str, str]]) -> Iterator[Step]:
    yield Step(base.playbook, base.play, base.hosts, role, entry, "", base.delegate_to)
    for path in _task_files(role, entry):
        key = (str(path), base.play, base.delegate_to)
        if key in seen:
            continue
        seen.add(key)
        inner = Step(base.playbook, base.play, base.hosts, role, _entry(path.name), "", base.delegate_to)
        if inner.entry != entry:  # a templated entry: each file it may name is an entry point
            yield inner
        yield from _walk_tasks(_load(path), inner, seen)


def steps(playbook: Path) -> Iterator[Step]:
    """Every role entry point and trust-module task a playbook reaches, with its play's hosts."""
    for i, play in enumerate(_load(playbook) or []):
        imported = play.get("ansible.builtin.import_playbook", play.get("import_playbook"))
        if imported:
            yield from steps((playbook.parent / imported).resolve())
            continue
        base = Step(
            playbook.name, f"{playbook.name}#{i + 1} {play.get('name', '')}", str(play["hosts"]), "", ""
        )
        seen: set[tuple[str, str, str]] = set()
        for role in play.get("roles", []):
            name = role if isinstance(role, str) else role["role"]
            yield from _walk_role(str(name), "main", base, seen)
        for key in ("pre_tasks", "tasks", "post_tasks"):
            yield from _walk_tasks(play.get(key), base, seen)


def groups_of(inventory: dict[str, Any]) -> dict[str, set[str]]:
    """Group -> hosts (children's hosts included) of a YAML inventory."""
    out: dict[str, set[str]] = {}

    def visit(name: str, node: dict[str, Any] | None) -> set[str]:
        node = node or {}
        hosts = set((node.get("hosts") or {}).keys())
        for child, sub in (node.get("children") or {}).items():
            hosts |= visit(child, sub)
        out[name] = out.get(name, set()) | hosts
        return hosts

    visit("all", inventory["all"])
    return out


def _hosts(pattern: str, groups: dict[str, set[str]]) -> set[str]:
    return groups.get(pattern, {pattern} if pattern == "localhost" else set())


def is_trust_step(step: Step) -> bool:
    return (step.role, step.entry) in TRUST_STEPS or (step.role, ALL) in TRUST_STEPS or bool(step.module)


def _delegated_to(step: Step, groups: dict[str, set[str]]) -> set[str]:
    """The hosts a trust step is delegated to: a group it names, or the job's variable for the TD/verifier."""
    if not step.delegate_to:
        return set()
    named = re.findall(r"groups\[['\"](\w+)['\"]\]", step.delegate_to)
    named += re.findall(r"\bprove_(td|verifier)\b", step.delegate_to)
    if named:
        return set().union(*(groups.get(g, set()) for g in named))
    if "guest" in step.delegate_to:  # tdx_attestation_guest, e2e_guest: the TD
        return groups.get("td", set()) | groups.get("guest_td", set())
    return {step.delegate_to}


def violations(playbooks: list[Path], inventory: dict[str, Any]) -> list[str]:
    """Trust steps that can run on the TD host's party in this inventory, one line each."""
    groups = groups_of(inventory)
    found = [s for p in playbooks for s in steps(p)]
    launchers = set().union(
        *(_hosts(s.hosts, groups) for s in found if s.role == LAUNCHER and s.entry == "main")
    )
    untrusted = launchers | groups.get("td_host", set()) | groups.get("td", set())
    out: set[str] = set()
    for step in filter(is_trust_step, found):
        where = _hosts(step.hosts, groups) if not step.delegate_to else _delegated_to(step, groups)
        bad = where & untrusted
        if bad:
            what = step.module or f"{step.role}:{step.entry}"
            out.add(f"{step.play}: {what} runs on {sorted(bad)} (hosts: {step.hosts})")
    return sorted(out)


def real_inventories(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """inventories/local and the bare-metal template (its Jinja placeholders filled in), as YAML."""
    template = (ROOT / "templates" / "inventory-tdx.yml.j2").read_text(encoding="utf-8")
    text = re.sub(r"\{\{ '\{\{' \}\}(.*?)\{\{ '\}\}' \}\}", r"{{\1}}", template)
    text = re.sub(r"\{\{ (kit_templates_\w+|ansible_managed) \}\}", "placeholder.example.invalid", text)
    return {
        "inventories/local": _load(ROOT / "inventories" / "local" / "hosts.yml"),
        "templates/inventory-tdx.yml.j2": yaml.safe_load(text),
    }


@pytest.mark.parametrize("name", ["inventories/local", "templates/inventory-tdx.yml.j2"])
def test_no_trust_step_runs_on_the_td_host_or_the_td(tmp_path: Path, name: str) -> None:
    inventory = real_inventories(tmp_path)[name]
    assert violations(PLAYBOOKS, inventory) == []


def test_the_walk_sees_every_trust_step_and_the_launcher() -> None:
    found = {(s.role, s.entry) for p in PLAYBOOKS for s in steps(p)}
    modules = {s.module for p in PLAYBOOKS for s in steps(p)}
    for step in TRUST_STEPS:
        if step[1] != ALL:
            assert step in found, f"{step} is reached by no playbook: the walk misses it"
    assert {("tdx_attestation", "quote"), ("tdx_attestation", "verify"), ("tdx_attestation", "pin")} <= found
    assert (LAUNCHER, "main") in found
    assert TRUST_MODULES - {"teeproof.kit.guest_image_release"} <= modules | {"teeproof.kit.td_claims_check"}


def test_a_trust_step_on_the_td_host_is_caught(tmp_path: Path) -> None:
    """The walk fails a playbook that runs a trust step where the TD is launched (as main did before)."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        yaml.safe_dump(
            [
                {"name": "launch", "hosts": "tdhosts", "roles": [{"role": "td_host"}]},
                {
                    "name": "attest",
                    "hosts": "tdhosts",
                    "tasks": [{"ansible.builtin.import_role": {"name": "prove", "tasks_from": "attest"}}],
                },
                {
                    "name": "sign",
                    "hosts": "td",
                    "tasks": [{"teeproof.kit.reference_set": {"state": "accepted"}}],
                },
            ]
        )
    )
    inventory: dict[str, Any] = {
        "all": {"children": {"tdhosts": {"hosts": {"h1": {}}}, "td": {"hosts": {"g1": {}}}}}
    }
    found = violations([bad], inventory)
    assert any("prove:attest runs on ['h1']" in line for line in found)
    assert any("tdx_attestation:quote runs on ['h1']" in line for line in found)
    assert any("teeproof.kit.reference_set runs on ['g1']" in line for line in found)


def test_a_trust_module_delegated_to_the_td_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "delegated.yml"
    task = {"teeproof.kit.tdx_quote_verify": {}, "delegate_to": "{{ groups['td'][0] }}"}
    bad.write_text(yaml.safe_dump([{"name": "p", "hosts": "controller", "tasks": [task]}]))
    inventory: dict[str, Any] = {
        "all": {"children": {"controller": {"hosts": {"c": {}}}, "td": {"hosts": {"g1": {}}}}}
    }
    assert violations([bad], inventory) == [
        "delegated.yml#1 p: teeproof.kit.tdx_quote_verify runs on ['g1'] (hosts: controller)"
    ]
    task["delegate_to"] = "{{ groups['controller'][0] }}"
    bad.write_text(yaml.safe_dump([{"name": "p", "hosts": "controller", "tasks": [task]}]))
    assert violations([bad], inventory) == []


# ------------------------------------------------------------ roles/parties' rule (module_utils.kit_parties)
GROUPS = {
    "controller": ["localhost"],
    "image_builder": ["localhost"],
    "verifier": ["kc"],
    "td_host": ["th"],
    "td": ["g"],
}
HOSTVARS = {
    "localhost": {"ansible_connection": "local"},
    "kc": {"ansible_host": "client.example.org"},
    "th": {"ansible_host": "tdx.example.org"},
    "g": {"ansible_host": "127.0.0.1"},
}


def test_parties_apart_pass() -> None:
    assert party_problems(GROUPS, HOSTVARS, ["controller", "td_host", "td", "verifier"]) == []


@pytest.mark.parametrize(
    ("groups", "hostvars", "needle"),
    [
        ({**GROUPS, "td_host": ["localhost"]}, HOSTVARS, "td_host host 'localhost' is also in 'controller'"),
        ({**GROUPS, "td_host": ["kc"]}, HOSTVARS, "td_host host 'kc' is also in 'verifier'"),
        (
            GROUPS,
            {**HOSTVARS, "th": {"ansible_host": "CLIENT.example.org"}},
            "has the address of verifier host 'kc'",
        ),
        (GROUPS, {**HOSTVARS, "th": {"ansible_connection": "local"}}, "is reached on this machine"),
        (GROUPS, {**HOSTVARS, "th": {"ansible_host": "127.0.0.1"}}, "is reached on this machine"),
        ({**GROUPS, "verifier": []}, HOSTVARS, "no host in group 'verifier'"),
    ],
)
def test_parties_that_meet_are_refused(
    groups: dict[str, list[str]], hostvars: dict[str, Any], needle: str
) -> None:
    problems = party_problems(groups, hostvars, ["controller", "verifier"])
    assert any(needle in p for p in problems), problems


def test_no_inventory_may_put_the_td_host_on_the_controllers_machine_and_each_party_needs_a_host() -> None:
    """The lab's old shape (the TD host this machine) is refused now that its TD host is a container."""
    old_lab = {**GROUPS, "td_host": ["localhost"]}
    hostvars = {**HOSTVARS, "localhost": {"ansible_connection": "local"}}
    assert any(
        "'localhost' is also in 'controller'" in p for p in party_problems(old_lab, hostvars, ["controller"])
    )
    lab = {**GROUPS, "td_host": ["kit-td-host"]}
    container = {"ansible_host": "kit-td-host-e2e", "ansible_connection": "containers.podman.podman"}
    assert party_problems(lab, {**hostvars, "kit-td-host": container}, ["controller", "td_host"]) == []
    assert party_problems({}, HOSTVARS, ["controller"]) == [
        "the inventory has no host in group 'controller' (this playbook needs controller)"
    ]
    with pytest.raises(ValueError, match="unknown parties"):
        party_problems(lab, HOSTVARS, ["build_host"])


def test_a_trust_step_under_a_block_or_apply_delegated_to_the_td_is_caught(tmp_path: Path) -> None:
    """One play on the controller: a delegate_to on a block, or an include_role's apply, holds inside."""
    bad = tmp_path / "job.yml"
    block = {"block": [{"teeproof.kit.td_claims_check": {}}], "delegate_to": "{{ prove_td }}"}
    applied = {
        "ansible.builtin.include_role": {
            "name": "tdx_attestation",
            "tasks_from": "quote",
            "apply": {"delegate_to": "{{ prove_td }}"},
        }
    }
    bad.write_text(yaml.safe_dump([{"name": "job", "hosts": "controller", "tasks": [block, applied]}]))
    inventory: dict[str, Any] = {
        "all": {"children": {"controller": {"hosts": {"c": {}}}, "td": {"hosts": {"g1": {}}}}}
    }
    found = violations([bad], inventory)
    assert "job.yml#1 job: teeproof.kit.td_claims_check runs on ['g1'] (hosts: controller)" in found
    assert "job.yml#1 job: tdx_attestation:quote runs on ['g1'] (hosts: controller)" in found
    block["delegate_to"] = "{{ prove_verifier }}"
    applied["ansible.builtin.include_role"]["apply"] = {"delegate_to": "{{ prove_verifier }}"}
    bad.write_text(yaml.safe_dump([{"name": "job", "hosts": "controller", "tasks": [block, applied]}]))
    assert violations([bad], inventory) == []
