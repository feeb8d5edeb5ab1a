# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL security probes against the fake server (provisioned first)."""

from __future__ import annotations

import json

import pytest

# The fakes live beside their own tests (pytest puts this directory on sys.path).
import test_postgres as fakes

ADMIN_PW, SERVICES, md5_verifier = fakes.ADMIN_PW, fakes.SERVICES, fakes.md5_verifier
FakePostgres, provision, check = fakes.FakePostgres, fakes.provision, fakes.check
by_check, assert_no_secret = fakes.by_check, fakes.assert_no_secret


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
