# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis probes against an in-memory fake that raises redis-py's own exceptions."""

from __future__ import annotations

import fnmatch
import json

import pytest
from redis.exceptions import AuthenticationError, ConnectionError, NoPermissionError, ResponseError

from ansible_collections.aiops.mlstack.plugins.module_utils import _redis as r
from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import scrub

ADMIN_PW = "Adm1n-s3cret-value"
CHAT_PW = "chat-s3cret-value"
VOICE_PW = "voice-s3cret-value"
ALL_SECRETS = (ADMIN_PW, CHAT_PW, VOICE_PW)


class FakeRedisServer:
    """Just enough of Redis 7 ACLs: users, key patterns, commands, NOAUTH/WRONGPASS/NOPERM errors."""

    def __init__(self) -> None:
        self.users: dict[str, dict] = {
            "admin": {"password": ADMIN_PW, "keys": ["*"]},
            "chat": {"password": CHAT_PW, "keys": ["chat:*"]},
            "voice": {"password": VOICE_PW, "keys": ["voice:*"]},
        }
        self.default_open = False
        self.accept_any_password = False
        self.unreachable = False
        self.aof_enabled = 1
        self.store: dict[str, str] = {}
        self.clients: list[FakeClient] = []
        self.echo_password = False
        self.ran: list[tuple[str | None, str]] = []

    def connect(self, host, port, username, password, timeout):
        client = FakeClient(self, username, password)
        self.clients.append(client)
        return client


class FakeClient:
    def __init__(self, server: FakeRedisServer, username, password) -> None:
        self.server = server
        self.username = username
        self.password = password
        self.user: str | None = None
        self.closed = False

    def _auth(self) -> None:
        if self.server.unreachable:
            raise ConnectionError("Error 111 connecting to 10.0.0.9:6379. Connection refused.")
        if self.user:
            return
        if self.username is None and self.password is None:
            if self.server.default_open:
                self.user = "default"
                return
            raise AuthenticationError("Authentication required.", status_code="NOAUTH")
        user = self.server.users.get(self.username or "default")
        if user is None or (user["password"] != self.password and not self.server.accept_any_password):
            raise AuthenticationError(
                "invalid username-password pair or user is disabled."
                + (f" (got {self.password})" if self.server.echo_password else ""),
                status_code="WRONGPASS",
            )
        self.user = self.username

    def _command(self, command: str) -> None:
        # the risky commands a user may run (the ACL file's +eval, +blpop, +subscribe); admin all
        allowed = self.server.users.get(self.user or "", {}).get("commands", set())
        if self.user not in ("admin", "default") and command not in allowed:
            raise NoPermissionError(f"this user has no permissions to run the '{command}' command",
                                    status_code="NOPERM")
        self.server.ran.append((self.user, command))

    def eval(self, script: str, numkeys: int, *args: str) -> int:
        self._auth()
        self._command("eval")
        return 1

    def blpop(self, keys, timeout=0):
        self._auth()
        self._command("blpop")
        for key in keys:
            self._key(key)
        return None

    def execute_command(self, *args: str) -> list:
        self._auth()
        self._command(str(args[0]).lower())
        self._key(args[1])  # channels share the key prefix here
        return ["subscribe", args[1], 1]

    def _key(self, key: str) -> None:
        patterns = ["*"] if self.user == "default" else self.server.users[self.user]["keys"]
        if not any(fnmatch.fnmatchcase(key, p) for p in patterns):
            raise NoPermissionError(
                "this user has no permissions to access one of the keys used as arguments", status_code="NOPERM"
            )

    def ping(self):
        self._auth()
        return True

    def info(self, section):
        self._auth()
        if section == "server":
            return {"redis_version": "7.0.15", "redis_mode": "standalone"}
        if section == "persistence":
            return {"aof_enabled": self.server.aof_enabled, "aof_last_write_status": "ok"}
        raise ResponseError(f"unknown section {section}")

    def set(self, key, value, ex=None):
        self._auth()
        self._key(key)
        self.server.store[key] = value
        return True

    def exists(self, key):
        self._auth()
        self._key(key)
        return int(key in self.server.store)

    def get(self, key):
        self._auth()
        self._key(key)
        return self.server.store.get(key)

    def delete(self, key):
        self._auth()
        self._key(key)
        return 1 if self.server.store.pop(key, None) is not None else 0

    def close(self):
        self.closed = True


USERS = (r.RedisUser("chat", CHAT_PW, "chat:"), r.RedisUser("voice", VOICE_PW, "voice:"))


def run(server: FakeRedisServer, users=USERS, admin_password=ADMIN_PW):
    return r.check_redis("redis", "10.0.0.9", 6379, "admin", admin_password, users, 2.0, connect=server.connect)


def by_check(records, check, user=None):
    found = [x for x in records if x["check"] == check and (user is None or x["observed"].get("user") == user)]
    assert len(found) == 1, (check, user, records)
    return found[0]


def assert_no_secret(records):
    text = json.dumps(records)
    for secret in ALL_SECRETS:
        assert secret not in text


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
    for probe, command in r.RISKY_PROBES:
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
    assert record["observed"]["foreign_prefix"] == r.NOBODY_PREFIX


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


@pytest.mark.parametrize(
    ("exc", "auth", "wrongpass", "noperm"),
    [
        (AuthenticationError("Authentication required.", status_code="NOAUTH"), True, False, False),
        (AuthenticationError("NOAUTH Authentication required."), True, False, False),
        (
            AuthenticationError("invalid username-password pair or user is disabled.", status_code="WRONGPASS"),
            True,
            True,
            False,
        ),
        (ResponseError("WRONGPASS invalid username-password pair or user is disabled."), True, True, False),
        (
            ResponseError("NOPERM this user has no permissions to access one of the keys used as arguments"),
            False,
            False,
            True,
        ),
        (
            NoPermissionError("this user has no permissions to run the 'config|get' command", status_code="NOPERM"),
            False,
            False,
            True,
        ),
        (ConnectionError("Error 111 connecting to 10.0.0.9:6379. Connection refused."), False, False, False),
        (ResponseError("ERR unknown command 'FOO'"), False, False, False),
    ],
)
def test_error_classification(exc, auth, wrongpass, noperm):
    assert r.is_auth_refusal(exc) is auth
    assert r.is_wrong_password(exc) is wrongpass
    assert r.is_no_permission(exc) is noperm


@pytest.mark.parametrize(
    ("exc", "refused"),
    [
        (NoPermissionError("this user has no permissions to run the 'eval' command", status_code="NOPERM"), True),
        (ResponseError("NOPERM this user has no permissions to run the 'blpop' command"), True),
        (NoPermissionError("this user has no permissions to access one of the keys used as arguments"), False),
        (NoPermissionError("this user has no permissions to access one of the channels used as arguments"), False),
        (ResponseError("ERR unknown command 'eval'"), False),
    ],
)
def test_command_refusal_is_told_from_a_key_refusal(exc, refused):
    assert r.is_command_refusal(exc) is refused


def test_describe_error_restores_the_code_and_scrubs():
    exc = NoPermissionError("no permissions for s3cr3t", status_code="NOPERM")
    assert r.describe_error(exc, ["s3cr3t"]) == "NoPermissionError: NOPERM no permissions for ********"


@pytest.mark.parametrize(
    ("users", "errors"),
    [
        ([{"name": "chat", "password": "x", "prefix": "chat:"}], []),
        ([{"name": "voice_2", "password": "x", "prefix": None}], []),
        ([{"name": "Chat", "password": "x"}], ["users[0].name: 'Chat' is not a valid user name"]),
        ([{"name": "a-b", "password": "x"}], ["users[0].name: 'a-b'"]),
        (
            [{"name": "chat", "password": "x"}, {"name": "chat", "password": "y"}],
            ["users[1].name: 'chat' appears more"],
        ),
        ([{"name": "chat", "password": "x", "prefix": ""}], ["users[0].prefix: must not be empty"]),
        ([{"name": "chat", "password": "x", "redis_acl": ["eval"]}],
         ["users[0].redis_acl: unit chat: mlstack_redis_acl: 'eval' is in @scripting"]),
        ([{"name": "chat", "password": "x", "redis_acl": "sessions"}], []),
    ],
)
def test_validate_users(users, errors):
    found = r.validate_users(users)
    assert len(found) == len(errors)
    for message, expected in zip(found, errors, strict=True):
        assert message.startswith(expected)


def test_users_from_params_defaults_the_prefix():
    users = r.users_from_params(
        [{"name": "chat", "password": "p", "prefix": None}, {"name": "v", "password": "q", "prefix": "vv:"}]
    )
    assert users == [r.RedisUser("chat", "p", "chat:"), r.RedisUser("v", "q", "vv:")]
    [user] = r.users_from_params([{"name": "chat", "password": "p", "redis_acl": ["get", "blpop"]}])
    assert user.acl == ["get", "blpop"] and r.must_deny(user.acl) == ["script", "pubsub"]


def test_scrub_masks_longest_secret_first():
    assert scrub("pw=abcdef and abc", ["abc", "abcdef", None, ""]) == "pw=******** and ********"


def test_redis_connect_builds_a_fail_fast_client():
    client = r.redis_connect("127.0.0.1", 6390, "u", "p", 1.5)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["username"] == "u" and kwargs["socket_timeout"] == 1.5
    assert kwargs["retry"].get_retries() == 0
    assert kwargs["driver_info"] is None
    client.close()
