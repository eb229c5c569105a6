#!/usr/bin/env python3
"""role_readme: write each role's README.md from its meta/argument_specs.yml (bin/kit readme).

  role_readme.py [--check] [ROLES_DIR]

The generated part stands between two marker lines; text outside them (a role's own prose) is kept as it is.
A README without the markers gets the generated part at its top. --check writes nothing and exits 1 naming the
READMEs that are not current (the test command runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

BEGIN = (
    "<!-- BEGIN GENERATED from meta/argument_specs.yml by bin/kit readme; edit the specs, not this part -->"
)
END = "<!-- END GENERATED -->"
_MARKUP = re.compile(r"\b[CIOMVEP]\(([^()]*)\)")


def plain(text: object) -> str:
    """Ansible doc markup (C(x), O(x), I(x), M(x), ...) as Markdown code, one line, pipes escaped."""
    flat = " ".join(str(text).split())
    return _MARKUP.sub(lambda m: f"`{m.group(1)}`", flat).replace("|", "\\|")


def _lines(value: object) -> list[str]:
    if value is None:
        return []
    return [plain(v) for v in value] if isinstance(value, list) else [plain(value)]


def _default(spec: Mapping[str, Any]) -> str:
    if "default" not in spec:
        return ""
    value = spec["default"]
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("...").strip()
    return f"`{text}`" if text else "`''`"


def option_rows(options: Mapping[str, Any]) -> list[str]:
    rows = ["| option | type | default | description |", "| --- | --- | --- | --- |"]
    for name, spec in options.items():
        spec = spec or {}
        kind = str(spec.get("type", "str"))
        if spec.get("elements"):
            kind += f" of {spec['elements']}"
        desc = " ".join(_lines(spec.get("description")))
        if spec.get("required"):
            desc = "**Required.** " + desc
        if spec.get("choices"):
            desc += " Choices: " + ", ".join(f"`{c}`" for c in spec["choices"]) + "."
        if spec.get("no_log"):
            desc += " Secret (never logged)."
        rows.append(f"| `{name}` | {kind} | {_default(spec)} | {desc.strip()} |")
    return rows


def generated(role: str, meta: Mapping[str, Any], specs: Mapping[str, Any]) -> str:
    info = meta.get("galaxy_info") or {}
    out = [f"# {role}", ""]
    if info.get("description"):
        out += [plain(info["description"]), ""]
    for entry, spec in specs.items():
        spec = spec or {}
        call = "the role" if entry == "main" else f"`tasks_from: {entry}`"
        out += [f"## Entry point `{entry}` ({call})", ""]
        if spec.get("short_description"):
            out += [f"**{plain(spec['short_description'])}**", ""]
        out += [f"- {line}" for line in _lines(spec.get("description"))]
        out += [""]
        options = spec.get("options") or {}
        out += option_rows(options) if options else ["No options."]
        out += [""]
    return "\n".join(out).rstrip() + "\n"


def merge(current: str | None, block: str) -> str:
    """The README with its generated part replaced (or put on top), everything else kept."""
    part = f"{BEGIN}\n{block}{END}\n"
    if current is None:
        return part
    if BEGIN in current and END in current:
        head, _begin, rest = current.partition(BEGIN)
        _old, _end, tail = rest.partition(END)
        return head + part + tail.removeprefix("\n")
    return part + "\n" + current


def readme_for(role_dir: Path) -> tuple[Path, str] | None:
    spec_file = role_dir / "meta" / "argument_specs.yml"
    if not spec_file.is_file():
        return None
    specs = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs") or {}
    meta_file = role_dir / "meta" / "main.yml"
    meta = yaml.safe_load(meta_file.read_text()) if meta_file.is_file() else {}
    readme = role_dir / "README.md"
    current = readme.read_text() if readme.is_file() else None
    return readme, merge(current, generated(role_dir.name, meta or {}, specs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", maxsplit=1)[0])
    ap.add_argument("roles", nargs="?", type=Path, default=Path(__file__).resolve().parents[1] / "roles")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a README is not current")
    args = ap.parse_args(argv)
    stale = []
    for role_dir in sorted(p for p in args.roles.iterdir() if p.is_dir()):
        found = readme_for(role_dir)
        if found is None:
            continue
        readme, text = found
        if readme.is_file() and readme.read_text() == text:
            continue
        stale.append(readme)
        if not args.check:
            readme.write_text(text)
            print(f"role_readme: wrote {readme}")
    if args.check and stale:
        names = ", ".join(str(p) for p in stale)
        print(f"role_readme: not current (run bin/kit readme): {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
