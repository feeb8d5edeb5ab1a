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
