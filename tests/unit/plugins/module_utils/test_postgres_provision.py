# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL provisioning: the plan, the diff, and provision() against the fake server."""

from __future__ import annotations

import json

import psycopg
import pytest

# The fakes live beside their own tests (pytest puts this directory on sys.path).
import test_postgres as fakes

from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres as pg
from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_provision as prov
from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_scram as scram

ADMIN_PW, CHAT_PW, VOICE_PW, SALT = fakes.ADMIN_PW, fakes.CHAT_PW, fakes.VOICE_PW, fakes.SALT
ALL_SECRETS, SERVICES = fakes.ALL_SECRETS, fakes.SERVICES
FakePostgres, provision, assert_no_secret = fakes.FakePostgres, fakes.provision, fakes.assert_no_secret
ENCRYPTED: list[tuple[str, str]] = []


def encrypt(password: str, role: str) -> str:
    """A stand-in for libpq that is repeatable (a fixed salt) and says whom it was asked for."""
    ENCRYPTED.append((password, role))
    return fakes.make_verifier(password)


# --- the provisioning plan -----------------------------------------------------------------

CHAT = pg.Service("chat", CHAT_PW, "chat")


def role(name="chat", password=CHAT_PW, **flags: bool):
    attrs = {"login": True, "superuser": False, "createdb": False, "createrole": False}
    attrs.update(flags)
    verifier = password if password is None or password.startswith(("SCRAM", "md5")) else None
    if verifier is None and password is not None:
        verifier = fakes.make_verifier(password)
    return prov.RoleState(name, password=verifier, **attrs)


def database(name="chat", owner="chat", public_connect=False, public_temporary=False):
    return prov.DatabaseState(name, owner, public_connect, public_temporary)


def state(roles=(), databases=(), connect=None):
    return prov.State(
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
            state(
                [role(password=fakes.make_verifier(CHAT_PW, bytes(16), 8192))], [database()], {("chat", "chat"): True}
            ),
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
    ENCRYPTED.clear()
    steps = prov.plan_service(CHAT, current, encrypt)
    assert [s.template for s in steps] == templates, case
    for step in steps:
        assert dict(step.identifiers).get("role", "chat") == "chat"
        assert CHAT_PW not in step.change
        for key, value in step.literals:
            assert key == "verifier"
            assert value == fakes.make_verifier(CHAT_PW)
    assert set(ENCRYPTED) <= {(CHAT_PW, "chat")}, "a verifier is made for the service's own role"


def test_plan_changes_read_as_sentences_without_secrets():
    steps = prov.plan([CHAT, pg.Service("voice", VOICE_PW, "voice_db")], state(), encrypt)
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
    steps = prov.plan([CHAT], state(), encrypt)
    rendered = [prov.compose(s).as_string(None) for s in steps]
    verifier = fakes.make_verifier(CHAT_PW)
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
    before = prov.describe([CHAT], current)
    after = prov.describe([CHAT], current, desired=True)
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
    assert prov.describe([CHAT], state()) == {"roles": [], "databases": []}
    text = json.dumps([before, after])
    assert "SCRAM-SHA-256$" not in text and CHAT_PW not in text


# --- provision() against the fake server -----------------------------------------------------


def test_provision_check_mode_then_apply_then_again():
    server = FakePostgres()
    checked = provision(server, check_mode=True)
    assert checked["changed"] is True and len(checked["changes"]) == 8
    assert set(server.roles) == {"postgres"}, "check mode executes nothing"
    assert not any(s.startswith(("CREATE", "ALTER", "GRANT", "REVOKE")) for s in server.statements)

    applied = provision(server)
    assert applied["changes"] == checked["changes"]
    assert server.databases["chat"] == {"owner": "chat", "acl": {"chat"}}
    assert scram.verifier_matches(server.roles["chat"]["password"], CHAT_PW)
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
    assert scram.verifier_matches(server.roles["chat"]["password"], "new-chat-pw")
    assert "new-chat-pw" not in json.dumps(changed)


def test_provision_fails_with_a_clear_message_when_admin_cannot_connect():
    with pytest.raises(prov.ProvisionError) as err:
        provision(FakePostgres(), admin_password="wrong-admin")
    assert 'password authentication failed for user "postgres"' in str(err.value)
    assert "wrong-admin" not in str(err.value)


NEW_ADMIN_PW = "new-admin-pw-9f8e7d6c5b4a"


def rotate_admin(server, check_mode=False, admin_password=NEW_ADMIN_PW, previous=ADMIN_PW):
    return prov.provision(
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
    assert scram.verifier_matches(server.roles["postgres"]["password"], ADMIN_PW), "check mode changes nothing"

    applied = rotate_admin(server)
    assert applied["changes"] == planned["changes"]
    assert scram.verifier_matches(server.roles["postgres"]["password"], NEW_ADMIN_PW)
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
    with pytest.raises(prov.ProvisionError) as err:
        rotate_admin(FakePostgres(), admin_password="wrong-new-admin-pw", previous="wrong-old-admin-pw")
    text = str(err.value)
    assert "could not connect (with the former and the new password)" in text
    assert 'password authentication failed for user "postgres"' in text
    assert "wrong-new-admin-pw" not in text and "wrong-old-admin-pw" not in text


def test_provision_admin_unreachable_is_not_retried_with_the_other_password():
    server = FakePostgres()
    server.unreachable = True
    with pytest.raises(prov.ProvisionError) as err:
        rotate_admin(server)
    assert "Connection refused" in str(err.value) and "former and the new" not in str(err.value)


def test_provision_names_the_step_that_failed():
    server = FakePostgres()
    server.roles["postgres"]["superuser"] = False
    with pytest.raises(prov.ProvisionError) as err:
        provision(server)
    assert str(err.value).startswith("reading roles and databases failed: InsufficientPrivilege: permission denied")


def test_provision_failure_names_the_step_and_what_already_ran():
    server = FakePostgres()
    server.fail_on = "CREATE DATABASE"
    with pytest.raises(prov.ProvisionError) as err:
        provision(server)
    assert str(err.value) == (
        "create database chat owned by chat: InsufficientPrivilege: must be able to SET ROLE ********"
    )
    assert err.value.changes == [f"create role chat ({ATTRS}, SCRAM-SHA-256 password)"]
    server.fail_on = None
    assert provision(server)["changes"][0] == "create database chat owned by chat", "a re-run completes the rest"
