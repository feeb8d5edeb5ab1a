# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis probes against the in-memory fake of test_redis.py."""

from __future__ import annotations

import json

import pytest

# The fakes live beside their own tests (pytest puts this directory on sys.path).
import test_redis as fakes

from ansible_collections.aiops.mlstack.plugins.module_utils import _redis as r
from ansible_collections.aiops.mlstack.plugins.module_utils import _redis_checks as checks

ADMIN_PW, CHAT_PW, VOICE_PW, USERS = fakes.ADMIN_PW, fakes.CHAT_PW, fakes.VOICE_PW, fakes.USERS
FakeRedisServer, run = fakes.FakeRedisServer, fakes.run
by_check, assert_no_secret = fakes.by_check, fakes.assert_no_secret


def test_all_checks_pass_against_a_well_configured_server():
    server = FakeRedisServer()
    records = run(server)
    assert [(x["check"], x["observed"].get("user")) for x in records] == [
        ("connect", "admin"),
        ("auth_required", None),
        ("wrong_password_rejected", "admin"),
        ("persistence", None),
        ("own_prefix_access", "chat"),
        ("foreign_prefix_denied", "chat"),
        ("risky_commands_denied", "chat"),
        ("own_prefix_access", "voice"),
        ("foreign_prefix_denied", "voice"),
        ("risky_commands_denied", "voice"),
    ]
    assert all(x["ok"] for x in records), records
    assert all(x["unit"] == "redis" for x in records)
    connect = by_check(records, "connect")
    assert connect["observed"]["redis_version"] == "7.0.15"
    assert connect["observed"]["latency_ms"] >= 0
    assert by_check(records, "persistence")["observed"]["aof_enabled"] == 1
    assert by_check(records, "foreign_prefix_denied", "chat")["observed"] == {
        "user": "chat",
        "foreign_prefix": "voice:",
        "read_denied": True,
        "write_denied": True,
    }
    assert by_check(records, "foreign_prefix_denied", "voice")["observed"]["foreign_prefix"] == "chat:"
    assert "NOPERM" in by_check(records, "foreign_prefix_denied", "chat")["message"]
    assert "WRONGPASS" in by_check(records, "wrong_password_rejected")["message"]
    assert "NOAUTH" in by_check(records, "auth_required")["message"]
    assert server.store == {}, "probe keys must be deleted"
    assert all(c.closed for c in server.clients), "every client is closed"
    risky = by_check(records, "risky_commands_denied", "chat")
    assert risky["observed"] == {"user": "chat", "must_deny": ["script", "blocking", "pubsub"],
                                 "script_denied": True, "blocking_denied": True, "pubsub_denied": True}
    assert risky["message"].startswith("user chat is refused EVAL, BLPOP, SUBSCRIBE: EVAL: NoPermissionError: "
                                       "NOPERM this user has no permissions to run the 'eval' command; BLPOP: ")
    assert server.ran == [], "nothing risky ran"
    assert_no_secret(records)


@pytest.mark.parametrize(
    ("allowed", "acl", "ok", "problem"),
    [
        ({"eval"}, None, False, "EVAL was allowed"),
        ({"eval"}, ["@read", "blpop"], False, "EVAL was allowed"),
        ({"blpop"}, "sessions", False, "BLPOP was allowed"),
        ({"subscribe"}, ["get", "set"], False, "SUBSCRIBE was allowed"),
        # a service whose permission names blocking or pub/sub may use them
        ({"blpop"}, ["get", "blpop"], True, None),
        ({"blpop", "subscribe"}, ["@list", "@blocking", "@pubsub"], True, None),
        ({"subscribe"}, ["subscribe"], True, None),
        ({"subscribe"}, ["publish"], False, "SUBSCRIBE was allowed"),
    ],
)
def test_a_user_allowed_a_risky_command_fails_unless_its_permission_grants_it(allowed, acl, ok, problem):
    server = FakeRedisServer()
    server.users["chat"]["commands"] = allowed
    users = (r.RedisUser("chat", CHAT_PW, "chat:", acl), USERS[1])
    record = by_check(run(server, users=users), "risky_commands_denied", "chat")
    assert record["ok"] is ok, record
    if problem:
        assert problem in record["message"]
    for probe, command in checks.RISKY_PROBES:
        assert record["observed"][f"{probe}_denied"] is (command.lower() not in allowed)


def test_a_refused_key_does_not_pass_for_a_refused_command():
    # BLPOP and SUBSCRIBE granted, the user's own prefix not: NOPERM for the key, which proves nothing
    server = FakeRedisServer()
    server.users["chat"]["keys"] = ["other:*"]
    server.users["chat"]["commands"] = {"blpop", "subscribe"}
    record = by_check(run(server), "risky_commands_denied", "chat")
    assert record["ok"] is False
    assert record["observed"]["script_denied"] is True and record["observed"]["blocking_denied"] is False
    assert "BLPOP failed, but not with NOPERM for the command" in record["message"]
    assert "SUBSCRIBE failed, but not with NOPERM for the command" in record["message"]


def test_a_user_that_cannot_connect_is_not_checked_for_risky_commands():
    records = run(FakeRedisServer(), users=[r.RedisUser("chat", "wrong-one", "chat:"), USERS[1]])
    risky = by_check(records, "risky_commands_denied", "chat")
    assert risky["ok"] is False


def test_wrong_admin_password_fails_connect_and_persistence():
    records = run(FakeRedisServer(), admin_password="not-the-password")
    connect = by_check(records, "connect")
    assert connect["ok"] is False
    assert "WRONGPASS" in connect["message"]
    assert "not-the-password" not in json.dumps(records)
    persistence = by_check(records, "persistence")
    assert persistence["ok"] is False and "not checked" in persistence["message"]
    # the other checks do not depend on the admin connection
    assert by_check(records, "auth_required")["ok"] is True
    assert by_check(records, "own_prefix_access", "chat")["ok"] is True


def test_open_default_user_fails_auth_required():
    server = FakeRedisServer()
    server.default_open = True
    record = by_check(run(server), "auth_required")
    assert record["ok"] is False
    assert record["observed"] == {"refused": False}
    assert "default user is open" in record["message"]


def test_server_accepting_any_password_fails_wrong_password_check():
    server = FakeRedisServer()
    server.accept_any_password = True
    record = by_check(run(server), "wrong_password_rejected")
    assert record["ok"] is False
    assert record["observed"]["rejected"] is False


def test_aof_disabled_fails_persistence():
    server = FakeRedisServer()
    server.aof_enabled = 0
    record = by_check(run(server), "persistence")
    assert record["ok"] is False
    assert record["observed"]["aof_enabled"] == 0


def test_user_with_all_keys_fails_foreign_prefix_and_cleans_up():
    server = FakeRedisServer()
    server.users["chat"]["keys"] = ["*"]
    records = run(server)
    record = by_check(records, "foreign_prefix_denied", "chat")
    assert record["ok"] is False
    assert record["observed"]["read_denied"] is False
    assert record["observed"]["write_denied"] is False
    assert "EXISTS voice:mlstack-check was allowed" in record["message"]
    assert server.store == {}, "a foreign write that worked is undone"
    assert by_check(records, "foreign_prefix_denied", "voice")["ok"] is True


def test_a_user_without_set_get_del_proves_its_prefix_with_exists():
    server = FakeRedisServer()
    users = (r.RedisUser("chat", CHAT_PW, "chat:", "conversations"), USERS[1])
    records = run(server, users=users)
    own = by_check(records, "own_prefix_access", "chat")
    assert own["ok"] is True and own["observed"] == {"user": "chat", "key": "chat:mlstack-check", "exists": 0}
    assert "EXISTS" in own["message"]
    assert by_check(records, "own_prefix_access", "voice")["observed"]["deleted"] is True
    server.users["chat"]["keys"] = ["other:*"]
    own = by_check(run(server, users=users), "own_prefix_access", "chat")
    assert own["ok"] is False and "NOPERM" in own["message"]


def test_user_without_its_own_prefix_fails_own_prefix_access():
    server = FakeRedisServer()
    server.users["chat"]["keys"] = ["other:*"]
    record = by_check(run(server), "own_prefix_access", "chat")
    assert record["ok"] is False
    assert "NOPERM" in record["message"]
    assert record["observed"]["key"] == "chat:mlstack-check"


def test_user_with_wrong_password_fails_both_user_checks():
    users = [r.RedisUser("chat", "wrong-one", "chat:"), USERS[1]]
    records = run(FakeRedisServer(), users=users)
    own = by_check(records, "own_prefix_access", "chat")
    foreign = by_check(records, "foreign_prefix_denied", "chat")
    assert own["ok"] is False and "WRONGPASS" in own["message"]
    assert foreign["ok"] is False and "not checked" not in own["message"]
    assert foreign["observed"]["read_denied"] is False
    assert "wrong-one" not in json.dumps(records)


def test_single_user_is_tried_on_a_prefix_that_is_nobodys():
    records = run(FakeRedisServer(), users=[USERS[0]])
    record = by_check(records, "foreign_prefix_denied", "chat")
    assert record["ok"] is True
    assert record["observed"]["foreign_prefix"] == checks.NOBODY_PREFIX


def test_unreachable_server_fails_every_check_without_claiming_auth():
    server = FakeRedisServer()
    server.unreachable = True
    records = run(server)
    assert not any(x["ok"] for x in records)
    assert "another reason than auth" in by_check(records, "auth_required")["message"]
    assert "Connection refused" in by_check(records, "connect")["message"]


def test_passwords_in_server_error_texts_are_scrubbed():
    server = FakeRedisServer()
    server.echo_password = True
    typo = CHAT_PW + "-typo"
    records = run(server, users=[r.RedisUser("chat", typo, "chat:"), USERS[1]])
    assert typo not in json.dumps(records)
    assert_no_secret(records)
    assert "(got ********)" in by_check(records, "own_prefix_access", "chat")["message"]
    assert "(got ********)" in by_check(records, "wrong_password_rejected")["message"]
