# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generated secrets: made once, kept outside the repository, mode 0600, never regenerated."""

from __future__ import annotations

import os
import re
import secrets
import stat
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MIN_LENGTH = 24


class SecretError(ValueError):
    """A secret that cannot be used as it is; the message names the file and the fix."""


_ALPHABET = string.ascii_letters + string.digits


def generate(length: int = 40) -> str:
    """Letters and digits only: safe in URLs, ACL files and shells, never read as an option."""
    return "".join(secrets.choice(_ALPHABET) for _position in range(length))


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


def ensure_keypair(base: Path, unit: str, name: str, check_mode: bool = False,
                   vault: Any = None) -> tuple[str, bool]:
    """An Ed25519 signing key pair: ``<name>.pem`` (private, 0600) and ``<name>.pub.pem``.

    Returns (public key PEM, created). Services get only the public half. With ``vault``
    (an object with ``encrypt``/``decrypt``, see _jwt.Vault) the private key is kept
    Ansible Vault-encrypted; a plain one found there is encrypted in place.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = secret_path(base, unit, f"{name}.pem")
    public_path = secret_path(base, unit, f"{name}.pub.pem")
    if private_path.exists():
        check_permissions(private_path.parent)
        check_permissions(private_path)
        stored = private_path.read_bytes()
        pem = vault.decrypt(stored, private_path) if vault is not None else stored
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SecretError(f"{private_path} is not an Ed25519 private key: move it away to have one generated")
        if vault is not None and not check_mode and pem == stored:
            _write_private(private_path, vault.encrypt(pem), replace=True)
        created = False
    else:
        key = Ed25519PrivateKey.generate()
        created = True
        if not check_mode:
            for directory in (base, private_path.parent):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                check_permissions(directory)
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            _write_private(private_path, vault.encrypt(pem) if vault is not None else pem, replace=False)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    if not check_mode and (not public_path.exists() or public_path.read_text() != public):
        public_path.write_text(public)
        public_path.chmod(0o644)
    return public, created


def _write_private(path: Path, data: bytes, replace: bool) -> None:
    """0600 from the first byte; O_EXCL for a new key, an atomic rename for a re-encrypted one."""
    target = path.with_name(path.name + ".tmp") if replace else path
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    if replace:
        os.replace(target, path)


def previous_path(path: Path) -> Path:
    """Where a rotated secret's former value waits until every client has the new one."""
    return path.with_name(path.name + ".previous")


def rotate(base: Path, unit: str, name: str, length: int = 40, check_mode: bool = False) -> str:
    """Replace a secret with a new value, keeping the former one as ``<name>.previous``.

    The former value stays accepted (Redis takes two passwords per user) until
    :func:`drop_previous`; a rotation that was not finished is not started again. One
    interrupted between keeping the former value and writing the new one (both files
    hold the same value) gets its new value now, so a re-run completes it.
    """
    path = secret_path(base, unit, name)
    current, _created = ensure(base, unit, name, length, check_mode)
    before = previous_path(path)
    if check_mode or rotation_started(base, unit, name):
        return current
    if not before.exists():
        fd = os.open(before, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(current + "\n")
    value = generate(length)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    os.replace(tmp, path)
    return value


def rotation_started(base: Path, unit: str, name: str) -> bool:
    """Whether the secret already has its new value beside a different former one."""
    path = secret_path(base, unit, name)
    former = previous(base, unit, name)
    return former is not None and path.exists() and path.read_text(encoding="utf-8").strip() != former


def previous(base: Path, unit: str, name: str) -> str | None:
    """The former value of a secret in rotation, or None."""
    before = previous_path(secret_path(base, unit, name))
    if not before.exists():
        return None
    check_permissions(before)
    return before.read_text(encoding="utf-8").strip()


def drop_previous(base: Path, unit: str, name: str, check_mode: bool = False) -> bool:
    """End a rotation: the former value is no longer accepted anywhere. Returns whether one was dropped."""
    before = previous_path(secret_path(base, unit, name))
    if not before.exists():
        return False
    if not check_mode:
        before.unlink()
    return True


def store(base: Path, unit: str, name: str, value: str, check_mode: bool = False) -> bool:
    """Keep a secret the user gave (an imported one) as it is, 0600; True when the file changed."""
    path = secret_path(base, unit, name)
    if path.exists():
        check_permissions(path)
        if path.read_text(encoding="utf-8") == value:
            return False
    if check_mode:
        return True
    for directory in (base, path.parent):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_permissions(directory)
    _write_private(path, value.encode("utf-8"), replace=path.exists())
    return True


def given(base: Path, unit: str, name: str) -> str:
    """A secret the user gave (``store``), exactly as given; never generated."""
    path = secret_path(base, unit, name)
    if not path.exists():
        raise SecretError(f"{path} is missing: the unit's secrets come from its compose file; run "
                          "playbooks/import_compose.yml again, or put the secret there (mode 0600)")
    check_permissions(path)
    return path.read_text(encoding="utf-8")


def file_content(value: str, former: str | None, rotating: bool) -> str:
    """What a unit's secret file holds: the value; for a file that changes live (Neo4j's) while
    its rotation runs, the former value and then the new one, a line each, so that a new
    connection logs in with whichever of them the server has."""
    if rotating and former is not None and former != value:
        return f"{former}\n{value}"
    return value


def unit_secret_files(base: Path, entries: Mapping[str, Sequence[str]], rotation_files: Sequence[str],
                      check_mode: bool = False) -> dict[str, str]:
    """Each secret file of a unit (file name -> [secret unit, secret name] or [secret unit,
    secret name, prefix], e.g. Neo4j's ``neo4j/`` before its password) and its content; a
    secret not yet generated is generated here, by whichever unit needs it first."""
    contents = {}
    for key, entry in entries.items():
        if len(entry) not in (2, 3):
            raise SecretError(f"secret_files.entries.{key}: {list(entry)!r} must be [unit, name] "
                              "or [unit, name, prefix]")
        unit, name = str(entry[0]), str(entry[1])
        prefix = str(entry[2]) if len(entry) == 3 else ""
        value = ensure(base, unit, name, check_mode=check_mode)[0]
        contents[str(key)] = prefix + file_content(value, previous(base, unit, name), key in rotation_files)
    return contents
