# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of a Neo4j server over Bolt with the official driver, as evidence records.

The driver is imported inside the functions that use it, so that the module can report a
missing library through ``missing_required_lib`` instead of an import error.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record, scrub, stopwatch

try:
    import neo4j  # noqa: F401  # pylint: disable=unused-import

    HAS_NEO4J = True
    NEO4J_IMPORT_ERROR: str | None = None
except ImportError as _exc:
    HAS_NEO4J = False
    NEO4J_IMPORT_ERROR = str(_exc)

# Label of the probe nodes; the check deletes what it wrote.
PROBE_LABEL = "MlstackCheck"


def _driver(uri: str, auth: tuple[str, str] | None, timeout: float) -> Any:
    import neo4j

    return neo4j.GraphDatabase.driver(uri, auth=auth, connection_timeout=timeout,
                                      max_connection_lifetime=60, connection_acquisition_timeout=timeout)


def _refused(make: Callable[..., Any], uri: str, auth: tuple[str, str] | None, timeout: float) -> tuple[bool, str]:
    """(refused, server's answer): True only for an authentication error, not for any failure."""
    import neo4j.exceptions

    try:
        with make(uri, auth, timeout) as driver:
            driver.verify_connectivity()
    except neo4j.exceptions.AuthError as exc:
        return True, f"{type(exc).__name__}: {exc.message or exc}"
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # A network error is not a refusal: the check must not pass because the server is down.
        return False, f"{type(exc).__name__}: {exc}"
    return False, "the server accepted the connection"


def check_neo4j(
    unit: str,
    uri: str,
    user: str,
    password: str,
    timeout: float = 10.0,
    driver_factory: Callable[[str, tuple[str, str] | None, float], Any] | None = None,
) -> list[dict[str, Any]]:
    """Records ``connect``, ``auth_required``, ``wrong_password_rejected``, ``write_read``."""
    make = driver_factory or _driver
    hide = [password]
    records: list[dict[str, Any]] = []
    try:
        with stopwatch() as took, make(uri, (user, password), timeout) as driver:
            info = driver.get_server_info()
            rows = driver.execute_query(
                "CALL dbms.components() YIELD name, versions, edition RETURN name, versions[0] AS version, edition",
                database_="system",
            ).records
        component = rows[0] if rows else {}
        records.append(record(unit, "connect", True, {
            "uri": uri, "user": user, "latency_ms": took["ms"],
            "bolt_protocol": ".".join(str(v) for v in info.protocol_version),
            "agent": info.agent, "neo4j_version": component.get("version"),
            "edition": component.get("edition"),
        }, f"Bolt {'.'.join(str(v) for v in info.protocol_version)} to {info.agent}"))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        records.append(record(unit, "connect", False, {"uri": uri, "user": user},
                              scrub(f"{type(exc).__name__}: {exc}", hide)))
        return records

    refused, answer = _refused(make, uri, None, timeout)
    records.append(record(unit, "auth_required", refused, {"refused": refused}, scrub(answer, hide)))
    wrong = password + "-wrong-" + secrets.token_hex(4)
    refused, answer = _refused(make, uri, (user, wrong), timeout)
    records.append(record(unit, "wrong_password_rejected", refused, {"user": user, "rejected": refused},
                          scrub(answer, hide + [wrong])))

    token = secrets.token_hex(8)
    try:
        with stopwatch() as took, make(uri, (user, password), timeout) as driver:
            driver.execute_query(f"CREATE (n:{PROBE_LABEL} {{token: $token}})", token=token, database_="neo4j")
            found = driver.execute_query(
                f"MATCH (n:{PROBE_LABEL} {{token: $token}}) RETURN n.token AS token", token=token,
                database_="neo4j").records
            deleted = driver.execute_query(
                f"MATCH (n:{PROBE_LABEL} {{token: $token}}) DELETE n RETURN count(*) AS deleted", token=token,
                database_="neo4j").records
        matches = len(found) == 1 and found[0]["token"] == token
        gone = bool(deleted) and deleted[0]["deleted"] == 1
        records.append(record(unit, "write_read", matches and gone, {
            "database": "neo4j", "written": True, "read_matches": matches, "deleted": gone,
            "latency_ms": took["ms"]}, "a probe node was created, read back and deleted"))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        records.append(record(unit, "write_read", False, {"database": "neo4j"},
                              scrub(f"{type(exc).__name__}: {exc}", hide)))
    return records


# --- the password, rotated live -----------------------------------------------------------

RATE_LIMIT_CODE = "Neo.ClientError.Security.AuthenticationRateLimit"
# dbms.security.auth_lock_time: after three refused logins in a row Neo4j refuses even the
# right password for this long.
AUTH_LOCK_S = 5.0
SET_PASSWORD = "ALTER CURRENT USER SET PASSWORD FROM $former TO $new"


class PasswordError(Exception):
    """The password could not be set; the message has no secret in it."""


def _login(make: Callable[..., Any], uri: str, auth: tuple[str, str], timeout: float,
           sleep: Callable[[float], None]) -> Any:
    """An open driver that logged in with ``auth``; AuthError when refused.

    A login refused because earlier ones were (Neo4j's lock after three refused logins in a
    row) is tried once more after the lock time: it says nothing about this password.
    """
    import neo4j.exceptions

    for attempt in (1, 2):
        driver = make(uri, auth, timeout)
        try:
            driver.verify_connectivity()
            return driver
        except neo4j.exceptions.ClientError as exc:
            driver.close()
            if getattr(exc, "code", None) != RATE_LIMIT_CODE or attempt == 2:
                raise
            sleep(AUTH_LOCK_S + 0.5)
        except BaseException:
            driver.close()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def set_password(
    uri: str,
    user: str,
    password: str,
    previous: str,
    timeout: float = 10.0,
    check_mode: bool = False,
    driver_factory: Callable[[str, tuple[str, str] | None, float], Any] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Give ``user`` the password ``password`` in place of ``previous``, live.

    Logs in with the former password first (the server has it until the change, so a first
    run has no refused login to count towards Neo4j's lock), then runs ``ALTER CURRENT USER
    SET PASSWORD FROM .. TO ..`` on the system database, the passwords as parameters. When
    the former one is refused and the new one accepted, the change was made already (a
    re-run): nothing to do. Connections already open stay logged in; new ones need the new
    password. Returns ``changed`` and ``msg``; raises :class:`PasswordError`.
    """
    import neo4j.exceptions

    make = driver_factory or _driver
    wait = sleep or time.sleep
    hide = [password, previous]
    refused: list[str] = []
    for which, candidate in (("former", previous), ("new", password)):
        try:
            driver = _login(make, uri, (user, candidate), timeout, wait)
        except neo4j.exceptions.AuthError as exc:
            refused.append(f"{which}: {scrub(exc.message or str(exc), hide)}")
            continue
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise PasswordError(scrub(f"{user} could not log in: {type(exc).__name__}: {exc}", hide)) from None
        try:
            if which == "new":
                return {"changed": False, "msg": f"{user} has its new password already (the former one is refused)"}
            if not check_mode:
                with driver.session(database="system") as session:
                    session.run(SET_PASSWORD, former=previous, new=password).consume()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise PasswordError(scrub(f"setting {user}'s password failed: {type(exc).__name__}: {exc}",
                                      hide)) from None
        finally:
            driver.close()
        return {"changed": True, "msg": f"{user}'s password {'would be' if check_mode else 'was'} changed "
                                        "(open connections stay logged in)"}
    raise PasswordError(f"{user} was refused with the former and with the new password ({'; '.join(refused)})")
