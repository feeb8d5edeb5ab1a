# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL security probes: one evidence record per check (and per service).

:func:`check_postgres` connects through the seam of :mod:`._postgres` as the admin and as
each service, and proves SCRAM-only authentication, that a missing or wrong password is
refused, and that each service works in its own database only, without superuser powers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import Probe, scrub, stopwatch
from ansible_collections.aiops.mlstack.plugins.module_utils._postgres import (
    Connect,
    Service,
    close_quietly,
    connect_denial,
    error_text,
    is_auth_failure,
    pg_connect,
    query_one,
    query_rows,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._postgres_scram import SCRAM, password_kind

WEAK_HBA_METHODS = ("trust", "password", "md5")


@contextmanager
def _transaction(conn: Any) -> Iterator[None]:
    with conn.transaction():
        yield


class _Rollback(Exception):
    """Raised inside the probe transaction to undo it once the probe has passed."""


class _Probe(Probe):
    def err(self, exc: BaseException) -> str:
        return scrub(error_text(exc), self.secrets)

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
                row = query_one(conn, "SHOW server_version")
            observed["latency_ms"] = took["ms"]
            observed["server_version"] = str(row[0]) if row else "unknown"
        except Exception as exc:
            if conn is not None:
                close_quietly(conn)
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
            row = query_one(admin, "SHOW password_encryption")
            observed["verifier_setting"] = str(row[0]) if row else None
            if observed["verifier_setting"] != SCRAM:
                problems.append(f"password_encryption is {observed['verifier_setting']!r}")
            row = query_one(admin, "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = current_user")
            kind = password_kind(row[0] if row else None)
            observed["admin_verifier"] = kind
            if kind != SCRAM:
                problems.append(f"admin {admin_user} has a {kind} password, not a SCRAM-SHA-256 verifier")
            weak_roles = [
                r[0]
                for r in query_rows(
                    admin,
                    "SELECT rolname FROM pg_catalog.pg_authid"
                    " WHERE rolpassword IS NOT NULL AND rolpassword NOT LIKE 'SCRAM-SHA-256$%' ORDER BY rolname",
                )
            ]
            observed["non_scram_roles"] = weak_roles
            if weak_roles:
                problems.append(f"roles without a SCRAM verifier: {', '.join(weak_roles)}")
            rules = query_rows(
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
                close_quietly(conn)
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
                    row = query_one(conn, "SELECT token FROM mlstack_check WHERE id = 1")
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
            close_quietly(conn)
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
                close_quietly(conn)
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
            row = query_one(
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
            close_quietly(admin)
    return probe.records
