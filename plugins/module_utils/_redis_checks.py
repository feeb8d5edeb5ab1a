# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis connectivity and authentication probes: one evidence record per check (and per user).

:func:`check_redis` connects through the seam of :mod:`._redis` as the admin and as each
service user, and proves that authentication is required, that a wrong password is
rejected, that AOF persistence is on, and that each user keeps to its own key prefix and
is refused scripts, blocking commands and pub/sub unless its permission grants them.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import Probe, stopwatch
from ansible_collections.aiops.mlstack.plugins.module_utils._redis import (
    Connect,
    RedisUser,
    close_quietly,
    describe_error,
    is_auth_refusal,
    is_command_refusal,
    is_no_permission,
    is_wrong_password,
    redis_connect,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._redis_acl import grants, uses

PROBE_KEY = "mlstack-check"
NOBODY_PREFIX = "mlstack-foreign:"

# Commands no service user should run unless its permission names them, each probed in a way
# that harms nothing if it is wrongly allowed: a script that returns at once, a BLPOP that
# waits 10 ms, a SUBSCRIBE on a connection that is closed right after.
RISKY_PROBES = (("script", "EVAL"), ("blocking", "BLPOP"), ("pubsub", "SUBSCRIBE"))


def must_deny(acl: Any) -> list[str]:
    """The probes a user with permission ``acl`` must be refused: always a script, blocking and
    pub/sub unless the permission grants them."""
    granted = uses(acl)
    return [probe for probe, _command in RISKY_PROBES if not granted.get(probe, False)]


def foreign_prefix(user: RedisUser, users: Sequence[RedisUser]) -> str:
    """Another user's prefix (the next one in the list), else a prefix that is nobody's."""
    index = users.index(user)
    for other in list(users[index + 1 :]) + list(users[:index]):
        if other.prefix and other.prefix != user.prefix:
            return other.prefix
    return NOBODY_PREFIX


# --- the probes ----------------------------------------------------------------------


class _Probe(Probe):
    def err(self, exc: BaseException) -> str:
        return describe_error(exc, self.secrets)

    def client(self, username: str | None, password: str | None) -> Any:
        return self.connect(self.host, self.port, username, password, self.timeout)

    # (a) admin AUTH + PING, latency and version
    def check_connect(self, admin_user: str, admin_password: str) -> Any:
        observed: dict[str, Any] = {"user": admin_user, "host": self.host, "port": self.port}
        client = None
        try:
            with stopwatch() as took:
                client = self.client(admin_user, admin_password)
                client.ping()
            observed["latency_ms"] = took["ms"]
            observed["redis_version"] = str(client.info("server").get("redis_version", "unknown"))
        except Exception as exc:  # every failure becomes evidence
            if client is not None:
                close_quietly(client)
            self.add("connect", False, observed, f"user {admin_user} could not AUTH and PING: {self.err(exc)}")
            return None
        self.add("connect", True, observed, f"user {admin_user} authenticated and PING was answered")
        return client

    # (b) no credentials: the server must refuse commands
    def check_auth_required(self) -> None:
        client = None
        try:
            client = self.client(None, None)
            client.ping()
        except Exception as exc:
            refused = is_auth_refusal(exc)
            self.add(
                "auth_required",
                refused,
                {"refused": refused},
                f"unauthenticated PING refused: {self.err(exc)}"
                if refused
                else f"unauthenticated PING failed for another reason than auth: {self.err(exc)}",
            )
            return
        finally:
            if client is not None:
                close_quietly(client)
        self.add(
            "auth_required", False, {"refused": False}, "an unauthenticated PING was answered: the default user is open"
        )

    # (c) admin with a wrong password must get WRONGPASS
    def check_wrong_password(self, admin_user: str, admin_password: str) -> None:
        wrong = secrets.token_hex(16)
        while wrong == admin_password:  # pragma: no cover - 128 random bits
            wrong = secrets.token_hex(16)
        self.secrets.append(wrong)
        client = None
        try:
            client = self.client(admin_user, wrong)
            client.ping()
        except Exception as exc:
            rejected = is_wrong_password(exc)
            self.add(
                "wrong_password_rejected",
                rejected,
                {"user": admin_user, "rejected": rejected},
                f"AUTH with a wrong password rejected: {self.err(exc)}"
                if rejected
                else f"AUTH with a wrong password failed without WRONGPASS: {self.err(exc)}",
            )
            return
        finally:
            if client is not None:
                close_quietly(client)
        self.add(
            "wrong_password_rejected",
            False,
            {"user": admin_user, "rejected": False},
            f"admin {admin_user} was accepted with a wrong password",
        )

    # (e) persistence: AOF on, read with INFO (CONFIG GET is often forbidden)
    def check_persistence(self, admin: Any, admin_user: str) -> None:
        if admin is None:
            self.add("persistence", False, {}, f"not checked: admin {admin_user} could not connect")
            return
        try:
            info = admin.info("persistence")
        except Exception as exc:
            self.add("persistence", False, {}, f"INFO persistence failed: {self.err(exc)}")
            return
        aof = info.get("aof_enabled")
        try:
            aof_enabled = int(aof)
        except (TypeError, ValueError):
            aof_enabled = None
        observed: dict[str, Any] = {"aof_enabled": aof_enabled}
        if "aof_last_write_status" in info:
            observed["aof_last_write_status"] = str(info["aof_last_write_status"])
        ok = aof_enabled == 1
        self.add(
            "persistence",
            ok,
            observed,
            "append-only file is enabled" if ok else f"append-only file is not enabled (aof_enabled={aof!r})",
        )

    # (d) per service user: its own prefix works, a foreign one is denied
    def check_user(self, user: RedisUser, users: Sequence[RedisUser]) -> None:
        key = f"{user.prefix}{PROBE_KEY}"
        observed: dict[str, Any] = {"user": user.name, "key": key}
        client = None
        try:
            client = self.client(user.name, user.password)
        except Exception as exc:
            self.add("own_prefix_access", False, observed, f"user {user.name} could not connect: {self.err(exc)}")
            for check in ("foreign_prefix_denied", "risky_commands_denied"):
                self.add(check, False, {"user": user.name}, f"not checked: user {user.name} could not connect")
            return
        try:
            self._own_prefix(client, user, key, observed)
            self._foreign_prefix(client, user, users)
            # last: a SUBSCRIBE wrongly allowed leaves the connection in subscriber mode
            self._risky_commands(client, user)
        finally:
            close_quietly(client)

    # (f) per service user: a script, a blocking command and a subscription are refused (NOPERM)
    def _risky_commands(self, client: Any, user: RedisUser) -> None:
        # Key and channel under the user's own prefix: a refusal is then about the command,
        # never about the key pattern.
        key = f"{user.prefix}{PROBE_KEY}"
        expected = must_deny(user.acl)
        calls: dict[str, Callable[[], Any]] = {
            "script": lambda: client.eval("return 1", 0),
            "blocking": lambda: client.blpop([key], timeout=0.01),
            "pubsub": lambda: client.execute_command("SUBSCRIBE", key),
        }
        observed: dict[str, Any] = {"user": user.name, "must_deny": expected}
        problems: list[str] = []
        errors: list[str] = []
        for probe, command in RISKY_PROBES:
            try:
                calls[probe]()
                observed[f"{probe}_denied"] = False
                if probe in expected:
                    problems.append(f"{command} was allowed")
            except Exception as exc:
                observed[f"{probe}_denied"] = is_command_refusal(exc)
                errors.append(f"{command}: {self.err(exc)}")
                if probe in expected and not observed[f"{probe}_denied"]:
                    problems.append(f"{command} failed, but not with NOPERM for the command")
        denied = [c for p, c in RISKY_PROBES if p in expected]
        detail = "; ".join(errors)
        self.add(
            "risky_commands_denied",
            not problems,
            observed,
            f"user {user.name} is refused {', '.join(denied)}: {detail}"
            if not problems
            else f"user {user.name}: {'; '.join(problems)}" + (f" ({detail})" if detail else ""),
        )

    def _own_prefix(self, client: Any, user: RedisUser, key: str, observed: dict[str, Any]) -> None:
        # A user whose permission has no SET/GET/DEL (chat's lists only) proves its key pattern
        # with EXISTS, which every service user may run (the service contract's /ready probe).
        if not all(grants(user.acl, c) for c in ("set", "get", "del")):
            self._own_prefix_read(client, user, key, observed)
            return
        value = secrets.token_hex(8)
        try:
            observed["set"] = bool(client.set(key, value, ex=60))
            read = client.get(key)
            observed["get_matches"] = read == value
            observed["deleted"] = int(client.delete(key)) == 1
        except Exception as exc:
            self.add("own_prefix_access", False, observed, f"user {user.name} on {key}: {self.err(exc)}")
            return
        ok = observed["set"] and observed["get_matches"] and observed["deleted"]
        self.add(
            "own_prefix_access",
            ok,
            observed,
            f"user {user.name} can SET, GET and DEL {key}"
            if ok
            else f"user {user.name} on {key}: SET/GET/DEL did not round-trip",
        )

    def _own_prefix_read(self, client: Any, user: RedisUser, key: str, observed: dict[str, Any]) -> None:
        try:
            observed["exists"] = int(client.exists(key))
        except Exception as exc:
            self.add("own_prefix_access", False, observed, f"user {user.name}: EXISTS {key}: {self.err(exc)}")
            return
        self.add("own_prefix_access", True, observed,
                 f"user {user.name} may read {key} (EXISTS; its permission has no SET/GET/DEL to write a probe)")

    def _foreign_prefix(self, client: Any, user: RedisUser, users: Sequence[RedisUser]) -> None:
        prefix = foreign_prefix(user, users)
        key = f"{prefix}{PROBE_KEY}"
        observed: dict[str, Any] = {"user": user.name, "foreign_prefix": prefix}
        problems: list[str] = []
        errors: list[str] = []
        # EXISTS, which every service user may run: its refusal is about the key, not the command.
        try:
            client.exists(key)
            observed["read_denied"] = False
            problems.append(f"EXISTS {key} was allowed")
        except Exception as exc:
            observed["read_denied"] = is_no_permission(exc)
            errors.append(f"EXISTS: {self.err(exc)}")
            if not observed["read_denied"]:
                problems.append(f"EXISTS {key} failed without NOPERM")
        try:
            written = client.set(key, "mlstack-foreign-probe", ex=60)
            observed["write_denied"] = False
            problems.append(f"SET {key} was allowed")
            if written:
                with contextlib.suppress(Exception):  # undo a write that should not have worked
                    client.delete(key)
        except Exception as exc:
            observed["write_denied"] = is_no_permission(exc)
            errors.append(f"SET: {self.err(exc)}")
            if not observed["write_denied"]:
                problems.append(f"SET {key} failed without NOPERM")
        ok = not problems
        detail = "; ".join(errors)
        self.add(
            "foreign_prefix_denied",
            ok,
            observed,
            f"user {user.name} is denied {prefix}*: {detail}"
            if ok
            else f"user {user.name} on {prefix}*: {'; '.join(problems)}" + (f" ({detail})" if detail else ""),
        )


def check_redis(
    unit: str,
    host: str,
    port: int,
    admin_user: str,
    admin_password: str,
    users: Sequence[RedisUser] = (),
    timeout: float = 5.0,
    connect: Connect | None = None,
) -> list[dict[str, Any]]:
    """Run every Redis probe and return one evidence record per check (and per user).

    Checks: ``connect``, ``auth_required``, ``wrong_password_rejected``, ``persistence``,
    then ``own_prefix_access``, ``foreign_prefix_denied`` and ``risky_commands_denied`` for each
    user (observed ``user`` names it). Writes go only to ``<prefix>mlstack-check`` keys, which expire
    after 60 s and are deleted at once.
    """
    users = list(users)
    secret_values = [admin_password] + [u.password for u in users]
    probe = _Probe(unit, host, port, timeout, connect or redis_connect, secret_values)
    admin = probe.check_connect(admin_user, admin_password)
    try:
        probe.check_auth_required()
        probe.check_wrong_password(admin_user, admin_password)
        probe.check_persistence(admin, admin_user)
        for user in users:
            probe.check_user(user, users)
    finally:
        if admin is not None:
            close_quietly(admin)
    return probe.records
