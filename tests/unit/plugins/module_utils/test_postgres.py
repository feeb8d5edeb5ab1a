# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: SCRAM verifiers, the provisioning plan, and the probes against a fake."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres as pg

ADMIN_PW = "Adm1n-s3cret-value"
CHAT_PW = "chat-s3cret-value"
VOICE_PW = "voice-s3cret-value"
ALL_SECRETS = (ADMIN_PW, CHAT_PW, VOICE_PW)
SALT = bytes(range(16))

# --- SCRAM -------------------------------------------------------------------------------

# RFC 7677 section 3: user "user", password "pencil".
RFC7677 = {
    "password": "pencil",
    "salt": "W22ZaJ0SNY7soEsUEjb6gQ==",
    "iterations": 4096,
    "client_first_bare": "n=user,r=rOprNGfwEbeRWgbNEkqO",
    "server_first": "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final_without_proof": "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "client_proof": "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_signature": "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}


def test_scram_verifier_matches_the_rfc7677_exchange():
    verifier = pg.scram_verifier(RFC7677["password"], base64.b64decode(RFC7677["salt"]), RFC7677["iterations"])
    assert verifier.startswith(f"SCRAM-SHA-256$4096:{RFC7677['salt']}$")
    parsed = pg.parse_scram_verifier(verifier)
    assert parsed is not None and parsed.iterations == 4096
    auth_message = ",".join(
        (RFC7677["client_first_bare"], RFC7677["server_first"], RFC7677["client_final_without_proof"])
    ).encode()
    # ServerSignature = HMAC(ServerKey, AuthMessage)
    server_signature = hmac.new(parsed.server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(server_signature).decode() == RFC7677["server_signature"]
    # ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), and StoredKey = H(ClientKey)
    client_signature = hmac.new(parsed.stored_key, auth_message, hashlib.sha256).digest()
    proof = base64.b64decode(RFC7677["client_proof"])
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == parsed.stored_key


def test_scram_verifier_format():
    verifier = pg.scram_verifier("secret", SALT, 4096)
    assert re.fullmatch(r"SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=", verifier)
    assert pg.scram_verifier("secret", SALT, 4096) == verifier, "deterministic for a given salt"
    assert pg.scram_verifier("secret", bytes(16), 4096) != verifier
    assert pg.scram_verifier("secret", SALT, 10000).startswith("SCRAM-SHA-256$10000:")
    with pytest.raises(ValueError):
        pg.scram_verifier("secret", SALT, 0)


# Verifiers PostgreSQL 15.20 (mlstack/postgresql:recipe) made itself (CREATE ROLE ... PASSWORD '<plain>' with
# password_encryption = scram-sha-256, random salt), recorded from a run of
# tests/integration/test_db_checks.py::test_scram_verifier_agrees_with_postgresql.
PG_MADE = [
    (
        "plain-ascii-1",
        "SCRAM-SHA-256$4096:hgipiqbj0OyC1J3GF4vbMA==$O8v/Fyj2nTaHt6p9egIH0Pm8GTru9q5SMeGYRtAdg6A="
        ":6SW+KqHCAxVE8K+AacUeJdnTZZpY1sowLw7GHrefXvE=",
    ),
    (
        "mlstack-P\u00e4ssw\u00f6rd 1",
        "SCRAM-SHA-256$4096:5ZndbjktiNqdZZBl9WFa1g==$wsOxgUdUwiDLVdsXtE1BeJ+zpVy6SnkRka3cWT4XYA0="
        ":PpMwTuGaI/5ZQnW3Tf4IyN5ZxouN9s2SYbByCQ3QCQc=",
    ),
    (
        "I\u00adX \u2168 \u00aa",  # SASLprep: mapped to nothing, NFKC
        "SCRAM-SHA-256$4096:7dsuNB/NgT7IpoTo/90xhQ==$ZYLemQ9h1ST8BU5+mFlcN4JFWl39+EA6wHkBQvPHxMg="
        ":J6RhrpqGAO5VhRG7m07Y/s9YulUj2Hokft/kSGKlCy4=",
    ),
    (
        "a\u00a0b",  # SASLprep: non-ASCII space
        "SCRAM-SHA-256$4096:YstsrSaEHjDylcI+mj4p3A==$h8ZxuiqQzt9VajeVJC0/wK0RHLkQjL2rjcfnZNNBjBc="
        ":jg7lQZLoYEWuWn43HLij+wdryZYXupJRRHcyv/NVw+s=",
    ),
]


@pytest.mark.parametrize(("password", "verifier"), PG_MADE)
def test_scram_verifier_agrees_with_verifiers_postgresql_made(password, verifier):
    parsed = pg.parse_scram_verifier(verifier)
    assert parsed is not None
    assert pg.scram_verifier(password, parsed.salt, parsed.iterations) == verifier
    assert pg.verifier_matches(verifier, password)
    assert not pg.verifier_matches(verifier, password + " ")


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("plain ascii\t!", b"plain ascii\t!"),  # ASCII passes unchanged, control characters included
        ("I\u00adX", b"IX"),  # soft hyphen is mapped to nothing
        ("a\u00a0b", b"a b"),  # non-ASCII space becomes a space
        ("\u2168", b"IX"),  # NFKC: ROMAN NUMERAL NINE
        ("\u00aa", b"a"),  # NFKC: FEMININE ORDINAL INDICATOR
        ("p\u00e4ss", "p\u00e4ss".encode()),
        ("\u00e4\u0007", "\u00e4\u0007".encode()),  # prohibited: the raw bytes are used
        ("\u0627" + "1", ("\u0627" + "1").encode()),  # bidi: RandALCat must end the string too
        ("\u0627a\u0627", ("\u0627a\u0627").encode()),  # bidi: RandALCat with LCat
        ("\u0627\u0628", "\u0627\u0628".encode()),  # a valid right-to-left string
        ("\u00ad", "\u00ad".encode()),  # maps to nothing at all: raw
    ],
)
def test_saslprep_follows_postgresql(password, prepared):
    assert pg.saslprep(password) == prepared


@pytest.mark.parametrize(
    ("stored", "kind", "matches"),
    [
        (pg.scram_verifier("right", SALT), "scram-sha-256", True),
        (pg.scram_verifier("wrong", SALT), "scram-sha-256", False),
        (pg.scram_verifier("right", SALT, 8192), "scram-sha-256", True),
        ("md5" + hashlib.md5(b"rightchat").hexdigest(), "md5", False),  # noqa: S324 - the legacy format under test
        (None, "none", False),
        ("", "none", False),
        ("SCRAM-SHA-256$4096:!!$x:y", "other", False),
    ],
)
def test_verifier_matches_and_kind(stored, kind, matches):
    assert pg.password_kind(stored) == kind
    assert pg.verifier_matches(stored, "right") is matches


# --- the provisioning plan -----------------------------------------------------------------

CHAT = pg.Service("chat", CHAT_PW, "chat")


def role(name="chat", password=CHAT_PW, **flags: bool):
    attrs = {"login": True, "superuser": False, "createdb": False, "createrole": False}
    attrs.update(flags)
    verifier = password if password is None or password.startswith(("SCRAM", "md5")) else None
    if verifier is None and password is not None:
        verifier = pg.scram_verifier(password, SALT)
    return pg.RoleState(name, password=verifier, **attrs)


def database(name="chat", owner="chat", public_connect=False, public_temporary=False):
    return pg.DatabaseState(name, owner, public_connect, public_temporary)


def state(roles=(), databases=(), connect=None):
    return pg.State(
        roles={r.name: r for r in roles},
        databases={d.name: d for d in databases},
        connect=dict(connect or {}),
    )


ATTRS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
GOOD = state([role()], [database()], {("chat", "chat"): True})
CREATE_ROLE = (
    "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {verifier}"
)
ALTER_ATTRS = "ALTER ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
ALTER_PW = "ALTER ROLE {role} PASSWORD {verifier}"
CREATE_DB = "CREATE DATABASE {database} OWNER {role}"
OWNER = "ALTER DATABASE {database} OWNER TO {role}"
REVOKE = "REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC"
GRANT = "GRANT CONNECT ON DATABASE {database} TO {role}"


@pytest.mark.parametrize(
    ("case", "current", "templates"),
    [
        ("new role and database", state(), [CREATE_ROLE, CREATE_DB, REVOKE, GRANT]),
        ("nothing to do", GOOD, []),
        (
            "password same, other salt",
            state([role(password=pg.scram_verifier(CHAT_PW, bytes(16), 8192))], [database()], {("chat", "chat"): True}),
            [],
        ),
        (
            "password differs",
            state([role(password="old-password")], [database()], {("chat", "chat"): True}),
            [ALTER_PW],
        ),
        (
            "password is md5",
            state([role(password="md5" + "0" * 32)], [database()], {("chat", "chat"): True}),
            [ALTER_PW],
        ),
        ("no password", state([role(password=None)], [database()], {("chat", "chat"): True}), [ALTER_PW]),
        ("role is superuser", state([role(superuser=True)], [database()], {("chat", "chat"): True}), [ALTER_ATTRS]),
        ("role cannot log in", state([role(login=False)], [database()], {("chat", "chat"): True}), [ALTER_ATTRS]),
        (
            "role may create databases",
            state([role(createdb=True)], [database()], {("chat", "chat"): True}),
            [ALTER_ATTRS],
        ),
        ("database missing", state([role()]), [CREATE_DB, REVOKE, GRANT]),
        (
            "database owner wrong",
            state([role()], [database(owner="postgres")], {("chat", "chat"): False}),
            [OWNER, GRANT],
        ),
        (
            "PUBLIC may connect",
            state([role()], [database(public_connect=True, public_temporary=True)], {("chat", "chat"): True}),
            [REVOKE],
        ),
        (
            "PUBLIC may create temp tables",
            state([role()], [database(public_temporary=True)], {("chat", "chat"): True}),
            [REVOKE],
        ),
        ("role may not connect", state([role()], [database()], {("chat", "chat"): False}), [GRANT]),
    ],
)
def test_plan_service(case, current, templates):
    steps = pg.plan_service(CHAT, current, salt_factory=lambda: SALT)
    assert [s.template for s in steps] == templates, case
    for step in steps:
        assert dict(step.identifiers).get("role", "chat") == "chat"
        assert CHAT_PW not in step.change
        for key, value in step.literals:
            assert key == "verifier"
            assert value == pg.scram_verifier(CHAT_PW, SALT)


def test_plan_changes_read_as_sentences_without_secrets():
    steps = pg.plan([CHAT, pg.Service("voice", VOICE_PW, "voice_db")], state(), salt_factory=lambda: SALT)
    assert [s.change for s in steps] == [
        f"create role chat ({ATTRS}, SCRAM-SHA-256 password)",
        "create database chat owned by chat",
        "revoke CONNECT, TEMPORARY on database chat from PUBLIC",
        "grant CONNECT on database chat to chat",
        f"create role voice ({ATTRS}, SCRAM-SHA-256 password)",
        "create database voice_db owned by voice",
        "revoke CONNECT, TEMPORARY on database voice_db from PUBLIC",
        "grant CONNECT on database voice_db to voice",
    ]
    assert "SCRAM-SHA-256$" not in repr(steps), "the verifier stays out of repr"


def test_compose_quotes_identifiers_and_literals():
    steps = pg.plan([CHAT], state(), salt_factory=lambda: SALT)
    rendered = [pg.compose(s).as_string(None) for s in steps]
    verifier = pg.scram_verifier(CHAT_PW, SALT)
    assert rendered == [
        'CREATE ROLE "chat" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS'
        f" PASSWORD '{verifier}'",
        'CREATE DATABASE "chat" OWNER "chat"',
        'REVOKE CONNECT, TEMPORARY ON DATABASE "chat" FROM PUBLIC',
        'GRANT CONNECT ON DATABASE "chat" TO "chat"',
    ]
    assert CHAT_PW not in " ".join(rendered)


def test_describe_before_and_after_hold_no_secret():
    current = state([role(password="old", superuser=True)], [database(owner="postgres", public_connect=True)])
    before = pg.describe([CHAT], current)
    after = pg.describe([CHAT], current, desired=True)
    assert before == {
        "roles": [
            {
                "name": "chat",
                "attributes": "LOGIN SUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
                "verifier": "scram-sha-256",
                "verifier_matches": False,
            }
        ],
        "databases": [
            {
                "name": "chat",
                "owner": "postgres",
                "public_connect": True,
                "public_temporary": False,
                "owner_connect": False,
            }
        ],
    }
    assert after["roles"][0]["verifier_matches"] is True
    assert after["databases"][0] == {
        "name": "chat",
        "owner": "chat",
        "public_connect": False,
        "public_temporary": False,
        "owner_connect": True,
    }
    assert pg.describe([CHAT], state()) == {"roles": [], "databases": []}
    text = json.dumps([before, after])
    assert "SCRAM-SHA-256$" not in text and CHAT_PW not in text


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
                "password": pg.scram_verifier(ADMIN_PW, SALT),
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
        return pg.verifier_matches(stored, password)

    def may_connect(self, user, dbname):
        db = self.databases[dbname]
        if self.roles.get(user, {}).get("superuser") or db["owner"] == user:
            return True
        return db["acl"] is None or "PUBLIC" in db["acl"] or user in db["acl"]


class FakeConn:
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
    return pg.provision(
        "10.0.0.5", 5432, "postgres", admin_password, "postgres", services, 2.0, check_mode, connect=server.connect
    )


def check(server, services=SERVICES, admin_password=ADMIN_PW):
    return pg.check_postgres(
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


def test_provision_check_mode_then_apply_then_again():
    server = FakePostgres()
    checked = provision(server, check_mode=True)
    assert checked["changed"] is True and len(checked["changes"]) == 8
    assert set(server.roles) == {"postgres"}, "check mode executes nothing"
    assert not any(s.startswith(("CREATE", "ALTER", "GRANT", "REVOKE")) for s in server.statements)

    applied = provision(server)
    assert applied["changes"] == checked["changes"]
    assert server.databases["chat"] == {"owner": "chat", "acl": {"chat"}}
    assert pg.verifier_matches(server.roles["chat"]["password"], CHAT_PW)
    assert applied["diff"]["before"] == {"roles": [], "databases": []}
    assert [r["name"] for r in applied["diff"]["after"]["roles"]] == ["chat", "voice"]

    again = provision(server)
    assert again == {
        "changed": False,
        "changes": [],
        "diff": {"before": again["diff"]["after"], "after": again["diff"]["after"]},
    }
    assert provision(server, check_mode=True)["changed"] is False
    for result in (checked, applied, again):
        assert_no_secret(result)
    assert all(c.closed for c in server.connections)
    # the plaintext never reaches the server
    assert not any(secret in s for s in server.statements for secret in ALL_SECRETS)


def test_provision_changes_only_the_password_that_differs():
    server = FakePostgres()
    provision(server)
    changed = provision(server, services=(pg.Service("chat", "new-chat-pw", "chat"), SERVICES[1]))
    assert changed["changes"] == ["set password of role chat (was scram-sha-256, differs)"]
    assert pg.verifier_matches(server.roles["chat"]["password"], "new-chat-pw")
    assert "new-chat-pw" not in json.dumps(changed)


def test_provision_fails_with_a_clear_message_when_admin_cannot_connect():
    with pytest.raises(pg.ProvisionError) as err:
        provision(FakePostgres(), admin_password="wrong-admin")
    assert 'password authentication failed for user "postgres"' in str(err.value)
    assert "wrong-admin" not in str(err.value)


NEW_ADMIN_PW = "new-admin-pw-9f8e7d6c5b4a"


def rotate_admin(server, check_mode=False, admin_password=NEW_ADMIN_PW, previous=ADMIN_PW):
    return pg.provision(
        "10.0.0.5", 5432, "postgres", admin_password, "postgres", SERVICES, 2.0, check_mode,
        connect=server.connect, admin_password_previous=previous,
    )


def test_provision_rotates_the_admin_password_as_a_verifier_and_a_re_run_completes():
    server = FakePostgres()
    provision(server)
    refused: list[str] = []
    real_connect = server.connect

    def counting(host, port, user, password, dbname, timeout):
        try:
            return real_connect(host, port, user, password, dbname, timeout)
        except psycopg.OperationalError:
            refused.append(user)
            raise

    server.connect = counting
    planned = rotate_admin(server, check_mode=True)
    assert planned["changes"] == ["set password of admin role postgres (was scram-sha-256, differs)"]
    assert planned["diff"]["before"]["admin"] == {"name": "postgres", "verifier_matches": False}
    assert pg.verifier_matches(server.roles["postgres"]["password"], ADMIN_PW), "check mode changes nothing"

    applied = rotate_admin(server)
    assert applied["changes"] == planned["changes"]
    assert pg.verifier_matches(server.roles["postgres"]["password"], NEW_ADMIN_PW)
    assert refused == [], "the former password is tried first: a first run has no refused login"
    # The plain text never reaches the server, nor the result.
    assert not any(NEW_ADMIN_PW in st or ADMIN_PW in st for st in server.statements)
    assert NEW_ADMIN_PW not in json.dumps(applied) and ADMIN_PW not in json.dumps(applied)

    # Interrupted after the change (the former password still on file): the re-run is refused
    # once with the former password, connects with the new one and changes nothing.
    again = rotate_admin(server)
    assert again["changed"] is False and refused == ["postgres"]
    # After the rotation (no former password), and a later deployment, nothing changes.
    assert provision(server, admin_password=NEW_ADMIN_PW)["changed"] is False
    assert all(c.closed for c in server.connections)


def test_provision_admin_refused_with_both_passwords_names_neither():
    with pytest.raises(pg.ProvisionError) as err:
        rotate_admin(FakePostgres(), admin_password="wrong-new-admin-pw", previous="wrong-old-admin-pw")
    text = str(err.value)
    assert "could not connect (with the former and the new password)" in text
    assert 'password authentication failed for user "postgres"' in text
    assert "wrong-new-admin-pw" not in text and "wrong-old-admin-pw" not in text


def test_provision_admin_unreachable_is_not_retried_with_the_other_password():
    server = FakePostgres()
    server.unreachable = True
    with pytest.raises(pg.ProvisionError) as err:
        rotate_admin(server)
    assert "Connection refused" in str(err.value) and "former and the new" not in str(err.value)


def test_provision_names_the_step_that_failed():
    server = FakePostgres()
    server.roles["postgres"]["superuser"] = False
    with pytest.raises(pg.ProvisionError) as err:
        provision(server)
    assert str(err.value).startswith("reading roles and databases failed: InsufficientPrivilege: permission denied")


def test_provision_failure_names_the_step_and_what_already_ran():
    server = FakePostgres()
    server.fail_on = "CREATE DATABASE"
    with pytest.raises(pg.ProvisionError) as err:
        provision(server)
    assert str(err.value) == (
        "create database chat owned by chat: InsufficientPrivilege: must be able to SET ROLE ********"
    )
    assert err.value.changes == [f"create role chat ({ATTRS}, SCRAM-SHA-256 password)"]
    server.fail_on = None
    assert provision(server)["changes"][0] == "create database chat owned by chat", "a re-run completes the rest"


def test_checks_pass_after_provisioning():
    server = FakePostgres()
    provision(server)
    records = check(server)
    assert [(r["check"], r["observed"].get("user")) for r in records] == [
        ("connect", "postgres"),
        ("scram_only", None),
        ("auth_required", "postgres"),
        ("wrong_password_rejected", "postgres"),
        ("own_database_access", "chat"),
        ("foreign_database_denied", "chat"),
        ("not_superuser", "chat"),
        ("own_database_access", "voice"),
        ("foreign_database_denied", "voice"),
        ("not_superuser", "voice"),
    ]
    assert all(r["ok"] for r in records), [r for r in records if not r["ok"]]
    connect = by_check(records, "connect")
    assert connect["observed"]["server_version"].startswith("15.14")
    assert by_check(records, "scram_only")["observed"]["hba_methods"] == ["scram-sha-256"]
    assert by_check(records, "foreign_database_denied", "chat")["observed"] == {
        "user": "chat",
        "foreign_database": "voice",
        "denied": True,
        "denied_by": "privilege",
    }
    assert by_check(records, "own_database_access", "voice")["observed"] == {
        "user": "voice",
        "database": "voice",
        "read_back": True,
        "dropped": True,
    }
    assert server.tables == {}, "the write probe is rolled back"
    assert all(c.closed for c in server.connections)
    assert_no_secret(records)


def test_checks_before_provisioning_fail_per_service():
    records = check(FakePostgres())
    assert by_check(records, "connect")["ok"] is True
    own = by_check(records, "own_database_access", "chat")
    assert own["ok"] is False and 'password authentication failed for user "chat"' in own["message"]
    foreign = by_check(records, "foreign_database_denied", "chat")
    assert foreign["ok"] is False and "not for want of CONNECT" in foreign["message"]
    assert by_check(records, "not_superuser", "chat")["message"] == "role chat does not exist"


def test_wrong_admin_password_fails_connect_and_the_admin_checks():
    server = FakePostgres()
    provision(server)
    records = check(server, admin_password="wrong-admin")
    assert by_check(records, "connect")["ok"] is False
    assert "password authentication failed" in by_check(records, "connect")["message"]
    assert by_check(records, "scram_only")["message"].startswith("not checked")
    assert by_check(records, "not_superuser", "chat")["ok"] is False
    assert by_check(records, "own_database_access", "chat")["ok"] is True
    assert "wrong-admin" not in json.dumps(records)


def test_trust_auth_fails_auth_required_and_wrong_password():
    server = FakePostgres()
    provision(server)
    server.trust = True
    records = check(server)
    assert by_check(records, "auth_required")["ok"] is False
    assert by_check(records, "auth_required")["message"].endswith("without a password was accepted")
    assert by_check(records, "wrong_password_rejected")["ok"] is False


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda s: setattr(s, "password_encryption", "md5"), "password_encryption is 'md5'"),
        (lambda s: s.roles["postgres"].update(password=md5_verifier("postgres", ADMIN_PW)), "admin postgres has a md5"),
        (lambda s: s.roles["chat"].update(password="md5" + "b" * 32), "roles without a SCRAM verifier: chat"),
        (
            lambda s: s.hba.append((3, "host", ["all"], ["all"], "127.0.0.1/32", "trust")),
            "pg_hba.conf has line 3: host trust",
        ),
        (lambda s: s.hba.append((4, "local", ["all"], ["all"], None, "md5")), "pg_hba.conf has line 4: local md5"),
        (lambda s: s.hba.append((5, "host", ["all"], ["all"], "all", "password")), "line 5: host password"),
    ],
)
def test_scram_only_failures(mutate, problem):
    server = FakePostgres()
    provision(server)
    mutate(server)
    record = by_check(check(server), "scram_only")
    assert record["ok"] is False
    assert problem in record["message"]


def test_scram_only_lists_the_weak_rules():
    server = FakePostgres()
    server.hba.append((3, "host", ["all"], ["all"], "127.0.0.1/32", "trust"))
    observed = by_check(check(server, services=[]), "scram_only")["observed"]
    assert observed["hba_methods"] == ["scram-sha-256", "trust"]
    assert observed["weak_hba_rules"] == [
        {
            "line": 3,
            "type": "host",
            "database": ["all"],
            "user_name": ["all"],
            "address": "127.0.0.1/32",
            "auth_method": "trust",
        }
    ]


def test_public_connect_fails_foreign_database_denied():
    server = FakePostgres()
    provision(server)
    server.databases["voice"]["acl"] = None
    record = by_check(check(server), "foreign_database_denied", "chat")
    assert record["ok"] is False
    assert record["observed"]["denied"] is False
    assert "CONNECT is not revoked from PUBLIC" in record["message"]


def test_superuser_service_fails_not_superuser():
    server = FakePostgres()
    provision(server)
    server.roles["chat"].update(superuser=True, createdb=True)
    record = by_check(check(server), "not_superuser", "chat")
    assert record["ok"] is False
    assert record["observed"] == {"user": "chat", "rolsuper": True, "rolcreaterole": False, "rolcreatedb": True}
    assert record["message"] == "role chat has rolsuper, rolcreatedb"


def test_own_database_not_owned_fails_own_database_access_and_leaves_nothing():
    server = FakePostgres()
    provision(server)
    server.databases["chat"]["owner"] = "postgres"
    server.databases["chat"]["acl"] = {"postgres", "chat"}
    record = by_check(check(server), "own_database_access", "chat")
    assert record["ok"] is False
    assert "permission denied for schema public" in record["message"]
    assert server.tables == {}


def test_single_service_skips_the_foreign_database_check_and_says_so():
    server = FakePostgres()
    provision(server, services=SERVICES[:1])
    record = by_check(check(server, services=SERVICES[:1]), "foreign_database_denied", "chat")
    assert record["ok"] is True
    assert record["observed"] == {"user": "chat", "foreign_database": None, "skipped": True}
    assert record["message"].startswith("skipped")


def test_unreachable_server_fails_every_check_without_claiming_auth():
    server = FakePostgres()
    server.unreachable = True
    records = check(server)
    assert not any(r["ok"] for r in records)
    assert "not for auth" in by_check(records, "auth_required")["message"]
    assert "Connection refused" in by_check(records, "connect")["message"]
    assert "\n" not in by_check(records, "connect")["message"], "libpq's lines are joined"


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
