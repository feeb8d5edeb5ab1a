# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis: the connection seam, service users and the server's error codes.

The probes (:mod:`._redis_checks`) go through a ``connect(host, port, username, password,
timeout)`` factory that returns a client with redis-py's ``ping``/``info``/``set``/``get``/
``delete``/``close`` methods. The module passes :func:`redis_connect` (redis-py); unit tests
pass a fake that raises redis-py's own exception classes. Errors are classified by their
Redis error code (``NOAUTH``, ``WRONGPASS``, ``NOPERM``) and class name, so this file
imports only the standard library until the real factory is called.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import scrub
from ansible_collections.aiops.mlstack.plugins.module_utils._redis_acl import permission_errors

try:
    import redis  # noqa: F401  # pylint: disable=unused-import

    HAS_REDIS = True
    REDIS_IMPORT_ERROR: str | None = None
except ImportError as _exc:  # pragma: no cover - depends on the target's Python
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = str(_exc)

Connect = Callable[[str, int, "str | None", "str | None", float], Any]

NAME_RE = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class RedisUser:
    """One service user: ACL user name, its password and the key prefix it owns."""

    name: str
    password: str
    prefix: str
    # The service's mlstack_redis_acl (None: the default profile): whether it may block or subscribe.
    acl: Any = None


def validate_users(users: Sequence[dict[str, Any]], field: str = "users") -> list[str]:
    """Error messages for bad service users (name pattern, duplicates, empty prefix)."""
    errors: list[str] = []
    seen: set[str] = set()
    for index, user in enumerate(users):
        name = user.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors.append(
                f"{field}[{index}].name: {name!r} is not a valid user name; "
                "use lower-case letters, digits and underscore"
            )
        elif name in seen:
            errors.append(f"{field}[{index}].name: {name!r} appears more than once")
        else:
            seen.add(name)
        if user.get("prefix") is not None and not str(user.get("prefix")):
            errors.append(f"{field}[{index}].prefix: must not be empty (a user needs a key prefix of its own)")
        errors.extend(f"{field}[{index}].redis_acl: {e}" for e in permission_errors(str(name), user.get("redis_acl")))
    return errors


def users_from_params(users: Sequence[dict[str, Any]] | None) -> list[RedisUser]:
    """Module parameters to :class:`RedisUser`; the prefix defaults to ``<name>:``."""
    return [RedisUser(u["name"], u["password"], u.get("prefix") or f"{u['name']}:", u.get("redis_acl"))
            for u in users or []]


# --- the I/O seam ----------------------------------------------------------------------


def redis_connect(host: str, port: int, username: str | None, password: str | None, timeout: float) -> Any:
    """The real seam: a redis-py client that fails fast (no retries, no client-info calls)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host=host,
        port=port,
        username=username,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        protocol=2,
        retry=Retry(NoBackoff(), 0),
        driver_info=None,  # no CLIENT SETINFO: one round trip less, nothing an ACL could refuse
    )


def close_quietly(client: Any) -> None:
    with contextlib.suppress(Exception):  # closing is best effort
        client.close()


# --- error classification (pure) -------------------------------------------------------


def error_code(exc: BaseException) -> str:
    """The Redis error code of a server error (redis-py strips it into ``status_code``)."""
    code = getattr(exc, "status_code", None)
    if code:
        return str(code).upper()
    first = str(exc).split(" ", 1)[0]
    return first if first.isupper() and first.isalpha() else ""


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def describe_error(exc: BaseException, secret_values: Sequence[str | None]) -> str:
    """``Class: CODE text`` with every secret masked, for messages in the evidence."""
    text = str(exc)
    code = error_code(exc)
    if code and not text.startswith(code):
        text = f"{code} {text}"
    return scrub(f"{type(exc).__name__}: {text}", list(secret_values))


def is_auth_refusal(exc: BaseException) -> bool:
    """The server refused an unauthenticated or badly authenticated client."""
    if error_code(exc) in ("NOAUTH", "WRONGPASS"):
        return True
    text = str(exc).lower()
    if "authentication required" in text or "invalid username-password pair" in text:
        return True
    if "user is disabled" in text or "invalid password" in text:
        return True
    return "AuthenticationError" in _class_names(exc)


def is_wrong_password(exc: BaseException) -> bool:
    """AUTH with a wrong password: ``WRONGPASS invalid username-password pair``."""
    if error_code(exc) == "WRONGPASS":
        return True
    text = str(exc).lower()
    return "invalid username-password pair" in text or "invalid password" in text


def is_no_permission(exc: BaseException) -> bool:
    """An ACL denial: ``NOPERM this user has no permissions to access one of the keys``."""
    if error_code(exc) == "NOPERM" or "NoPermissionError" in _class_names(exc):
        return True
    return "no permissions" in str(exc).lower()


def is_command_refusal(exc: BaseException) -> bool:
    """An ACL denial of the command itself (``NOPERM ... no permissions to run the 'eval' command``),
    not of a key or channel it names: only that proves the command is not granted."""
    return is_no_permission(exc) and "no permissions to run" in str(exc).lower()
