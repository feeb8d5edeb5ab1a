# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL provisioning: one least-privileged role and one private database per service.

A pure core, :func:`plan` and :func:`plan_admin`, turns the state read from the server
plus the desired services into :class:`Step` objects (one SQL statement each, with a
human-readable change); :func:`provision` reads the state, plans and runs the steps
through the connection seam of :mod:`._postgres`.

Passwords never reach the server in clear text: a step carries a verifier libpq made on
the client (:func:`._postgres_scram.libpq_verifier`), so ``log_statement = ddl`` logs a
verifier, never a password.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import scrub
from ansible_collections.aiops.mlstack.plugins.module_utils._postgres import (
    Connect,
    Service,
    close_quietly,
    error_text,
    is_auth_failure,
    pg_connect,
    query_one,
    query_rows,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._postgres_scram import (
    SCRAM,
    libpq_verifier,
    password_kind,
    verifier_matches,
)

ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"

# (password, role) -> a new SCRAM-SHA-256 verifier; provision() passes libpq's.
Encrypt = Callable[[str, str], str]


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
    members: dict[str, set[str]] = field(default_factory=dict)  # role -> the roles it is a member of


@dataclass(frozen=True)
class Step:
    """One statement: ``template`` with ``{name}`` placeholders filled from ``identifiers``
    (quoted as identifiers) and ``literals`` (quoted as string literals)."""

    change: str
    template: str
    identifiers: tuple[tuple[str, str], ...] = ()
    literals: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def _password_step(change: str, role: str, verifier: str) -> Step:
    return Step(change, "ALTER ROLE {role} PASSWORD {verifier}", (("role", role),), (("verifier", verifier),))


def _role_steps(service: Service, role: RoleState | None, encrypt: Encrypt) -> list[Step]:
    """Create the role, or correct its attributes and its password where they differ."""
    ident_role = (("role", service.name),)
    if role is None:
        return [
            Step(
                f"create role {service.name} ({ROLE_ATTRIBUTES}, SCRAM-SHA-256 password)",
                "CREATE ROLE {role} " + ROLE_ATTRIBUTES + " PASSWORD {verifier}",
                ident_role,
                (("verifier", encrypt(service.password, service.name)),),
            )
        ]
    steps: list[Step] = []
    if not role.attributes_ok:
        steps.append(
            Step(f"set attributes of role {service.name} to {ROLE_ATTRIBUTES}", "ALTER ROLE {role} " + ROLE_ATTRIBUTES,
                 ident_role)
        )
    if not verifier_matches(role.password, service.password):
        change = (
            f"set password of role {service.name} (was {password_kind(role.password)}, differs)"
            if role.password
            else f"set password of role {service.name} (had none)"
        )
        steps.append(_password_step(change, service.name, encrypt(service.password, service.name)))
    return steps


def _database_steps(service: Service, state: State) -> list[Step]:
    """Create the database or give it to its role; only its role may CONNECT."""
    steps: list[Step] = []
    database = state.databases.get(service.database)
    idents = (("database", service.database), ("role", service.name))
    grant = False
    if database is None:
        steps.append(
            Step(f"create database {service.database} owned by {service.name}",
                 "CREATE DATABASE {database} OWNER {role}", idents)
        )
        database = DatabaseState(service.database, service.name, True, True)
        grant = True
    elif database.owner != service.name:
        steps.append(
            Step(f"change owner of database {service.database} from {database.owner} to {service.name}",
                 "ALTER DATABASE {database} OWNER TO {role}", idents)
        )
        grant = True
    if database.public_connect or database.public_temporary:
        steps.append(
            Step(f"revoke CONNECT, TEMPORARY on database {service.database} from PUBLIC",
                 "REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC", (("database", service.database),))
        )
    if grant or not state.connect.get((service.name, service.database), False):
        steps.append(
            Step(f"grant CONNECT on database {service.database} to {service.name}",
                 "GRANT CONNECT ON DATABASE {database} TO {role}", idents)
        )
    return steps


def _membership_steps(service: Service, state: State) -> list[Step]:
    """Grant the predefined roles the service asks for (pg_monitor); a grant is never taken back here."""
    held = state.members.get(service.name, set())
    return [Step(f"grant {group} to {service.name}", "GRANT {group} TO {role}",
                 (("group", group), ("role", service.name)))
            for group in service.member_of if group not in held]


def plan_service(service: Service, state: State, encrypt: Encrypt) -> list[Step]:
    """The statements that bring one service's role, memberships and database to the desired state."""
    return (_role_steps(service, state.roles.get(service.name), encrypt) + _membership_steps(service, state)
            + _database_steps(service, state))


def plan(services: Sequence[Service], state: State, encrypt: Encrypt) -> list[Step]:
    """All statements for all services, in order (each role before its database)."""
    steps: list[Step] = []
    for service in services:
        steps.extend(plan_service(service, state, encrypt))
    return steps


def plan_admin(admin_user: str, admin_password: str, stored: str | None, encrypt: Encrypt) -> list[Step]:
    """The admin's own password (a rotation): a verifier of ``admin_password`` replaces the
    stored one unless it already is one. Open sessions are not cut; new ones need it."""
    if verifier_matches(stored, admin_password):
        return []
    change = f"set password of admin role {admin_user} (was {password_kind(stored)}, differs)"
    return [_password_step(change, admin_user, encrypt(admin_password, admin_user))]


# --- the diff (pure) ---------------------------------------------------------------------


def _role_flags(role: RoleState) -> str:
    return " ".join([
        "LOGIN" if role.login else "NOLOGIN",
        "SUPERUSER" if role.superuser else "NOSUPERUSER",
        "CREATEDB" if role.createdb else "NOCREATEDB",
        "CREATEROLE" if role.createrole else "NOCREATEROLE",
        "REPLICATION" if role.replication else "NOREPLICATION",
        "BYPASSRLS" if role.bypassrls else "NOBYPASSRLS",
    ])


def describe(services: Sequence[Service], state: State, desired: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The ``diff`` side for the managed roles and databases, without any secret.

    ``desired=True`` gives the after side: what :func:`plan` leads to.
    """
    roles: list[dict[str, Any]] = []
    databases: list[dict[str, Any]] = []
    for service in services:
        role = state.roles.get(service.name)
        database = state.databases.get(service.database)
        if desired:
            roles.append({"name": service.name, "attributes": ROLE_ATTRIBUTES, "verifier": SCRAM,
                          "verifier_matches": True,
                          **({"member_of": sorted(service.member_of)} if service.member_of else {})})
            databases.append({"name": service.database, "owner": service.name, "public_connect": False,
                              "public_temporary": False, "owner_connect": True})
            continue
        if role is not None:
            roles.append({"name": service.name, "attributes": _role_flags(role),
                          "verifier": password_kind(role.password),
                          "verifier_matches": verifier_matches(role.password, service.password),
                          **({"member_of": sorted(state.members.get(service.name, set()) & set(service.member_of))}
                             if service.member_of else {})})
        if database is not None:
            databases.append({"name": service.database, "owner": database.owner,
                              "public_connect": database.public_connect,
                              "public_temporary": database.public_temporary,
                              "owner_connect": state.connect.get((service.name, service.database), False)})
    return {"roles": roles, "databases": databases}


# --- the I/O shell -----------------------------------------------------------------------


def compose(step: Step) -> Any:
    """``step`` as a ``psycopg.sql.Composed`` statement (identifiers and literals quoted)."""
    from psycopg import sql

    values: dict[str, Any] = {key: sql.Identifier(value) for key, value in step.identifiers}
    values.update({key: sql.Literal(value) for key, value in step.literals})
    return sql.SQL(step.template).format(**values)


def read_state(conn: Any, services: Sequence[Service]) -> State:
    """Read the managed roles (from pg_authid: the admin must be a superuser), databases
    and CONNECT privileges."""
    state = State()
    for row in query_rows(
        conn,
        "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolpassword"
        " FROM pg_catalog.pg_authid WHERE rolname = ANY(%s)",
        ([s.name for s in services],),
    ):
        state.roles[row[0]] = RoleState(row[0], *(bool(v) for v in row[1:7]), password=row[7])
    for row in query_rows(
        conn,
        "SELECT datname, pg_catalog.pg_get_userbyid(datdba),"
        " pg_catalog.has_database_privilege('public', datname, 'CONNECT'),"
        " pg_catalog.has_database_privilege('public', datname, 'TEMPORARY')"
        " FROM pg_catalog.pg_database WHERE datname = ANY(%s)",
        ([s.database for s in services],),
    ):
        state.databases[row[0]] = DatabaseState(row[0], row[1], bool(row[2]), bool(row[3]))
    asking = [s.name for s in services if s.member_of]
    for row in query_rows(
        conn,
        "SELECT member.rolname, grp.rolname FROM pg_catalog.pg_auth_members m"
        " JOIN pg_catalog.pg_roles member ON member.oid = m.member JOIN pg_catalog.pg_roles grp ON grp.oid = m.roleid"
        " WHERE member.rolname = ANY(%s)",
        (asking,),
    ) if asking else []:
        state.members.setdefault(row[0], set()).add(row[1])
    for service in services:
        if service.name in state.roles and service.database in state.databases:
            row = query_one(
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
                scrub(f"admin {admin_user} could not connect{tried}: {error_text(exc)}", secret_values)
            ) from None
    raise ProvisionError(f"admin {admin_user}: no password given")


def _apply(conn: Any, steps: Sequence[Step], secret_values: list[str]) -> None:
    """Run the steps in order; a failure names its step and the ones that already ran."""
    done: list[str] = []
    for step in steps:
        try:
            conn.execute(compose(step))
        except Exception as exc:
            raise ProvisionError(scrub(f"{step.change}: {error_text(exc)}", secret_values), done) from None
        done.append(step.change)


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
    admin_password_previous: str | None = None,
) -> dict[str, Any]:
    """Reconcile one role and one database per service; ``changed``, ``changes``, ``diff``.

    During a rotation of the admin's password (``admin_password_previous`` given) the admin
    connects with whichever of the two the server accepts, and its own password is set to
    ``admin_password`` last. New verifiers come from libpq on the admin's connection. In
    check mode the state is read and the plan made, nothing is executed.
    """
    secret_values = [admin_password] + [s.password for s in services]
    if admin_password_previous:
        secret_values.append(admin_password_previous)
    conn = _admin_connect(connect or pg_connect, host, port, admin_user, admin_database, timeout,
                          [p for p in (admin_password_previous, admin_password) if p], secret_values)

    def encrypt(password: str, role: str) -> str:
        return libpq_verifier(conn, password, role)

    try:
        before = read_state(conn, services)
        row = query_one(conn, "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s", (admin_user,))
        admin_stored = row[0] if row else None
        steps = plan(services, before, encrypt) + plan_admin(admin_user, admin_password, admin_stored, encrypt)
        if not check_mode:
            _apply(conn, steps, secret_values)
    except ProvisionError:
        raise
    except Exception as exc:
        raise ProvisionError(scrub(f"reading roles and databases failed: {error_text(exc)}", secret_values)) from None
    finally:
        close_quietly(conn)
    diff: dict[str, dict[str, Any]] = {"before": describe(services, before),
                                       "after": describe(services, before, desired=True)}
    if admin_password_previous:
        # In a rotation the diff also says whether the admin's own password is the new one.
        matches = verifier_matches(admin_stored, admin_password)
        diff["before"]["admin"] = {"name": admin_user, "verifier_matches": matches}
        diff["after"]["admin"] = {"name": admin_user, "verifier_matches": True}
    return {"changed": bool(steps), "changes": [s.change for s in steps], "diff": diff}
