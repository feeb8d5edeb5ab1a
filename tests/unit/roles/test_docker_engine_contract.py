"""The docker_engine role's contract: defaults, argument_specs and README agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "docker_engine"


def _defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def _options() -> dict:
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def test_every_default_is_specified_with_the_same_value() -> None:
    defaults, options = _defaults(), _options()
    assert sorted(defaults) == sorted(options)
    for name, value in defaults.items():
        assert name.startswith("docker_engine_")
        assert options[name]["default"] == value, name
        assert options[name]["type"] and options[name]["description"], name


def test_readme_table_lists_every_variable_with_its_default() -> None:
    rows = {}
    for line in (ROLE / "README.md").read_text().splitlines():
        match = re.match(r"^\| `(docker_engine_\w+)` \| `(.*?)` \|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    defaults = _defaults()
    assert sorted(rows) == sorted(defaults)
    for name, value in defaults.items():
        shown = rows[name]
        expected = json.dumps(value) if isinstance(value, (list, dict, bool, int)) else value
        assert shown == expected, name
