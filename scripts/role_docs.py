"""Write each role's variables table from its meta/argument_specs.yml into its README.

The argument spec is the one description of a role's options: ansible-core validates the
role's input against it, and the README shows it. A README holds one generated block per
entry point, between ``<!-- argument_specs:<entry> -->`` and ``<!-- /argument_specs -->``.

    python scripts/role_docs.py           rewrite the blocks
    python scripts/role_docs.py --check   exit 1 and name each README whose block is out of date
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
MARKUP = re.compile(r"\b(C|I|B|V|O|M|RV|E|P)\(([^()]*)\)")
BLOCK = re.compile(r"<!-- argument_specs:(?P<entry>[\w-]+) -->\n.*?<!-- /argument_specs -->", re.S)


def _markdown(match: re.Match[str]) -> str:
    """ansible-doc markup as Markdown: I() italic, B() bold, the rest (C(), O(), V(), M()...) as code."""
    kind, text = match.groups()
    return {"I": f"*{text}*", "B": f"**{text}**"}.get(kind, f"`{text}`")


def _cell(value: Any) -> str:
    text = " ".join(value) if isinstance(value, list) else str(value)
    return MARKUP.sub(_markdown, text).replace("|", "\\|").replace("\n", " ").strip()


def _default(option: dict[str, Any]) -> str:
    if option.get("required"):
        return "required"
    if "default" not in option:
        return "-"
    value = option["default"]
    return f"`{value if isinstance(value, str) else json.dumps(value)}`"


def _type(option: dict[str, Any]) -> str:
    kind = str(option.get("type", "str"))
    if kind == "list" and option.get("elements"):
        kind = f"list of {option['elements']}"
    choices = option.get("choices")
    return f"{kind}, one of {', '.join(f'`{c}`' for c in choices)}" if choices else kind


def render(entry: str, spec: dict[str, Any]) -> str:
    """The block for one entry point: a link to the spec, then one row per option."""
    lines = [f"<!-- argument_specs:{entry} -->",
             f"Generated from [`meta/argument_specs.yml`](meta/argument_specs.yml) (entry point `{entry}`) "
             "by `scripts/role_docs.py`: edit the spec, not this table.",
             "",
             "| Name | Type | Default | Description |",
             "|------|------|---------|-------------|"]
    for name, option in sorted((spec.get("options") or {}).items()):
        description = _cell(option.get("description", ""))
        lines.append(f"| `{name}` | {_type(option)} | {_cell(_default(option))} | {description} |")
    lines.append("<!-- /argument_specs -->")
    return "\n".join(lines)


def updated(readme: str, specs: dict[str, Any]) -> str:
    """The README with each entry point's block rewritten from the specs."""
    def replace(match: re.Match[str]) -> str:
        entry = match.group("entry")
        if entry not in specs:
            raise SystemExit(f"README names entry point {entry!r}, which meta/argument_specs.yml does not have")
        return render(entry, specs[entry])

    return BLOCK.sub(replace, readme)


def missing_blocks(readme: str, specs: dict[str, Any]) -> list[str]:
    found = {match.group("entry") for match in BLOCK.finditer(readme)}
    return sorted(set(specs) - found)


def main(argv: list[str]) -> int:
    check = argv[1:] == ["--check"]
    stale: list[str] = []
    for role in sorted((ROOT / "roles").iterdir()):
        readme_path, spec_path = role / "README.md", role / "meta" / "argument_specs.yml"
        if not spec_path.exists():
            continue
        specs = yaml.safe_load(spec_path.read_text())["argument_specs"]
        readme = readme_path.read_text()
        if missing := missing_blocks(readme, specs):
            stale.append(f"{readme_path.relative_to(ROOT)}: no block for entry point(s) {', '.join(missing)}")
            continue
        new = updated(readme, specs)
        if new != readme:
            stale.append(f"{readme_path.relative_to(ROOT)}: variables table differs from the argument spec")
            if not check:
                readme_path.write_text(new)
    for line in stale:
        print(line)
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
