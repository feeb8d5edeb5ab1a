# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generated secrets: made once, kept outside the repository, mode 0600, never regenerated."""

from __future__ import annotations

import os
import re
import secrets
import stat
import string
from pathlib import Path

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MIN_LENGTH = 24


class SecretError(ValueError):
    """A secret that cannot be used as it is; the message names the file and the fix."""


_ALPHABET = string.ascii_letters + string.digits


def generate(length: int = 40) -> str:
    """Letters and digits only: safe in URLs, ACL files and shells, never read as an option."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def secret_path(base: Path, unit: str, name: str) -> Path:
    for label, value in (("unit", unit), ("name", name)):
        if not NAME_RE.match(value):
            raise SecretError(f"secret {label} {value!r} is invalid: use lower-case letters, digits, '_', '-', '.'")
    return base / unit / name


def check_permissions(path: Path) -> None:
    """Refuse a secret (or its directory) that others can read: someone may already have it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        fix = "chmod 700" if path.is_dir() else "chmod 600"
        raise SecretError(f"{path} has mode {mode:04o}, readable by others: run '{fix} {path}' "
                          "(and rotate the secret if it may have leaked)")


def ensure(base: Path, unit: str, name: str, length: int = 40, check_mode: bool = False) -> tuple[str, bool]:
    """Return (value, created). An existing secret is read, never replaced."""
    path = secret_path(base, unit, name)
    if path.exists():
        check_permissions(path.parent)
        check_permissions(path)
        value = path.read_text(encoding="utf-8").strip()
        if len(value) < MIN_LENGTH:
            raise SecretError(f"{path} holds a secret shorter than {MIN_LENGTH} characters: "
                              "remove the file to have a strong one generated, or put a longer one there")
        return value, False
    if check_mode:
        # Ephemeral: lets the rest of a check-mode run render what it would write.
        return generate(length), True
    for directory in (base, path.parent):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_permissions(directory)
    value = generate(length)
    # O_EXCL: two units generating the same secret at once cannot both write it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return ensure(base, unit, name, length, check_mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value, True
