"""Every role's contract: defaults/main.yml, meta/argument_specs.yml and README.md agree.

STYLE.md (Roles): every public variable is ``<role>_*`` in defaults and appears in
meta/argument_specs.yml with type, description, choices and the same default. The README's
variables tables are rendered from the spec (scripts/role_docs.py, tests/unit/test_role_docs.py).
Roles whose names start with ``_`` are private and not checked here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[3] / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))

# A default that is none unless the inventory sets it. validate_argument_spec checks the type of a
# None value unless the spec's default is None too, so the spec gives no default (or null) here.
_NONE_UNLESS_SET = re.compile(r"^\{\{\s*\w+\s*\|\s*default\(\s*(?:none|None|null)\s*\)\s*\}\}$")


class Problem(NamedTuple):
    """One breach of a role's contract: which option, of which entry point, what kind."""

    name: str
    entry_point: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name} ({self.entry_point}): {self.kind}: {self.detail}"


# Breaches in roles whose argument_specs belong to other engineers, keyed (role) -> {(name,
# entry point, kind)}. Each one is still reported when it changes; a fixed one fails the test
# until it is removed from here, so this list can only shrink.
KNOWN_DRIFT: dict[str, set[tuple[str, str, str]]] = {}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _defaults(role: str) -> dict[str, Any]:
    return _yaml(ROLES_DIR / role / "defaults" / "main.yml") or {}


def _entry_points(role: str) -> dict[str, dict[str, Any]]:
    specs = _yaml(ROLES_DIR / role / "meta" / "argument_specs.yml") or {}
    return specs.get("argument_specs") or {}


def _options(role: str) -> dict[str, dict[str, dict[str, Any]]]:
    return {name: entry.get("options") or {} for name, entry in _entry_points(role).items()}


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


# Types a Jinja expression cannot be written as: antsibull-docs (and Galaxy's docs) refuse such a
# default, so the spec gives none and the README shows the expression from defaults/main.yml.
_UNTYPEABLE_TEMPLATE = {"list", "dict", "bool", "int", "float"}


def spec_default(value: Any, option_type: str = "str") -> Any:
    """The default argument_specs must give for a value of defaults/main.yml."""
    if isinstance(value, str) and _NONE_UNLESS_SET.match(value):
        return None
    return None if _is_template(value) and option_type in _UNTYPEABLE_TEMPLATE else value


def _check(role: str, problems: list[Problem], kinds: set[str]) -> None:
    """Fail on any problem not in KNOWN_DRIFT, and on a known one of these kinds that is gone."""
    known = {drift for drift in KNOWN_DRIFT.get(role, set()) if drift[2] in kinds}
    found = {(p.name, p.entry_point, p.kind) for p in problems}
    new = [str(p) for p in problems if (p.name, p.entry_point, p.kind) not in known]
    fixed = sorted(known - found)
    assert not new, f"roles/{role}:\n  " + "\n  ".join(new)
    assert not fixed, f"roles/{role}: fixed, remove from KNOWN_DRIFT: {fixed}"


@pytest.mark.parametrize("role", ROLES)
def test_role_has_its_contract_files(role: str) -> None:
    path = ROLES_DIR / role
    meta = _yaml(path / "meta" / "main.yml") or {}
    assert "galaxy_info" in meta, f"roles/{role}/meta/main.yml with galaxy_info"
    assert "main" in _entry_points(role), f"roles/{role}/meta/argument_specs.yml with the entry point main"
    assert (path / "README.md").is_file(), f"roles/{role}/README.md"
    for name, entry in _entry_points(role).items():
        assert entry.get("short_description") and entry.get("description"), f"{role} entry point {name}"


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_is_prefixed_with_the_role_name(role: str) -> None:
    names = set(_defaults(role)) | {name for options in _options(role).values() for name in options}
    assert sorted(n for n in names if not n.startswith(f"{role}_")) == []


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_specified_with_the_same_default(role: str) -> None:
    problems = []
    defaults, entry_points = _defaults(role), _options(role)
    for name, value in defaults.items():
        where = {ep: options[name] for ep, options in entry_points.items() if name in options}
        if not where:
            problems.append(Problem(name, "-", "not specified", "in defaults/main.yml, in no entry point"))
        for ep, option in where.items():
            if option.get("required"):
                problems.append(Problem(name, ep, "required but defaulted",
                                        "defaults/main.yml always satisfies the requirement"))
            elif option.get("default") != spec_default(value, option.get("type", "str")):
                problems.append(Problem(name, ep, "default differs",
                                        f"{option.get('default')!r} in argument_specs, {value!r} in defaults"))
    _check(role, problems, {"not specified", "required but defaulted", "default differs"})


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_typed_described_and_defaulted(role: str) -> None:
    """Options of main all have defaults; those of other entry points (inputs a calling role sets
    with tasks_from) are defaulted in defaults/main.yml or required."""
    problems = []
    defaults = _defaults(role)
    for ep, options in _options(role).items():
        for name, option in options.items():
            if not option.get("type") or not option.get("description"):
                problems.append(Problem(name, ep, "undocumented", "needs a type and a description"))
            if name not in defaults and (ep == "main" or not option.get("required")):
                problems.append(Problem(name, ep, "not defaulted", "missing from defaults/main.yml"))
            choices, default = option.get("choices"), option.get("default")
            if choices and default is not None and not _is_template(default) and default not in choices:
                problems.append(Problem(name, ep, "default not a choice", f"{default!r} not in {choices}"))
            if option.get("type") == "list" and not option.get("elements"):
                problems.append(Problem(name, ep, "no elements", "a list option says the type of its elements"))
    _check(role, problems, {"undocumented", "not defaulted", "default not a choice", "no elements"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ mlstack_host_port | default(none) }}", None),
        ("{{ mlstack_port | default(6379) }}", "{{ mlstack_port | default(6379) }}"),
        ("127.0.0.1", "127.0.0.1"),
        (60, 60),
        (None, None),
    ],
)
def test_spec_default_is_the_same_except_none_unless_set(value: Any, expected: Any) -> None:
    assert spec_default(value) == expected


@pytest.mark.parametrize(("value", "option_type", "expected"), [
    ("{{ x | default(true) }}", "bool", None),
    ("{{ hostvars | f }}", "list", None),
    ("{{ x.docker_url }}", "str", "{{ x.docker_url }}"),
    (True, "bool", True),
])
def test_a_template_default_of_a_type_it_cannot_be_is_left_out_of_the_spec(value: Any, option_type: str,
                                                                           expected: Any) -> None:
    assert spec_default(value, option_type) == expected
