# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis: the service users, the server's error codes, the connect seam, and the in-memory fake
(it raises redis-py's own exceptions) that the probe and module tests run against (they load
this file by path)."""

from __future__ import annotations

import fnmatch
import json

import pytest
from redis.exceptions import AuthenticationError, ConnectionError, NoPermissionError, ResponseError

from ansible_collections.aiops.mlstack.plugins.module_utils import _redis as r
from ansible_collections.aiops.mlstack.plugins.module_utils import _redis_checks as checks
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
    return checks.check_redis("redis", "10.0.0.9", 6379, "admin", admin_password, users, 2.0, connect=server.connect)


def by_check(records, check, user=None):
    found = [x for x in records if x["check"] == check and (user is None or x["observed"].get("user") == user)]
    assert len(found) == 1, (check, user, records)
    return found[0]


def assert_no_secret(records):
    text = json.dumps(records)
    for secret in ALL_SECRETS:
        assert secret not in text


# --- the server's error codes, the users, the seam ------------------------------------------


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
    assert user.acl == ["get", "blpop"] and checks.must_deny(user.acl) == ["script", "pubsub"]


def test_scrub_masks_longest_secret_first():
    assert scrub("pw=abcdef and abc", ["abc", "abcdef", None, ""]) == "pw=******** and ********"


def test_redis_connect_builds_a_fail_fast_client():
    client = r.redis_connect("127.0.0.1", 6390, "u", "p", 1.5)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["username"] == "u" and kwargs["socket_timeout"] == 1.5
    assert kwargs["retry"].get_retries() == 0
    assert kwargs["driver_info"] is None
    client.close()
