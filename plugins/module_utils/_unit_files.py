# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A unit's runtime directories and files (secrets, JWT public keys), as one reconcile step.

On a local connection the step works in the controller's own process: a ``file`` or ``copy``
task costs a module start (about 0.3 s on two cores) for every path, and a unit has several.
Elsewhere the same code runs on the Docker host as one ``unit_files`` module start for all of
a unit's paths; over SSH a ``file`` or ``copy`` action per path cost 3-5 s each (43-69 s for a
service's no-op reconcile on the multihost scenario).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What a secret file's diff shows in place of its content.
HIDDEN = "(secret: not shown)"


class FilesError(ValueError):
    """A want that cannot be met; the message names the path and the field."""


@dataclass(frozen=True)
class Want:
    """One path as the unit needs it: a directory when ``content`` is None."""

    path: str
    owner: int
    group: int
    mode: int
    content: str | None = None
    secret: bool = False

    @property
    def is_dir(self) -> bool:
        return self.content is None


@dataclass(frozen=True)
class Change:
    """What reconciling one path changed (or would, in check mode)."""

    path: str
    what: tuple[str, ...]
    before: str
    after: str


def _mode(value: Any, where: str) -> int:
    try:
        mode = int(str(value), 8)
    except ValueError:
        raise FilesError(f"{where}: mode={value!r} is not an octal mode such as '0400'") from None
    if not 0 <= mode <= 0o7777:
        raise FilesError(f"{where}: mode={value!r} is out of range")
    return mode


def _id(value: Any, where: str, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FilesError(f"{where}: {field}={value!r} must be a numeric id (the unit's uid)") from None


def wants_of(directories: Iterable[Mapping[str, Any]], files: Iterable[Mapping[str, Any]]) -> list[Want]:
    """The directories, then the files, from the task's arguments; bad input names its field."""
    wants: list[Want] = []
    for kind, entries in (("directories", directories), ("files", files)):
        for index, entry in enumerate(entries):
            where = f"{kind}[{index}]"
            path = str(entry.get("path") or "")
            if not path.startswith("/"):
                raise FilesError(f"{where}: path={path!r} must be an absolute path")
            content = None if kind == "directories" else str(entry.get("content", ""))
            group = entry.get("group") if entry.get("group") is not None else entry.get("owner")
            mode = entry.get("mode") or ("0755" if content is None else "0400")
            wants.append(Want(path=path, owner=_id(entry.get("owner"), where, "owner"),
                              group=_id(group, where, "group"), mode=_mode(mode, where),
                              content=content, secret=bool(entry.get("secret", False))))
    return wants


def _shown(want: Want, mode: int, owner: int, group: int, content: str | None) -> str:
    """A path's state as diff text: its mode and owner on a line (a change of either alone must
    show in a diff too), then its content, hidden when it is a secret."""
    state = f"# mode {mode:04o}, owner {owner}:{group}\n"
    if content is None:
        return state
    return state + (f"{HIDDEN}\n" if want.secret else content)


def _differences(want: Want, current: os.stat_result | None, content: str | None) -> tuple[str, ...]:
    """What differs between ``want`` and the path as it is (its stat and, for a file, its content)."""
    if current is None:
        return ("created",)
    if want.is_dir != stat.S_ISDIR(current.st_mode):
        raise FilesError(f"{want.path} is a {'file' if want.is_dir else 'directory'}: remove it, the unit needs "
                         f"a {'directory' if want.is_dir else 'file'} there")
    what = []
    if not want.is_dir and content != want.content:
        what.append("content")
    if stat.S_IMODE(current.st_mode) != want.mode:
        what.append(f"mode {stat.S_IMODE(current.st_mode):04o} -> {want.mode:04o}")
    if (current.st_uid, current.st_gid) != (want.owner, want.group):
        what.append(f"owner {current.st_uid}:{current.st_gid} -> {want.owner}:{want.group}")
    return tuple(what)


def _read(path: Path) -> tuple[os.stat_result | None, str | None]:
    try:
        current = path.lstat()
    except FileNotFoundError:
        return None, None
    if stat.S_ISREG(current.st_mode):
        return current, path.read_text(encoding="utf-8", errors="surrogateescape")
    return current, None


def _write_file(want: Want, path: Path) -> None:
    """The content in a temporary file beside it, owned and moded first, then renamed: a reader
    (the service re-reads its password files) never sees a half-written or too-open file."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, want.mode)
        os.fchown(fd, want.owner, want.group)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(want.content or "")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def apply_local(wants: Iterable[Want], check_mode: bool) -> list[Change]:
    """Reconcile each path in this process; returns what changed (would change, in check mode)."""
    changes = []
    for want in wants:
        path = Path(want.path)
        current, content = _read(path)
        what = _differences(want, current, content)
        if not what:
            continue
        before = "" if current is None else _shown(want, stat.S_IMODE(current.st_mode), current.st_uid,
                                                   current.st_gid, content)
        changes.append(Change(want.path, what, before, _shown(want, want.mode, want.owner, want.group, want.content)))
        if check_mode:
            continue
        if want.is_dir:
            # Missing parents as the file module makes them (the runtime root on a fresh host).
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=want.mode, exist_ok=True)
            os.chown(path, want.owner, want.group)
            os.chmod(path, want.mode)
        elif "content" in what or current is None:
            _write_file(want, path)
        else:
            os.chown(path, want.owner, want.group)
            os.chmod(path, want.mode)
    return changes


def as_args(wants: Iterable[Want]) -> dict[str, Any]:
    """The ``unit_files`` module's arguments (run on the Docker host in one module start): a
    secret's content apart, in ``secret_contents`` (no_log), so that it never reaches the target's
    log of the module's invocation."""
    rows, secrets = [], {}
    for w in wants:
        rows.append({"path": w.path, "owner": w.owner, "group": w.group, "mode": f"{w.mode:04o}",
                     "content": None if w.secret else w.content, "secret": w.secret})
        if w.secret:
            secrets[w.path] = w.content or ""
    return {"wants": rows, "secret_contents": secrets}


def from_args(entries: Iterable[Mapping[str, Any]], secret_contents: Mapping[str, str]) -> list[Want]:
    """:func:`as_args` read back on the Docker host; bad input names the path and the field."""
    wants = []
    for entry in entries:
        path = str(entry["path"])
        content = secret_contents.get(path) if entry.get("secret") else entry.get("content")
        if entry.get("secret") and content is None:
            raise FilesError(f"{path}: secret file without its content in secret_contents")
        wants.append(Want(path=path, owner=int(entry["owner"]), group=int(entry["group"]),
                          mode=_mode(entry["mode"], path), content=None if content is None else str(content),
                          secret=bool(entry.get("secret"))))
    return wants


def change_of(entry: Mapping[str, Any]) -> Change:
    return Change(str(entry["path"]), tuple(entry["what"]), str(entry["before"]), str(entry["after"]))


def diff_of(changes: Iterable[Change]) -> list[dict[str, str]]:
    """Ansible's diff entries, one per changed path; a secret's content stays hidden."""
    return [{"before_header": f"{change.path} ({', '.join(change.what)})", "after_header": change.path,
             "before": change.before, "after": change.after} for change in changes]


def stale(candidates: Iterable[str], mounted: Iterable[str], keep: Iterable[str]) -> list[str]:
    """The content-addressed directories to remove: those that no container mounts (the serving
    one, or the kept predecessor a rollback starts) and that this run does not keep."""
    spared = {os.path.normpath(path) for path in [*mounted, *keep]}
    return sorted(path for path in candidates if os.path.normpath(path) not in spared)


def local_dirs(directory: str, pattern: str) -> list[str]:
    """The directories under ``directory`` whose names match ``pattern`` (a glob)."""
    return sorted(str(path) for path in Path(directory).glob(pattern) if path.is_dir() and not path.is_symlink())
