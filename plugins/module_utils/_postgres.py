# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL probes and provisioning (psycopg 3) behind one seam.

Two parts:

* a pure core (standard library only): :func:`scram_verifier` computes the
  ``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`` string PostgreSQL keeps in
  ``pg_authid.rolpassword`` (RFC 5802 / RFC 7677, with PostgreSQL's SASLprep), and
  :func:`plan` turns the state read from the server plus the desired services into
  :class:`Step` objects (one SQL statement each, with a human-readable change);
* the I/O shell: :func:`check_postgres` and :func:`provision` talk to the server only
  through a ``connect(host, port, user, password, dbname, timeout)`` factory returning a
  psycopg-like connection (``execute`` → cursor with ``fetchone``/``fetchall``,
  ``transaction()``, ``close()``). The module passes :func:`pg_connect`; unit tests pass
  fakes that raise ``psycopg.OperationalError``.

Passwords never reach the server in clear text from :func:`provision`: it sends
verifiers computed here, so ``log_statement = ddl`` logs a verifier, never a password.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stringprep
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record, scrub, stopwatch

try:
    import psycopg  # noqa: F401  # pylint: disable=unused-import

    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR: str | None = None
except ImportError as _exc:  # pragma: no cover - depends on the target's Python
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = str(_exc)

Connect = Callable[[str, int, str, "str | None", str, float], Any]

NAME_RE = re.compile(r"^[a-z0-9_]+$")
SCRAM_PREFIX = "SCRAM-SHA-256$"
DEFAULT_ITERATIONS = 4096
WEAK_HBA_METHODS = ("trust", "password", "md5")
ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
_SCRAM_RE = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


# --- SCRAM-SHA-256 verifiers (pure) ----------------------------------------------------


def _prohibited(char: str) -> bool:
    return (
        stringprep.in_table_c12(char)
        or stringprep.in_table_c21_c22(char)
        or stringprep.in_table_c3(char)
        or stringprep.in_table_c4(char)
        or stringprep.in_table_c5(char)
        or stringprep.in_table_c6(char)
        or stringprep.in_table_c7(char)
        or stringprep.in_table_c8(char)
        or stringprep.in_table_c9(char)
        or stringprep.in_table_a1(char)
    )


def saslprep(password: str) -> bytes:
    """The bytes PostgreSQL hashes for ``password`` (its ``pg_saslprep`` behaviour).

    Pure ASCII passes unchanged. Otherwise RFC 4013: non-ASCII spaces become spaces,
    characters "commonly mapped to nothing" go, NFKC normalisation; when a prohibited
    or unassigned character or a bad bidi string is found, PostgreSQL falls back to the
    raw UTF-8 bytes, and so does this.
    """
    raw = password.encode("utf-8")
    if password.isascii():
        return raw
    mapped = [" " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c)]
    if not mapped:
        return raw
    # PostgreSQL checks the mapped input (before normalisation), so this does too.
    if any(_prohibited(c) for c in mapped):
        return raw
    if any(stringprep.in_table_d1(c) for c in mapped):
        if any(stringprep.in_table_d2(c) for c in mapped):
            return raw
        if not (stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1])):
            return raw
    return unicodedata.normalize("NFKC", "".join(mapped)).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def scram_keys(password: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS) -> tuple[bytes, bytes]:
    """``(StoredKey, ServerKey)`` of RFC 5802 section 3 for SHA-256."""
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest(), server_key


def scram_verifier(password: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS) -> str:
    """``SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>``, as PostgreSQL stores it."""
    if iterations < 1:
        raise ValueError("iterations must be positive")
    stored_key, server_key = scram_keys(password, salt, iterations)
    return f"{SCRAM_PREFIX}{iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


@dataclass(frozen=True)
class ScramVerifier:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes


def parse_scram_verifier(text: str | None) -> ScramVerifier | None:
    """The parts of a stored SCRAM verifier; ``None`` for anything else (md5, NULL)."""
    match = _SCRAM_RE.match(text or "")
    if not match:
        return None
    try:
        return ScramVerifier(
            int(match.group(1)),
            base64.b64decode(match.group(2), validate=True),
            base64.b64decode(match.group(3), validate=True),
            base64.b64decode(match.group(4), validate=True),
        )
    except ValueError:
        return None


def verifier_matches(stored: str | None, password: str) -> bool:
    """Whether ``stored`` is a SCRAM verifier of ``password`` (recomputed with its salt)."""
    parsed = parse_scram_verifier(stored)
    if parsed is None:
        return False
    stored_key, server_key = scram_keys(password, parsed.salt, parsed.iterations)
    return hmac.compare_digest(stored_key, parsed.stored_key) and hmac.compare_digest(server_key, parsed.server_key)


def password_kind(stored: str | None) -> str:
    """``scram-sha-256``, ``md5``, ``none`` or ``other``: what kind of secret a role has."""
    if not stored:
        return "none"
    if parse_scram_verifier(stored):
        return "scram-sha-256"
    if stored.startswith("md5") and len(stored) == 35:
        return "md5"
    return "other"


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


def services_from_params(items: Sequence[dict[str, Any]] | None) -> list[Service]:
    return [Service(i["name"], i["password"], i.get("database") or i["name"]) for i in items or []]


# --- provisioning plan (pure) ----------------------------------------------------------


@dataclass(frozen=True)
class RoleState:
    name: str
    login: bool
    superuser: bool
    createdb: bool
    createrole: bool
    replication: bool = False
    bypassrls: bool = False
    password: str | None = field(default=None, repr=False)  # the stored verifier, never shown

    @property
    def attributes_ok(self) -> bool:
        return self.login and not (
            self.superuser or self.createdb or self.createrole or self.replication or self.bypassrls
        )


@dataclass(frozen=True)
class DatabaseState:
    name: str
    owner: str
    public_connect: bool
    public_temporary: bool


@dataclass
class State:
    """What :func:`read_state` found: roles and databases by name, and who may CONNECT."""

    roles: dict[str, RoleState] = field(default_factory=dict)
    databases: dict[str, DatabaseState] = field(default_factory=dict)
    connect: dict[tuple[str, str], bool] = field(default_factory=dict)  # (role, database) -> may connect


@dataclass(frozen=True)
class Step:
    """One statement: ``template`` with ``{name}`` placeholders filled from ``identifiers``
    (quoted as identifiers) and ``literals`` (quoted as string literals)."""

    change: str
    template: str
    identifiers: tuple[tuple[str, str], ...] = ()
    literals: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def plan_service(
    service: Service,
    state: State,
    salt_factory: Callable[[], bytes] = lambda: os.urandom(16),
) -> list[Step]:
    """The statements that bring one service's role and database to the desired state."""
    steps: list[Step] = []
    role = state.roles.get(service.name)
    ident_role = (("role", service.name),)
    if role is None:
        steps.append(
            Step(
                f"create role {service.name} ({ROLE_ATTRIBUTES}, SCRAM-SHA-256 password)",
                "CREATE ROLE {role} " + ROLE_ATTRIBUTES + " PASSWORD {verifier}",
                ident_role,
                (("verifier", scram_verifier(service.password, salt_factory())),),
            )
        )
    else:
        if not role.attributes_ok:
            steps.append(
                Step(
                    f"set attributes of role {service.name} to {ROLE_ATTRIBUTES}",
                    "ALTER ROLE {role} " + ROLE_ATTRIBUTES,
                    ident_role,
                )
            )
        if not verifier_matches(role.password, service.password):
            steps.append(
                Step(
                    f"set password of role {service.name} (was {password_kind(role.password)}, differs)"
                    if role.password
                    else f"set password of role {service.name} (had none)",
                    "ALTER ROLE {role} PASSWORD {verifier}",
                    ident_role,
                    (("verifier", scram_verifier(service.password, salt_factory())),),
                )
            )
    database = state.databases.get(service.database)
    idents = (("database", service.database), ("role", service.name))
    grant = False
    if database is None:
        steps.append(
            Step(
                f"create database {service.database} owned by {service.name}",
                "CREATE DATABASE {database} OWNER {role}",
                idents,
            )
        )
        database = DatabaseState(service.database, service.name, True, True)
        grant = True
    elif database.owner != service.name:
        steps.append(
            Step(
                f"change owner of database {service.database} from {database.owner} to {service.name}",
                "ALTER DATABASE {database} OWNER TO {role}",
                idents,
            )
        )
        grant = True
    if database.public_connect or database.public_temporary:
        steps.append(
            Step(
                f"revoke CONNECT, TEMPORARY on database {service.database} from PUBLIC",
                "REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC",
                (("database", service.database),),
            )
        )
    if grant or not state.connect.get((service.name, service.database), False):
        steps.append(
            Step(
                f"grant CONNECT on database {service.database} to {service.name}",
                "GRANT CONNECT ON DATABASE {database} TO {role}",
                idents,
            )
        )
    return steps


def plan(
    services: Sequence[Service],
    state: State,
    salt_factory: Callable[[], bytes] = lambda: os.urandom(16),
) -> list[Step]:
    """All statements for all services, in order (each role before its database)."""
    steps: list[Step] = []
    for service in services:
        steps.extend(plan_service(service, state, salt_factory))
    return steps


def plan_admin(
    admin_user: str,
    admin_password: str,
    stored: str | None,
    salt_factory: Callable[[], bytes] = lambda: os.urandom(16),
) -> list[Step]:
    """The admin's own password (a rotation): a verifier of ``admin_password`` replaces the
    stored one unless it already is one. Open sessions are not cut; new ones need it."""
    if verifier_matches(stored, admin_password):
        return []
    return [
        Step(
            f"set password of admin role {admin_user} (was {password_kind(stored)}, differs)",
            "ALTER ROLE {role} PASSWORD {verifier}",
            (("role", admin_user),),
            (("verifier", scram_verifier(admin_password, salt_factory())),),
        )
    ]


def describe(services: Sequence[Service], state: State, desired: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The ``diff`` side for the managed roles and databases, without any secret.

    ``desired=True`` gives the after side: what :func:`plan` leads to.
    """
    roles: list[dict[str, Any]] = []
    databases: list[dict[str, Any]] = []
    for service in services:
        role = state.roles.get(service.name)
        if desired:
            roles.append(
                {
                    "name": service.name,
                    "attributes": ROLE_ATTRIBUTES,
                    "verifier": "scram-sha-256",
                    "verifier_matches": True,
                }
            )
        elif role is not None:
            flags = [
                "LOGIN" if role.login else "NOLOGIN",
                "SUPERUSER" if role.superuser else "NOSUPERUSER",
                "CREATEDB" if role.createdb else "NOCREATEDB",
                "CREATEROLE" if role.createrole else "NOCREATEROLE",
                "REPLICATION" if role.replication else "NOREPLICATION",
                "BYPASSRLS" if role.bypassrls else "NOBYPASSRLS",
            ]
            roles.append(
                {
                    "name": service.name,
                    "attributes": " ".join(flags),
                    "verifier": password_kind(role.password),
                    "verifier_matches": verifier_matches(role.password, service.password),
                }
            )
        database = state.databases.get(service.database)
        if desired:
            databases.append(
                {
                    "name": service.database,
                    "owner": service.name,
                    "public_connect": False,
                    "public_temporary": False,
                    "owner_connect": True,
                }
            )
        elif database is not None:
            databases.append(
                {
                    "name": service.database,
                    "owner": database.owner,
                    "public_connect": database.public_connect,
                    "public_temporary": database.public_temporary,
                    "owner_connect": state.connect.get((service.name, service.database), False),
                }
            )
    return {"roles": roles, "databases": databases}


# --- the I/O shell -----------------------------------------------------------------------


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


def compose(step: Step) -> Any:
    """``step`` as a ``psycopg.sql.Composed`` statement (identifiers and literals quoted)."""
    from psycopg import sql

    values: dict[str, Any] = {key: sql.Identifier(value) for key, value in step.identifiers}
    values.update({key: sql.Literal(value) for key, value in step.literals})
    return sql.SQL(step.template).format(**values)


def _close(conn: Any) -> None:
    with contextlib.suppress(Exception):  # closing is best effort
        conn.close()


def _rows(conn: Any, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    return list(conn.execute(query, params).fetchall())


def _one(conn: Any, query: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
    return conn.execute(query, params).fetchone()


def read_state(conn: Any, services: Sequence[Service]) -> State:
    """Read the managed roles (from pg_authid: the admin must be a superuser), databases
    and CONNECT privileges."""
    roles = [s.name for s in services]
    databases = [s.database for s in services]
    state = State()
    for row in _rows(
        conn,
        "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolpassword"
        " FROM pg_catalog.pg_authid WHERE rolname = ANY(%s)",
        (roles,),
    ):
        state.roles[row[0]] = RoleState(row[0], *(bool(v) for v in row[1:7]), password=row[7])
    for row in _rows(
        conn,
        "SELECT datname, pg_catalog.pg_get_userbyid(datdba),"
        " pg_catalog.has_database_privilege('public', datname, 'CONNECT'),"
        " pg_catalog.has_database_privilege('public', datname, 'TEMPORARY')"
        " FROM pg_catalog.pg_database WHERE datname = ANY(%s)",
        (databases,),
    ):
        state.databases[row[0]] = DatabaseState(row[0], row[1], bool(row[2]), bool(row[3]))
    for service in services:
        if service.name in state.roles and service.database in state.databases:
            row = _one(
                conn,
                "SELECT pg_catalog.has_database_privilege(%s, %s, 'CONNECT')",
                (service.name, service.database),
            )
            state.connect[(service.name, service.database)] = bool(row and row[0])
    return state


class ProvisionError(Exception):
    """Provisioning failed; the message names the step and carries the server's error.

    ``changes`` lists the statements that had already run (autocommit) before the failure.
    """

    def __init__(self, message: str, changes: list[str] | None = None) -> None:
        super().__init__(message)
        self.changes = list(changes or [])


def provision(
    host: str,
    port: int,
    admin_user: str,
    admin_password: str,
    admin_database: str,
    services: Sequence[Service],
    timeout: float = 5.0,
    check_mode: bool = False,
    connect: Connect | None = None,
    salt_factory: Callable[[], bytes] = lambda: os.urandom(16),
    admin_password_previous: str | None = None,
) -> dict[str, Any]:
    """Reconcile one role and one database per service; ``changed``, ``changes``, ``diff``.

    During a rotation of the admin's password (``admin_password_previous`` given) the admin
    connects with whichever of the two the server accepts, and its own password is set to
    ``admin_password`` last, as a verifier computed here. In check mode the state is read
    and the plan made, nothing is executed.
    """
    secret_values = [admin_password] + [s.password for s in services]
    if admin_password_previous:
        secret_values.append(admin_password_previous)
    conn = _admin_connect(connect or pg_connect, host, port, admin_user, admin_database, timeout,
                          [p for p in (admin_password_previous, admin_password) if p], secret_values)
    try:
        before = read_state(conn, services)
        row = _one(conn, "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s", (admin_user,))
        admin_stored = row[0] if row else None
        steps = plan(services, before, salt_factory) + plan_admin(admin_user, admin_password, admin_stored,
                                                                  salt_factory)
        if not check_mode:
            done: list[str] = []
            for step in steps:
                try:
                    conn.execute(compose(step))
                except Exception as exc:
                    raise ProvisionError(scrub(f"{step.change}: {_error_text(exc)}", secret_values), done) from None
                done.append(step.change)
    except ProvisionError:
        raise
    except Exception as exc:
        raise ProvisionError(scrub(f"reading roles and databases failed: {_error_text(exc)}", secret_values)) from None
    finally:
        _close(conn)
    diff: dict[str, dict[str, Any]] = {"before": describe(services, before),
                                       "after": describe(services, before, desired=True)}
    if admin_password_previous:
        # In a rotation the diff also says whether the admin's own password is the new one.
        matches = verifier_matches(admin_stored, admin_password)
        diff["before"]["admin"] = {"name": admin_user, "verifier_matches": matches}
        diff["after"]["admin"] = {"name": admin_user, "verifier_matches": True}
    return {"changed": bool(steps), "changes": [s.change for s in steps], "diff": diff}


def _admin_connect(
    connect: Connect,
    host: str,
    port: int,
    admin_user: str,
    admin_database: str,
    timeout: float,
    passwords: Sequence[str],
    secret_values: list[str],
) -> Any:
    """A connection as the admin with the first of ``passwords`` the server accepts.

    In a rotation the former password comes first (the server has it until the rotation
    sets the new one), so a first run logs no refused login; a re-run after the change is
    refused once, then connects with the new one. Only an authentication refusal moves on.
    """
    for index, password in enumerate(passwords):
        try:
            return connect(host, port, admin_user, password, admin_database, timeout)
        except Exception as exc:
            if index + 1 < len(passwords) and is_auth_failure(exc):
                continue
            tried = " (with the former and the new password)" if index else ""
            raise ProvisionError(
                scrub(f"admin {admin_user} could not connect{tried}: {_error_text(exc)}", secret_values)
            ) from None
    raise ProvisionError(f"admin {admin_user}: no password given")


# --- checks ------------------------------------------------------------------------------


def _error_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # libpq errors span lines
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


@contextmanager
def _transaction(conn: Any) -> Iterator[None]:
    with conn.transaction():
        yield


class _Rollback(Exception):
    """Raised inside the probe transaction to undo it once the probe has passed."""


class _Probe:
    def __init__(
        self, unit: str, host: str, port: int, timeout: float, connect: Connect, secret_values: list[str]
    ) -> None:
        self.unit = unit
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect = connect
        self.secrets = secret_values
        self.records: list[dict[str, Any]] = []

    def add(self, check: str, ok: bool, observed: dict[str, Any], message: str) -> None:
        self.records.append(record(self.unit, check, ok, observed, scrub(message, self.secrets)))

    def err(self, exc: BaseException) -> str:
        return scrub(_error_text(exc), self.secrets)

    def open(self, user: str, password: str | None, dbname: str) -> Any:
        return self.connect(self.host, self.port, user, password, dbname, self.timeout)

    def check_connect(self, admin_user: str, admin_password: str, admin_database: str) -> Any:
        observed: dict[str, Any] = {
            "user": admin_user,
            "database": admin_database,
            "host": self.host,
            "port": self.port,
        }
        conn = None
        try:
            with stopwatch() as took:
                conn = self.open(admin_user, admin_password, admin_database)
                row = _one(conn, "SHOW server_version")
            observed["latency_ms"] = took["ms"]
            observed["server_version"] = str(row[0]) if row else "unknown"
        except Exception as exc:
            if conn is not None:
                _close(conn)
            self.add("connect", False, observed, f"admin {admin_user} could not connect: {self.err(exc)}")
            return None
        self.add("connect", True, observed, f"admin {admin_user} connected to {admin_database} over TCP")
        return conn

    def check_scram_only(self, admin: Any, admin_user: str) -> None:
        if admin is None:
            self.add("scram_only", False, {}, f"not checked: admin {admin_user} could not connect")
            return
        observed: dict[str, Any] = {}
        problems: list[str] = []
        try:
            row = _one(admin, "SHOW password_encryption")
            observed["verifier_setting"] = str(row[0]) if row else None
            if observed["verifier_setting"] != "scram-sha-256":
                problems.append(f"password_encryption is {observed['verifier_setting']!r}")
            row = _one(admin, "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = current_user")
            kind = password_kind(row[0] if row else None)
            observed["admin_verifier"] = kind
            if kind != "scram-sha-256":
                problems.append(f"admin {admin_user} has a {kind} password, not a SCRAM-SHA-256 verifier")
            weak_roles = [
                r[0]
                for r in _rows(
                    admin,
                    "SELECT rolname FROM pg_catalog.pg_authid"
                    " WHERE rolpassword IS NOT NULL AND rolpassword NOT LIKE 'SCRAM-SHA-256$%' ORDER BY rolname",
                )
            ]
            observed["non_scram_roles"] = weak_roles
            if weak_roles:
                problems.append(f"roles without a SCRAM verifier: {', '.join(weak_roles)}")
            rules = _rows(
                admin,
                "SELECT line_number, type, database, user_name, address, auth_method"
                " FROM pg_catalog.pg_hba_file_rules ORDER BY line_number",
            )
            observed["hba_methods"] = sorted({str(r[5]) for r in rules if r[5]})
            weak = [r for r in rules if r[5] in WEAK_HBA_METHODS]
            observed["weak_hba_rules"] = [
                {
                    "line": r[0],
                    "type": r[1],
                    "database": list(r[2] or []),
                    "user_name": list(r[3] or []),
                    "address": r[4],
                    "auth_method": r[5],
                }
                for r in weak
            ]
            if weak:
                problems.append("pg_hba.conf has " + ", ".join(f"line {r[0]}: {r[1]} {r[5]}" for r in weak))
        except Exception as exc:
            self.add("scram_only", False, observed, f"could not read the auth settings: {self.err(exc)}")
            return
        ok = not problems
        self.add(
            "scram_only",
            ok,
            observed,
            "password_encryption is scram-sha-256, every stored password is a SCRAM verifier, pg_hba.conf has no "
            "trust/password/md5 rule"
            if ok
            else "; ".join(problems),
        )

    def _expect_refusal(self, check: str, user: str, password: str | None, dbname: str, what: str) -> None:
        conn = None
        try:
            conn = self.open(user, password, dbname)
        except Exception as exc:
            refused = is_auth_failure(exc)
            self.add(
                check,
                refused,
                {"user": user, "refused": refused},
                f"{what} refused: {self.err(exc)}" if refused else f"{what} failed, not for auth: {self.err(exc)}",
            )
            return
        finally:
            if conn is not None:
                _close(conn)
        self.add(check, False, {"user": user, "refused": False}, f"{what} was accepted")

    def check_auth_required(self, admin_user: str, admin_database: str) -> None:
        self._expect_refusal(
            "auth_required", admin_user, None, admin_database, f"connecting as {admin_user} without a password"
        )

    def check_wrong_password(self, admin_user: str, admin_password: str, admin_database: str) -> None:
        wrong = secrets.token_hex(16)
        while wrong == admin_password:  # pragma: no cover - 128 random bits
            wrong = secrets.token_hex(16)
        self.secrets.append(wrong)
        self._expect_refusal(
            "wrong_password_rejected",
            admin_user,
            wrong,
            admin_database,
            f"connecting as {admin_user} with a wrong password",
        )

    def check_own_database(self, service: Service) -> None:
        observed: dict[str, Any] = {"user": service.name, "database": service.database}
        conn = None
        try:
            conn = self.open(service.name, service.password, service.database)
        except Exception as exc:
            self.add(
                "own_database_access",
                False,
                observed,
                f"user {service.name} could not connect to {service.database}: {self.err(exc)}",
            )
            return
        try:
            token = secrets.token_hex(8)
            try:
                with _transaction(conn):
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS mlstack_check (id integer PRIMARY KEY, token text NOT NULL)"
                    )
                    conn.execute("INSERT INTO mlstack_check (id, token) VALUES (1, %s)", (token,))
                    row = _one(conn, "SELECT token FROM mlstack_check WHERE id = 1")
                    observed["read_back"] = bool(row and row[0] == token)
                    conn.execute("DROP TABLE mlstack_check")
                    observed["dropped"] = True
                    raise _Rollback
            except _Rollback:
                pass
        except Exception as exc:
            self.add(
                "own_database_access",
                False,
                observed,
                f"user {service.name} in {service.database}: {self.err(exc)}",
            )
            return
        finally:
            _close(conn)
        ok = bool(observed.get("read_back"))
        self.add(
            "own_database_access",
            ok,
            observed,
            f"user {service.name} can create, write, read and drop a table in {service.database} (rolled back)"
            if ok
            else f"user {service.name} in {service.database}: the row written was not read back",
        )

    def check_foreign_database(self, service: Service, services: Sequence[Service]) -> None:
        others = [s.database for s in services if s.database != service.database]
        if not others:
            self.add(
                "foreign_database_denied",
                True,
                {"user": service.name, "foreign_database": None, "skipped": True},
                "skipped: no other service database is configured",
            )
            return
        index = list(services).index(service)
        rotated = list(services[index + 1 :]) + list(services[:index])
        foreign = next(s.database for s in rotated if s.database != service.database)
        observed: dict[str, Any] = {"user": service.name, "foreign_database": foreign}
        conn = None
        try:
            conn = self.open(service.name, service.password, foreign)
        except Exception as exc:
            denial = connect_denial(exc)
            observed["denied"] = denial is not None
            if denial:
                observed["denied_by"] = denial
            self.add(
                "foreign_database_denied",
                denial is not None,
                observed,
                f"user {service.name} may not connect to {foreign}: {self.err(exc)}"
                if denial
                else f"user {service.name} to {foreign} failed, not for want of CONNECT: {self.err(exc)}",
            )
            return
        finally:
            if conn is not None:
                _close(conn)
        observed["denied"] = False
        self.add(
            "foreign_database_denied",
            False,
            observed,
            f"user {service.name} connected to {foreign}: CONNECT is not revoked from PUBLIC",
        )

    def check_not_superuser(self, admin: Any, admin_user: str, service: Service) -> None:
        observed: dict[str, Any] = {"user": service.name}
        if admin is None:
            self.add("not_superuser", False, observed, f"not checked: admin {admin_user} could not connect")
            return
        try:
            row = _one(
                admin,
                "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_catalog.pg_roles WHERE rolname = %s",
                (service.name,),
            )
        except Exception as exc:
            self.add("not_superuser", False, observed, f"could not read role {service.name}: {self.err(exc)}")
            return
        if row is None:
            self.add("not_superuser", False, observed, f"role {service.name} does not exist")
            return
        observed.update({"rolsuper": bool(row[0]), "rolcreaterole": bool(row[1]), "rolcreatedb": bool(row[2])})
        granted = [k for k in ("rolsuper", "rolcreaterole", "rolcreatedb") if observed[k]]
        self.add(
            "not_superuser",
            not granted,
            observed,
            f"role {service.name} is not superuser and cannot create roles or databases"
            if not granted
            else f"role {service.name} has {', '.join(granted)}",
        )


def check_postgres(
    unit: str,
    host: str,
    port: int,
    admin_user: str,
    admin_password: str,
    admin_database: str = "postgres",
    services: Sequence[Service] = (),
    timeout: float = 5.0,
    connect: Connect | None = None,
) -> list[dict[str, Any]]:
    """Run every PostgreSQL probe; one evidence record per check (and per service).

    Checks: ``connect``, ``scram_only``, ``auth_required``, ``wrong_password_rejected``,
    then ``own_database_access``, ``foreign_database_denied`` and ``not_superuser`` per
    service (observed ``user`` names it). The write probe runs in a transaction that is
    rolled back, so it leaves nothing behind.
    """
    services = list(services)
    secret_values = [admin_password] + [s.password for s in services]
    probe = _Probe(unit, host, port, timeout, connect or pg_connect, secret_values)
    admin = probe.check_connect(admin_user, admin_password, admin_database)
    try:
        probe.check_scram_only(admin, admin_user)
        probe.check_auth_required(admin_user, admin_database)
        probe.check_wrong_password(admin_user, admin_password, admin_database)
        for service in services:
            probe.check_own_database(service)
            probe.check_foreign_database(service, services)
            probe.check_not_superuser(admin, admin_user, service)
    finally:
        if admin is not None:
            _close(admin)
    return probe.records
