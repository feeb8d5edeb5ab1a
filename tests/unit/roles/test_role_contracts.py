"""Every role's contract: defaults/main.yml, meta/argument_specs.yml and README.md agree.

STYLE.md (Roles): every public variable is ``<role>_*`` in defaults and appears in
meta/argument_specs.yml with type, description, choices and the same default; the README's
variables tables list exactly the entry points' options, with the same defaults and
descriptions. Roles whose names start with ``_`` are private and not checked here.
"""

from __future__ import annotations

import json
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
_MARKUP = re.compile(r"\b(?:C|O|V|M|RV|E|P)\(([^)]*)\)")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_ENTRY_POINT_HEADING = re.compile(r"^Entry point `(\w+)`")
_README_KINDS = {"no README table", "README row without option", "README row missing", "README default differs",
                 "README description differs", "README table without entry point"}


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


def render_default(value: Any) -> str:
    """A default as a README table shows it, inside backticks: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value)


def render_description(description: str | list[str]) -> str:
    """An argument_specs description as one line of Markdown: C(x), O(x), M(x)... become `x`."""
    text = " ".join(description) if isinstance(description, list) else description
    return _MARKUP.sub(r"`\1`", " ".join(text.split()))


def readme_tables(text: str) -> dict[str, dict[str, tuple[str, str]]]:
    """Rows name -> (default cell, description) of the tables under "## Variables" (entry point
    main) and under headings "## Entry point `<name>`"; tables under other headings are ignored."""
    tables: dict[str, dict[str, tuple[str, str]]] = {}
    section = None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            match = _ENTRY_POINT_HEADING.match(heading)
            section = "main" if heading == "Variables" else match.group(1) if match else None
            continue
        if section is None or not line.startswith("|"):
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(line.strip())[1:-1]]
        name = re.fullmatch(r"`(\w+)`", cells[0]) if cells else None
        if name and len(cells) == 3:
            tables.setdefault(section, {})[name.group(1)] = (cells[1], cells[2])
    return tables


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


@pytest.mark.parametrize("role", ROLES)
def test_readme_tables_list_every_option_with_its_default_and_description(role: str) -> None:
    readme = ROLES_DIR / role / "README.md"
    if not readme.is_file():
        pytest.fail(f"roles/{role}/README.md is missing")
    tables, defaults = readme_tables(readme.read_text()), _defaults(role)
    problems = []
    for ep, options in _options(role).items():
        rows = tables.pop(ep, None)
        heading = "## Variables" if ep == "main" else f"## Entry point `{ep}`"
        if rows is None:
            problems.append(Problem("-", ep, "no README table", f"README.md needs a table under {heading!r}"))
            continue
        for name in sorted(set(rows) - set(options)):
            problems.append(Problem(name, ep, "README row without option", "not in argument_specs"))
        for name, option in options.items():
            if name not in rows:
                problems.append(Problem(name, ep, "README row missing", f"not in the table under {heading!r}"))
                continue
            shown, description = rows[name]
            if name in defaults:
                expected = f"`{render_default(defaults[name])}`"
            elif option.get("required"):
                expected = "required"
            else:
                expected = f"`{render_default(option.get('default'))}`"
            if shown != expected:
                problems.append(Problem(name, ep, "README default differs", f"shows {shown}, expected {expected}"))
            if description != render_description(option.get("description", "")):
                problems.append(Problem(name, ep, "README description differs",
                                        f"{description!r} != {render_description(option.get('description', ''))!r}"))
    for ep in tables:
        problems.append(Problem("-", ep, "README table without entry point", "not in argument_specs"))
    _check(role, problems, _README_KINDS)


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


def test_readme_tables_are_read_by_section_with_escaped_pipes() -> None:
    text = "\n".join([
        "## Variables",
        "| Name | Default | Description |",
        "|------|---------|-------------|",
        "| `a_port` | `{{ p \\| default(1) }}` | The `port`. |",
        "## Entry point `unit`",
        "| `a_unit` | required | Whose. |",
        "## Facts",
        "| `a_fact` | `x` | Not an option. |",
    ])
    assert readme_tables(text) == {
        "main": {"a_port": ("`{{ p | default(1) }}`", "The `port`.")},
        "unit": {"a_unit": ("required", "Whose.")},
    }


def test_descriptions_render_as_markdown() -> None:
    assert render_description(["Uses C(x) and O(a_b)", "with M(aiops.mlstack.container)."]) == (
        "Uses `x` and `a_b` with `aiops.mlstack.container`."
    )


@pytest.mark.parametrize(("value", "option_type", "expected"), [
    ("{{ x | default(true) }}", "bool", None),
    ("{{ hostvars | f }}", "list", None),
    ("{{ x.docker_url }}", "str", "{{ x.docker_url }}"),
    (True, "bool", True),
])
def test_a_template_default_of_a_type_it_cannot_be_is_left_out_of_the_spec(value: Any, option_type: str,
                                                                           expected: Any) -> None:
    assert spec_default(value, option_type) == expected
