# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Neo4j checks against a fake driver (FakeNeo4j): the real server is tested in tests/integration."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import neo4j.exceptions
import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _neo4j

PASSWORD = "neo4j-s3cret-value"


@dataclass
class _Info:
    protocol_version: tuple[int, int] = (5, 8)
    agent: str = "Neo4j/5.26.0"


@dataclass
class _Result:
    records: list[dict[str, Any]]


@dataclass
class FakeNeo4j:
    """A stand-in for a server: enforces the password unless ``open_door``, keeps nodes by token."""

    open_door: bool = False
    down: bool = False
    lose_writes: bool = False
    nodes: set[str] = field(default_factory=set)

    def driver(self, uri: str, auth: tuple[str, str] | None, timeout: float) -> Any:
        fake = self

        class _Driver:
            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: object) -> None:
                return None

            def _login(self) -> None:
                if fake.down:
                    raise neo4j.exceptions.ServiceUnavailable("Couldn't connect to " + uri)
                if not fake.open_door and auth != ("neo4j", PASSWORD):
                    raise neo4j.exceptions.AuthError("The client is unauthorized due to authentication failure.")

            def verify_connectivity(self) -> None:
                self._login()

            def get_server_info(self) -> _Info:
                self._login()
                return _Info()

            def execute_query(self, query: str, database_: str = "neo4j", **params: Any) -> _Result:
                self._login()
                token = params.get("token", "")
                if query.startswith("CALL dbms.components"):
                    return _Result([{"name": "Neo4j Kernel", "version": "5.26.0", "edition": "community"}])
                if query.startswith("CREATE"):
                    if not fake.lose_writes:
                        fake.nodes.add(token)
                    return _Result([])
                if "DELETE" in query:
                    present = token in fake.nodes
                    fake.nodes.discard(token)
                    return _Result([{"deleted": int(present)}])
                return _Result([{"token": token}] if token in fake.nodes else [])

        return _Driver()


def _run(fake: FakeNeo4j, password: str = PASSWORD) -> dict[str, dict[str, Any]]:
    records = _neo4j.check_neo4j("neo4j", "bolt://neo4j:7687", "neo4j", password, 1.0, driver_factory=fake.driver)
    assert PASSWORD not in json.dumps(records)
    return {r["check"]: r for r in records}


def test_all_checks_pass_against_a_server_that_enforces_auth() -> None:
    fake = FakeNeo4j()
    by = _run(fake)
    assert list(by) == ["connect", "auth_required", "wrong_password_rejected", "write_read"]
    assert all(r["ok"] for r in by.values())
    assert by["connect"]["observed"]["bolt_protocol"] == "5.8"
    assert by["connect"]["observed"]["neo4j_version"] == "5.26.0"
    assert fake.nodes == set(), "the probe node is deleted"


def test_a_server_without_auth_fails_both_auth_checks() -> None:
    by = _run(FakeNeo4j(open_door=True))
    assert not by["auth_required"]["ok"]
    assert not by["wrong_password_rejected"]["ok"]
    assert by["write_read"]["ok"]


def test_a_lost_write_fails_write_read() -> None:
    by = _run(FakeNeo4j(lose_writes=True))
    assert not by["write_read"]["ok"]
    assert by["write_read"]["observed"]["read_matches"] is False


@pytest.mark.parametrize("password", ["wrong-one", PASSWORD + "x"])
def test_a_wrong_password_stops_after_connect_without_leaking_it(password: str) -> None:
    records = _neo4j.check_neo4j("neo4j", "bolt://neo4j:7687", "neo4j", password, 1.0,
                                 driver_factory=FakeNeo4j().driver)
    assert [r["check"] for r in records] == ["connect"]
    assert not records[0]["ok"]
    assert password not in json.dumps(records)


def test_a_server_that_is_down_is_not_counted_as_refusing() -> None:
    fake = FakeNeo4j()
    assert _neo4j._refused(fake.driver, "bolt://x:1", None, 1.0)[0] is True
    fake.down = True
    refused, answer = _neo4j._refused(fake.driver, "bolt://x:1", None, 1.0)
    assert refused is False and "ServiceUnavailable" in answer


# --- set_password: the rotation of the neo4j user's password --------------------------------

FORMER = "neo4j-former-pw-0123456789"
NEW = "neo4j-new-pw-9876543210"


@dataclass
class PasswordServer:
    """One user, one password, Neo4j's lock after three refused logins in a row (5 s)."""

    password: str = FORMER
    refused_in_a_row: int = 0
    locked_until: float = 0.0
    now: float = 0.0
    logins: list[str] = field(default_factory=list)
    queries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    closed: int = 0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def driver(self, uri: str, auth: tuple[str, str] | None, timeout: float) -> Any:
        server = self

        class _Session:
            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: object) -> None:
                return None

            def run(self, query: str, **params: Any) -> Any:
                server.queries.append((query, params))
                if params["former"] != server.password:
                    raise neo4j.exceptions.ClientError("User failed to alter their own password: Invalid principal "
                                                       "or credentials.")
                server.password = params["new"]

                class _Summary:
                    def consume(self) -> None:
                        return None

                return _Summary()

        class _Driver:
            def verify_connectivity(self) -> None:
                server.logins.append(auth[1] if auth else "")
                if server.now < server.locked_until:
                    # What the driver builds from the server's FAILURE message.
                    raise neo4j.exceptions.Neo4jError._hydrate_neo4j(
                        code=_neo4j.RATE_LIMIT_CODE,
                        message="The client has provided incorrect authentication details too many times in a row.")
                if auth is None or auth[1] != server.password:
                    server.refused_in_a_row += 1
                    if server.refused_in_a_row >= 3:
                        server.locked_until = server.now + 5.0
                    raise neo4j.exceptions.AuthError("The client is unauthorized due to authentication failure.")
                server.refused_in_a_row = 0

            def session(self, database: str) -> Any:
                assert database == "system"
                return _Session()

            def close(self) -> None:
                server.closed += 1

        return _Driver()


def _set(server: PasswordServer, check_mode: bool = False, new: str = NEW, former: str = FORMER) -> dict[str, Any]:
    return _neo4j.set_password("bolt://10.0.0.9:7687", "neo4j", new, former, 2.0, check_mode,
                               driver_factory=server.driver, sleep=server.sleep)


def test_set_password_check_then_apply_then_again() -> None:
    server = PasswordServer()
    planned = _set(server, check_mode=True)
    assert planned["changed"] is True and server.password == FORMER and server.queries == []
    applied = _set(server)
    assert applied["changed"] is True and server.password == NEW
    # The passwords are parameters, never in the query text; the former one is tried first.
    assert server.queries == [(_neo4j.SET_PASSWORD, {"former": FORMER, "new": NEW})]
    assert server.logins == [FORMER, FORMER] and server.refused_in_a_row == 0
    # A re-run (the former password still on file): refused once, accepted with the new one.
    again = _set(server)
    assert again["changed"] is False and server.logins[-2:] == [FORMER, NEW]
    assert _set(server, check_mode=True)["changed"] is False
    assert server.closed == len(server.logins), "every driver is closed"
    for result in (planned, applied, again):
        assert FORMER not in json.dumps(result) and NEW not in json.dumps(result)


def test_set_password_waits_out_neo4j_s_lock_once() -> None:
    server = PasswordServer(refused_in_a_row=3, locked_until=5.0)
    assert _set(server)["changed"] is True and server.password == NEW
    assert server.now == pytest.approx(5.5) and server.logins == [FORMER, FORMER]


def test_set_password_refused_with_both_names_neither() -> None:
    server = PasswordServer(password="someone-else-set-this-one")
    with pytest.raises(_neo4j.PasswordError) as err:
        _set(server)
    text = str(err.value)
    assert text.startswith("neo4j was refused with the former and with the new password")
    assert FORMER not in text and NEW not in text and "someone-else" not in text


def test_set_password_down_server_is_not_a_refusal() -> None:
    def down(uri: str, auth: Any, timeout: float) -> Any:
        class _Driver:
            def verify_connectivity(self) -> None:
                raise neo4j.exceptions.ServiceUnavailable(f"Couldn't connect to 10.0.0.9:7687 as {auth[1]}")

            def close(self) -> None:
                return None

        return _Driver()

    with pytest.raises(_neo4j.PasswordError) as err:
        _neo4j.set_password("bolt://10.0.0.9:7687", "neo4j", NEW, FORMER, 2.0, driver_factory=down,
                            sleep=lambda s: None)
    assert "ServiceUnavailable" in str(err.value) and FORMER not in str(err.value)
