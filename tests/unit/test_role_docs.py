"""Each role README's variables table is the one scripts/role_docs.py renders from the argument spec."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("role_docs", ROOT / "scripts" / "role_docs.py")
assert _spec is not None and _spec.loader is not None
role_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(role_docs)

ROLES = sorted(p.parent.parent for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_the_readme_shows_the_argument_spec_of_every_entry_point(role: Path) -> None:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    readme = (role / "README.md").read_text()
    assert role_docs.missing_blocks(readme, specs) == []
    assert role_docs.updated(readme, specs) == readme, "run scripts/role_docs.py after editing the argument spec"


def test_a_changed_spec_shows_as_a_stale_table() -> None:
    spec = {"main": {"options": {"x_port": {"type": "int", "default": 1, "description": "The C(port)."}}}}
    readme = role_docs.updated("<!-- argument_specs:main -->\n<!-- /argument_specs -->", spec)
    assert "| `x_port` | int | `1` | The `port`. |" in readme
    spec["main"]["options"]["x_port"]["default"] = 2
    assert role_docs.updated(readme, spec) != readme


def test_required_options_choices_and_pipes_are_rendered() -> None:
    row = role_docs.render("main", {"options": {"x_mode": {
        "type": "str", "required": True, "choices": ["a", "b"], "description": "I(one) | B(two)"}}})
    assert "| `x_mode` | str, one of `a`, `b` | required | *one* \\| **two** |" in row


def test_a_readme_without_a_block_for_an_entry_point_is_named() -> None:
    assert role_docs.missing_blocks("no blocks", {"main": {}, "unit": {}}) == ["main", "unit"]
