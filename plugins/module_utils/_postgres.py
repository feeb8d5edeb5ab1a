# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: the connection seam, service names and libpq's error texts.

What the provisioning (:mod:`._postgres_provision`) and the checks
(:mod:`._postgres_checks`) share. Both talk to the server only through a
``connect(host, port, user, password, dbname, timeout)`` factory returning a
psycopg-like connection (``execute`` → cursor with ``fetchone``/``fetchall``,
``transaction()``, ``close()``). The modules use :func:`pg_connect`; unit tests pass
fakes that raise ``psycopg.OperationalError``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    import psycopg  # noqa: F401  # pylint: disable=unused-import

    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR: str | None = None
except ImportError as _exc:  # pragma: no cover - depends on the target's Python
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = str(_exc)

Connect = Callable[[str, int, str, "str | None", str, float], Any]

NAME_RE = re.compile(r"^[a-z0-9_]+$")
# The predefined roles a service role may be made a member of: read-only views of the
# server's statistics and settings (the PostgreSQL exporter), never of any table's data.
MEMBERSHIPS = ("pg_monitor",)


# --- names (pure) ------------------------------------------------------------------------


def validate_services(services: Sequence[dict[str, Any]], field: str) -> list[str]:
    """Error messages naming ``<field>[i].name`` / ``.database`` for bad or clashing names."""
    errors: list[str] = []
    names: set[str] = set()
    databases: dict[str, str] = {}
    for index, service in enumerate(services):
        name = service.get("name")
        database = service.get("database") or name
        for key, value in (("name", name), ("database", database)):
            if not isinstance(value, str) or not NAME_RE.match(value):
                errors.append(
                    f"{field}[{index}].{key}: {value!r} is not a valid name; "
                    "use lower-case letters, digits and underscore"
                )
        for index_role, role in enumerate(service.get("member_of") or []):
            if role not in MEMBERSHIPS:
                errors.append(f"{field}[{index}].member_of[{index_role}]: {role!r} is not granted to a service role; "
                              f"use one of {list(MEMBERSHIPS)}")
        if isinstance(name, str):
            if name in names:
                errors.append(f"{field}[{index}].name: {name!r} appears more than once")
            names.add(name)
        if isinstance(database, str) and database in databases and databases[database] != name:
            errors.append(f"{field}[{index}].database: {database!r} is already the database of {databases[database]!r}")
        elif isinstance(database, str):
            databases[database] = name
    return errors


@dataclass(frozen=True)
class Service:
    """One client service: its role, that role's password and its own database."""

    name: str
    password: str = field(repr=False)
    database: str
    # Predefined roles (MEMBERSHIPS) the role is granted; none for an ordinary service.
    member_of: tuple[str, ...] = ()


def services_from_params(items: Sequence[dict[str, Any]] | None) -> list[Service]:
    return [Service(i["name"], i["password"], i.get("database") or i["name"], tuple(i.get("member_of") or ()))
            for i in items or []]


# --- libpq's errors (pure) -----------------------------------------------------------------


def error_text(exc: BaseException) -> str:
    """``Class: message`` on one line (libpq's errors span lines)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"


def is_auth_failure(exc: BaseException) -> bool:
    """libpq or the server refused for want of a right password."""
    text = str(exc).lower()
    return "password authentication failed" in text or "no password supplied" in text or "authentication failed" in text


def connect_denial(exc: BaseException) -> str | None:
    """``privilege`` or ``pg_hba`` when a connection to a database was refused for that reason."""
    text = str(exc).lower()
    if "permission denied for database" in text or "connect privilege" in text:
        return "privilege"
    if "no pg_hba.conf entry" in text or "pg_hba.conf rejects" in text:
        return "pg_hba"
    return None


# --- the I/O seam --------------------------------------------------------------------------


def pg_connect(host: str, port: int, user: str, password: str | None, dbname: str, timeout: float) -> Any:
    """The real seam: a psycopg connection in autocommit mode over TCP.

    ``password=None`` sends an empty password and ``passfile`` names a file that cannot
    exist (``/dev/null/pgpass``: libpq skips it silently, where /dev/null itself draws a
    warning), so neither ``PGPASSWORD`` nor ``~/.pgpass`` can slip one in behind the
    caller's back.
    """
    import psycopg

    return psycopg.connect(
        host=host,
        port=port,
        user=user,
        password=password or "",
        dbname=dbname,
        connect_timeout=max(1, round(timeout)),
        passfile=os.path.join(os.devnull, "pgpass"),
        application_name="mlstack",
        autocommit=True,
    )


def close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # closing is best effort
        conn.close()


def query_rows(conn: Any, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    return list(conn.execute(query, params).fetchall())


def query_one(conn: Any, query: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
    return conn.execute(query, params).fetchone()
