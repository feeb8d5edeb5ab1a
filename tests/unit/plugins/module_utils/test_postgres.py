# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: service names, libpq's errors, the connect seam, and the fake server that the
provisioning, check and module tests run against (they load this file by path)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import pq, sql

from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres as pg
from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_checks as checks
from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_provision as prov
from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_scram as scram

ADMIN_PW = "Adm1n-s3cret-value"
CHAT_PW = "chat-s3cret-value"
VOICE_PW = "voice-s3cret-value"
ALL_SECRETS = (ADMIN_PW, CHAT_PW, VOICE_PW)
SALT = bytes(range(16))

# libpq needs a connection handle to make a verifier, but not a server: a handle whose
# connection failed at once (no such socket directory) serves, and sends nothing.
OFFLINE_PGCONN = pq.PGconn.connect_start(b"host=/nonexistent-mlstack-test port=1 connect_timeout=1")


class OfflineConn:
    """What libpq_verifier needs of a psycopg connection: its ``pgconn``."""

    pgconn = OFFLINE_PGCONN


def libpq_encrypt(password: str, role: str) -> str:
    """A verifier made by the real libpq, as provision() makes it."""
    return scram.libpq_verifier(OfflineConn(), password, role)


def make_verifier(password: str, salt: bytes = SALT, iterations: int = 4096) -> str:
    """A stored verifier with a chosen salt and iteration count, from the comparison's own keys."""
    stored_key, server_key = scram.scram_keys(password, salt, iterations)
    b64 = [base64.b64encode(x).decode() for x in (salt, stored_key, server_key)]
    return f"SCRAM-SHA-256${iterations}:{b64[0]}${b64[1]}:{b64[2]}"


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("services", "errors"),
    [
        ([{"name": "chat", "password": "p", "database": None}], []),
        ([{"name": "chat", "password": "p", "database": "chat_db"}], []),
        (
            [{"name": "Chat", "password": "p", "database": None}],
            ["clients[0].name: 'Chat'", "clients[0].database: 'Chat'"],
        ),
        ([{"name": "chat", "password": "p", "database": "chat-db"}], ["clients[0].database: 'chat-db'"]),
        (
            [{"name": "chat", "password": "p", "database": "x"}, {"name": "voice", "password": "q", "database": "x"}],
            ["clients[1].database: 'x' is already the database of 'chat'"],
        ),
        (
            [{"name": "chat", "password": "p", "database": None}, {"name": "chat", "password": "q", "database": "c2"}],
            ["clients[1].name: 'chat' appears more than once"],
        ),
    ],
)
def test_validate_services(services, errors):
    found = pg.validate_services(services, "clients")
    assert len(found) == len(errors), found
    for message, expected in zip(found, errors, strict=True):
        assert message.startswith(expected)


def test_services_from_params_defaults_the_database():
    assert pg.services_from_params([{"name": "chat", "password": "p", "database": None}]) == [
        pg.Service("chat", "p", "chat")
    ]


# --- a fake PostgreSQL for the I/O shell ---------------------------------------------------


def md5_verifier(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()  # noqa: S324 - the legacy format under test


def _text(query) -> str:
    return query.as_string(None) if isinstance(query, sql.Composable) else str(query)


class FakeCursor:
    def __init__(self, rows) -> None:
        self.rows = list(rows)

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return list(self.rows)


class FakePostgres:
    """Roles, databases, CONNECT privileges, pg_hba methods and libpq's error texts."""

    def __init__(self) -> None:
        self.roles = {
            "postgres": {
                "login": True,
                "superuser": True,
                "createdb": True,
                "createrole": True,
                "replication": True,
                "bypassrls": True,
                "password": make_verifier(ADMIN_PW),
            }
        }
        self.databases = {"postgres": {"owner": "postgres", "acl": None}}  # None: PUBLIC may connect
        self.hba = [
            (1, "local", ["all"], ["all"], None, "scram-sha-256"),
            (2, "host", ["all"], ["all"], "all", "scram-sha-256"),
        ]
        self.password_encryption = "scram-sha-256"
        self.trust = False
        self.unreachable = False
        self.tables: dict[str, dict] = {}
        self.statements: list[str] = []
        self.connections: list[FakeConn] = []
        self.fail_on: str | None = None

    # the seam
    def connect(self, host, port, user, password, dbname, timeout):
        prefix = f'connection failed: connection to server at "{host}", port {port} failed: '
        if self.unreachable:
            raise psycopg.OperationalError(prefix + "Connection refused\n\tIs the server running on that host?")
        role = self.roles.get(user)
        if not self.trust:
            if not password:
                raise psycopg.OperationalError(prefix + "fe_sendauth: no password supplied")
            if role is None or not role["login"] or not self.password_ok(user, role["password"], password):
                raise psycopg.OperationalError(prefix + f'FATAL:  password authentication failed for user "{user}"')
        if dbname not in self.databases:
            raise psycopg.OperationalError(prefix + f'FATAL:  database "{dbname}" does not exist')
        if not self.may_connect(user, dbname):
            raise psycopg.OperationalError(
                prefix
                + f'FATAL:  permission denied for database "{dbname}"\nDETAIL:  User does not have CONNECT privilege.'
            )
        conn = FakeConn(self, user, dbname)
        self.connections.append(conn)
        return conn

    @staticmethod
    def password_ok(user, stored, password) -> bool:
        if stored and stored.startswith("md5"):
            return stored == md5_verifier(user, password)
        return scram.verifier_matches(stored, password)

    def may_connect(self, user, dbname):
        db = self.databases[dbname]
        if self.roles.get(user, {}).get("superuser") or db["owner"] == user:
            return True
        return db["acl"] is None or "PUBLIC" in db["acl"] or user in db["acl"]


class FakeConn:
    pgconn = OFFLINE_PGCONN  # provision() asks libpq for verifiers through it

    def __init__(self, server: FakePostgres, user: str, dbname: str) -> None:
        self.server = server
        self.user = user
        self.dbname = dbname
        self.closed = False

    def close(self):
        self.closed = True

    @contextmanager
    def transaction(self):
        snapshot = {k: dict(v) for k, v in self.server.tables.items()}
        try:
            yield
        except BaseException:
            self.server.tables = snapshot
            raise

    def execute(self, query, params=None):  # noqa: C901 - a tiny SQL interpreter
        text = _text(query)
        server = self.server
        server.statements.append(text)
        superuser = server.roles[self.user]["superuser"]
        if text == "SHOW server_version":
            return FakeCursor([("15.14 (Debian 15.14-0+deb12u1)",)])
        if text == "SHOW password_encryption":
            return FakeCursor([(server.password_encryption,)])
        if "pg_authid WHERE rolname = current_user" in text:
            self._superuser_only(superuser, "pg_authid")
            return FakeCursor([(server.roles[self.user]["password"],)])
        if text == "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s":
            self._superuser_only(superuser, "pg_authid")
            return FakeCursor([(server.roles[params[0]]["password"],)] if params[0] in server.roles else [])
        if "FROM pg_catalog.pg_authid WHERE rolpassword IS NOT NULL" in text:
            self._superuser_only(superuser, "pg_authid")
            return FakeCursor(
                sorted(
                    (n,)
                    for n, r in server.roles.items()
                    if r["password"] and not r["password"].startswith("SCRAM-SHA-256$")
                )
            )
        if "FROM pg_catalog.pg_hba_file_rules" in text:
            self._superuser_only(superuser, "pg_hba_file_rules")
            return FakeCursor(server.hba)
        if "FROM pg_catalog.pg_roles WHERE rolname = %s" in text:
            r = server.roles.get(params[0])
            return FakeCursor([(r["superuser"], r["createrole"], r["createdb"])] if r else [])
        if "FROM pg_catalog.pg_authid WHERE rolname = ANY(%s)" in text:
            self._superuser_only(superuser, "pg_authid")
            return FakeCursor(
                (
                    n,
                    r["login"],
                    r["superuser"],
                    r["createdb"],
                    r["createrole"],
                    r["replication"],
                    r["bypassrls"],
                    r["password"],
                )
                for n, r in server.roles.items()
                if n in params[0]
            )
        if "FROM pg_catalog.pg_database WHERE datname = ANY(%s)" in text:
            rows = []
            for name, db in server.databases.items():
                if name in params[0]:
                    public = db["acl"] is None or "PUBLIC" in db["acl"]
                    rows.append((name, db["owner"], public, public))
            return FakeCursor(rows)
        if text.startswith("SELECT pg_catalog.has_database_privilege(%s, %s, 'CONNECT')"):
            return FakeCursor([(server.may_connect(params[0], params[1]),)])
        if text.startswith("CREATE TABLE IF NOT EXISTS mlstack_check"):
            owner = server.databases[self.dbname]["owner"]
            if owner != self.user and not superuser:
                raise psycopg.errors.InsufficientPrivilege("permission denied for schema public")
            server.tables.setdefault(f"{self.dbname}.mlstack_check", {})
            return FakeCursor([])
        if text.startswith("INSERT INTO mlstack_check"):
            server.tables[f"{self.dbname}.mlstack_check"][1] = params[0]
            return FakeCursor([])
        if text.startswith("SELECT token FROM mlstack_check"):
            row = server.tables[f"{self.dbname}.mlstack_check"].get(1)
            return FakeCursor([(row,)] if row else [])
        if text == "DROP TABLE mlstack_check":
            del server.tables[f"{self.dbname}.mlstack_check"]
            return FakeCursor([])
        return self._ddl(text, superuser)

    @staticmethod
    def _superuser_only(superuser, relation) -> None:
        if not superuser:
            raise psycopg.errors.InsufficientPrivilege(f"permission denied for table {relation}")

    def _ddl(self, text, superuser):
        server = self.server
        if server.fail_on and text.startswith(server.fail_on):
            raise psycopg.errors.InsufficientPrivilege(f"must be able to SET ROLE {CHAT_PW}")
        if not superuser:
            raise psycopg.errors.InsufficientPrivilege("permission denied to create role")
        attrs = {
            "login": "NOLOGIN" not in text and "LOGIN" in text,
            "superuser": False,
            "createdb": False,
            "createrole": False,
            "replication": False,
            "bypassrls": False,
        }
        if m := re.fullmatch(r'CREATE ROLE "(\w+)" [A-Z ]+ PASSWORD \'(.+)\'', text):
            if m[1] in server.roles:
                raise psycopg.errors.DuplicateObject(f'role "{m[1]}" already exists')
            server.roles[m[1]] = dict(attrs, password=m[2])
        elif m := re.fullmatch(r'ALTER ROLE "(\w+)" PASSWORD \'(.+)\'', text):
            server.roles[m[1]]["password"] = m[2]
        elif m := re.fullmatch(r'ALTER ROLE "(\w+)" [A-Z ]+', text):
            server.roles[m[1]].update(attrs)
        elif m := re.fullmatch(r'CREATE DATABASE "(\w+)" OWNER "(\w+)"', text):
            server.databases[m[1]] = {"owner": m[2], "acl": None}
        elif m := re.fullmatch(r'ALTER DATABASE "(\w+)" OWNER TO "(\w+)"', text):
            server.databases[m[1]]["owner"] = m[2]
        elif m := re.fullmatch(r'REVOKE CONNECT, TEMPORARY ON DATABASE "(\w+)" FROM PUBLIC', text):
            db = server.databases[m[1]]
            db["acl"] = {db["owner"]} if db["acl"] is None else db["acl"] - {"PUBLIC"}
        elif m := re.fullmatch(r'GRANT CONNECT ON DATABASE "(\w+)" TO "(\w+)"', text):
            db = server.databases[m[1]]
            db["acl"] = ({"PUBLIC", db["owner"]} if db["acl"] is None else db["acl"]) | {m[2]}
        else:
            raise AssertionError(f"the fake does not know {text!r}")
        return FakeCursor([])


SERVICES = (pg.Service("chat", CHAT_PW, "chat"), pg.Service("voice", VOICE_PW, "voice"))


def provision(server, services=SERVICES, check_mode=False, admin_password=ADMIN_PW):
    return prov.provision(
        "10.0.0.5", 5432, "postgres", admin_password, "postgres", services, 2.0, check_mode, connect=server.connect
    )


def check(server, services=SERVICES, admin_password=ADMIN_PW):
    return checks.check_postgres(
        "postgresql", "10.0.0.5", 5432, "postgres", admin_password, "postgres", services, 2.0, connect=server.connect
    )


def by_check(records, name, user=None):
    found = [x for x in records if x["check"] == name and (user is None or x["observed"].get("user") == user)]
    assert len(found) == 1, (name, user, records)
    return found[0]


def assert_no_secret(obj):
    text = json.dumps(obj)
    for secret in ALL_SECRETS:
        assert secret not in text


# --- libpq's errors and the connect seam ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "auth", "denial"),
    [
        ('FATAL:  password authentication failed for user "chat"', True, None),
        ("fe_sendauth: no password supplied", True, None),
        (
            'FATAL:  permission denied for database "voice"\nDETAIL:  User does not have CONNECT privilege.',
            False,
            "privilege",
        ),
        (
            'FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "chat", database "voice", no encryption',
            False,
            "pg_hba",
        ),
        ('FATAL:  pg_hba.conf rejects connection for host "10.0.0.1", user "chat", database "voice"', False, "pg_hba"),
        ("Connection refused", False, None),
        ('FATAL:  database "voice" does not exist', False, None),
    ],
)
def test_error_classification(text, auth, denial):
    exc = psycopg.OperationalError(f"connection failed: {text}")
    assert pg.is_auth_failure(exc) is auth
    assert pg.connect_denial(exc) == denial


def test_pg_connect_never_reads_a_password_from_the_environment(monkeypatch):
    seen = {}

    def fake_connect(**kwargs: object):
        seen.update(kwargs)
        return "conn"

    monkeypatch.setattr(psycopg, "connect", fake_connect)
    monkeypatch.setenv("PGPASSWORD", "from-env")
    assert pg.pg_connect("db", 5432, "chat", None, "chat", 0.2) == "conn"
    assert seen["password"] == "" and seen["passfile"] == "/dev/null/pgpass"
    assert seen["connect_timeout"] == 1 and seen["autocommit"] is True
