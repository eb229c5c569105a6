"""tools/role_readme.py (bin/kit readme): role READMEs from the argument specs, checked by bin/kit lint."""

from __future__ import annotations

from pathlib import Path

import role_readme as rr
import yaml

ROOT = Path(__file__).resolve().parents[3]
SPECS = {
    "argument_specs": {
        "main": {
            "short_description": "Do C(one) thing",
            "description": ["Needs O(demo_name).", "Pipes | are escaped."],
            "options": {
                "demo_name": {"type": "str", "required": True, "description": "The name."},
                "demo_mode": {"type": "str", "choices": ["a", "b"], "default": "a", "description": "Mode."},
                "demo_key": {"type": "str", "no_log": True, "default": "", "description": "A key."},
                "demo_list": {"type": "list", "elements": "path", "default": [], "description": "Paths."},
            },
        },
        "extra": {"short_description": "Another entry point", "options": {}},
    }
}


def make_role(tmp_path: Path, readme: str | None = None) -> Path:
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(SPECS))
    (role / "meta" / "main.yml").write_text(yaml.safe_dump({"galaxy_info": {"description": "A demo role"}}))
    if readme is not None:
        (role / "README.md").write_text(readme)
    return role


def test_the_generated_part_lists_every_entry_point_and_option(tmp_path: Path) -> None:
    role = make_role(tmp_path)
    assert rr.main([str(role.parent)]) == 0
    text = (role / "README.md").read_text()
    assert text.startswith(rr.BEGIN + "\n# demo\n\nA demo role\n")
    assert (
        "## Entry point `main` (the role)" in text and "## Entry point `extra` (`tasks_from: extra`)" in text
    )
    assert "**Do `one` thing**" in text and "- Needs `demo_name`." in text and "Pipes \\| are" in text
    assert "| `demo_name` | str |  | **Required.** The name. |" in text
    assert "| `demo_mode` | str | `a` | Mode. Choices: `a`, `b`. |" in text
    assert "| `demo_key` | str | `''` | A key. Secret (never logged). |" in text
    assert "| `demo_list` | list of path | `[]` | Paths. |" in text
    assert "No options." in text


def test_text_outside_the_markers_is_kept(tmp_path: Path) -> None:
    role = make_role(tmp_path, "# demo\n\nHand-written notes.\n")
    rr.main([str(role.parent)])
    first = (role / "README.md").read_text()
    assert first.endswith("\n# demo\n\nHand-written notes.\n") and first.count(rr.BEGIN) == 1
    rr.main([str(role.parent)])
    assert (role / "README.md").read_text() == first


def test_check_names_a_stale_readme_and_writes_nothing(tmp_path: Path, capsys: object) -> None:
    role = make_role(tmp_path)
    assert rr.main([str(role.parent), "--check"]) == 1
    assert not (role / "README.md").exists()
    rr.main([str(role.parent)])
    assert rr.main([str(role.parent), "--check"]) == 0
    spec = role / "meta" / "argument_specs.yml"
    spec.write_text(spec.read_text().replace("The name.", "The demo's name."))
    before = (role / "README.md").read_text()
    assert rr.main([str(role.parent), "--check"]) == 1
    assert (role / "README.md").read_text() == before


def test_every_role_of_the_kit_has_a_current_readme() -> None:
    roles = [p for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file()]
    assert len(roles) >= 15
    assert rr.main([str(ROOT / "roles"), "--check"]) == 0
