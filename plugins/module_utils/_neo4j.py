# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of a Neo4j server over Bolt with the official driver, as evidence records.

The driver is imported inside the functions that use it, so that the module can report a
missing library through ``missing_required_lib`` instead of an import error.
"""

from __future__ import annotations

import secrets
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
