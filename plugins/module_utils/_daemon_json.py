# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions behind daemon.json handling (aiops.mlstack.daemon_config, dockerd_start).

daemon.json is shared: the NVIDIA toolkit, a person and this collection all write to it.
So the rules are: merge what we own into what is there, never delete a key we were not
told about, refuse to touch a file that is not valid JSON, and write it back in one
stable format so that an unchanged run changes nothing.

Standard library only; every function is free of I/O.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

DEFAULT_PATH = "/etc/docker/daemon.json"


def _canonical(value: Any) -> str:
    """One text per JSON value, so that ``true`` and ``1`` (equal in Python) differ."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def same(a: Any, b: Any) -> bool:
    """True when two JSON values are the same JSON (strict about bool versus number)."""
    return _canonical(a) == _canonical(b)


def merge(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``desired`` into ``current`` and return a new dict.

    - Keys of ``current`` that ``desired`` does not name are kept untouched.
    - When both sides hold a dict (``runtimes``, ``runtimes.nvidia``, ``log-opts``) the
      dicts are merged by the same rule, so another tool's runtime survives ours.
    - Any other value named in ``desired`` (a list such as ``insecure-registries``, a
      string, a number, a bool, null) replaces the current one as a whole.

    Neither argument is modified.
    """
    if not isinstance(current, dict) or not isinstance(desired, dict):
        raise TypeError("merge() takes two dicts")
    result: dict[str, Any] = json.loads(json.dumps(current))
    for key, value in desired.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = json.loads(json.dumps(value))
    return result


def diff_keys(before: dict[str, Any], after: dict[str, Any], _prefix: str = "") -> list[str]:
    """Sorted dotted paths whose value differs between ``before`` and ``after``.

    Added and removed keys count as changed. Dicts are walked; any other value
    (lists included) is compared as a whole.
    """
    changed: list[str] = []
    for key in sorted(set(before) | set(after)):
        path = f"{_prefix}{key}"
        if key not in before or key not in after:
            changed.append(path)
            continue
        old, new = before[key], after[key]
        if isinstance(old, dict) and isinstance(new, dict):
            changed.extend(diff_keys(old, new, f"{path}."))
        elif not same(old, new):
            changed.append(path)
    return changed


def load(text: str, path: str = DEFAULT_PATH) -> dict[str, Any]:
    """Parse daemon.json text; an empty (or blank) file is an empty configuration.

    Raises ValueError naming ``path`` and the JSON error for text that is not a JSON
    object: such a file is a person's half-finished edit and is never overwritten.
    """
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "refusing to overwrite it: fix or remove the file, then run again"
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} must hold a JSON object, found {type(data).__name__}; "
            "refusing to overwrite it: fix or remove the file, then run again"
        )
    return data


def dump(obj: dict[str, Any]) -> str:
    """The one text this collection writes: sorted keys, indent 2, trailing newline."""
    return json.dumps(obj, sort_keys=True, indent=2) + "\n"


def plan(current_text: str | None, desired: dict[str, Any], path: str = DEFAULT_PATH) -> dict[str, Any]:
    """Decide what to write. ``current_text`` is None when the file does not exist.

    Returns ``changed``, ``config`` (the merged dict), ``changed_keys``, ``before`` and
    ``after`` (texts for the diff) and ``write`` (the text to write, or None). A missing
    file is not created for an empty result: there is nothing to say in it.
    """
    current = load(current_text, path) if current_text is not None else {}
    merged = merge(current, desired)
    keys = diff_keys(current, merged)
    missing_and_empty = current_text is None and not merged
    changed = not missing_and_empty and (current_text is None or not same(current, merged))
    before = current_text if current_text is not None else ""
    after = dump(merged) if changed else before
    return {
        "changed": changed,
        "config": merged,
        "changed_keys": keys,
        "before": before,
        "after": after,
        "write": after if changed else None,
    }


_EXEC_START = re.compile(r"^\s*ExecStart\s*=(.*)$")


def _logical_lines(text: str) -> list[str]:
    """Unit-file lines with backslash continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and stripped.startswith(("#", ";")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending:
        lines.append(pending.strip())
    return lines


def effective_exec_start(unit_texts: list[str]) -> list[str]:
    """The ExecStart command lines systemd would use for unit text given in load order.

    ``unit_texts`` is the main unit followed by its drop-ins in the order systemd reads
    them; an empty ``ExecStart=`` resets the list, as it does in systemd.
    """
    commands: list[str] = []
    for text in unit_texts:
        for line in _logical_lines(text):
            match = _EXEC_START.match(line)
            if not match:
                continue
            value = match.group(1).strip()
            if value:
                commands.append(value)
            else:
                commands = []
    return commands


def _host_flags(command: str) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    flags: list[str] = []
    for index, word in enumerate(words):
        if word in ("-H", "--host"):
            value = words[index + 1] if index + 1 < len(words) else ""
            flags.append(f"{word} {value}".strip())
        elif word.startswith("--host="):
            flags.append(word)
        elif word.startswith("-H") and len(word) > 2 and not word.startswith("--"):
            flags.append(word)
    return flags


def hosts_conflict(daemon_json: dict[str, Any], unit_texts: list[str]) -> str | None:
    """A message when daemon.json sets ``hosts`` and the unit's ExecStart passes -H/--host.

    dockerd refuses to start when a directive is given both as a flag and in the
    configuration file; Debian's and Docker's own units pass ``-H fd://``.
    """
    if "hosts" not in daemon_json:
        return None
    flags: list[str] = []
    for command in effective_exec_start(unit_texts):
        flags.extend(_host_flags(command))
    if not flags:
        return None
    return (
        f"daemon.json sets 'hosts' ({_canonical(daemon_json['hosts'])}) while the systemd ExecStart of docker "
        f"passes {', '.join(repr(f) for f in flags)}; dockerd refuses to start with both. Drop 'hosts' from "
        "the settings, or add a drop-in (/etc/systemd/system/docker.service.d/override.conf) with an empty "
        "'ExecStart=' line followed by an ExecStart without -H, then run systemctl daemon-reload"
    )
