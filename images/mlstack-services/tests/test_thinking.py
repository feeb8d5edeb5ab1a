"""sequential-thinking: numbering, revisions, branches, the llm's proposal; an in-memory store stands
in for PostgreSQL here (test_real_stores.py runs the PostgreSQL store against a real server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes import FakeLLM, serve
from fastapi.testclient import TestClient
from helpers import bearer
from mlstack_services.app import create_app
from mlstack_services.pg import PgError
from mlstack_services.settings import Settings
from mlstack_services.units import thinking
from mlstack_services.units.thinking import Thought, ThoughtRequest, branch_line, next_thought

Mint = Callable[..., str]


def _refuse_nul(text: str) -> None:
    """As psycopg does (test_real_stores.py checks it): PostgreSQL text cannot hold U+0000."""
    if "\x00" in text:
        raise PgError("DataError: PostgreSQL text fields cannot contain NUL (0x00) bytes")


class MemoryThoughts:
    """The store's contract in memory: sessions and thought rows, nothing decided here."""

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[str, list[Thought]]] = {}
        self.down = False

    def _up(self) -> None:
        if self.down:
            raise PgError("OperationalError: MemoryThoughts is down")

    async def create(self, session_id: str, title: str) -> None:
        self._up()
        _refuse_nul(title)
        self.sessions[session_id] = (title, [])

    async def load(self, session_id: str) -> tuple[str, list[Thought]] | None:
        self._up()
        found = self.sessions.get(session_id)
        return None if found is None else (found[0], list(found[1]))

    async def add(self, session_id: str, thought: Thought) -> None:
        self._up()
        _refuse_nul(thought.content)
        self.sessions[session_id][1].append(thought)

    async def check(self) -> tuple[bool, str]:
        return (not self.down, "MemoryThoughts " + ("down" if self.down else "ok"))

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def llm_url() -> Iterator[str]:
    with serve(FakeLLM().app) as url:
        yield url


@pytest.fixture
def store() -> MemoryThoughts:
    return MemoryThoughts()


@pytest.fixture
def client(settings_for: Callable[..., Settings], store: MemoryThoughts, llm_url: str) -> Iterator[TestClient]:
    settings = settings_for("sequential-thinking", LLM_URL=llm_url)
    with TestClient(create_app(settings, lambda s, r: thinking.build(s, r, store=store))) as c:
        yield c


@pytest.fixture
def auth(mint: Mint) -> dict[str, str]:
    return bearer(mint("thinking:use", audience="sequential-thinking"))


def add(client: TestClient, auth: dict[str, str], session: str, **body: Any) -> Any:
    return client.post(f"/v1/sessions/{session}/thoughts", json=body, headers=auth)


def test_numbered_thoughts_revisions_and_branches(client: TestClient, auth: dict[str, str]) -> None:
    session = client.post("/v1/sessions", json={"title": "plan a trip"}, headers=auth).json()["id"]
    assert add(client, auth, session, content="pick a city").json()["number"] == 1
    assert add(client, auth, session, content="Lisbon").json()["number"] == 2
    revised = add(client, auth, session, content="Porto, not Lisbon", revises=2).json()
    assert (revised["number"], revised["revises"], revised["branch"]) == (3, 2, "main")
    branch = add(client, auth, session, content="go by train", branch="train", branch_from=1).json()
    assert (branch["number"], branch["branch_from"]) == (4, 1)
    assert add(client, auth, session, content="book seats", branch="train").json()["number"] == 5
    body = client.get(f"/v1/sessions/{session}", headers=auth).json()
    assert [t["number"] for t in body["thoughts"]] == [1, 2, 3, 4, 5]
    assert body["branches"] == {"main": [1, 2, 3], "train": [1, 4, 5]}


@pytest.mark.parametrize(("body", "message"), [
    ({"content": "x", "revises": 9}, "revises=9: no thought with that number"),
    ({"content": "x", "branch": "alt"}, "branch 'alt' does not exist: open it with branch_from"),
    ({"content": "x", "branch": "alt", "branch_from": 7}, "branch_from=7: no thought with that number"),
    ({"content": "x", "branch_from": 1}, "branch_from needs a branch name other than 'main'"),
])
def test_impossible_thoughts_are_422_naming_the_field(client: TestClient, auth: dict[str, str],
                                                      body: dict[str, Any], message: str) -> None:
    session = client.post("/v1/sessions", json={}, headers=auth).json()["id"]
    add(client, auth, session, content="first")
    response = add(client, auth, session, **body)
    assert response.status_code == 422 and message in response.json()["error"]["message"]


@pytest.mark.parametrize("body", [{}, {"content": ""}, {"content": "x", "branch": "Bad Name"}, {"content": "x",
                                                                                                "revises": 0}])
def test_malformed_bodies_are_422(client: TestClient, auth: dict[str, str], body: dict[str, Any]) -> None:
    session = client.post("/v1/sessions", json={}, headers=auth).json()["id"]
    assert add(client, auth, session, **body).status_code == 422


def test_a_nul_character_is_422_not_a_store_failure(client: TestClient, auth: dict[str, str]) -> None:
    """PostgreSQL cannot store U+0000: it was a 503 'thought store unavailable' for bad input."""
    response = client.post("/v1/sessions", json={"title": "a\x00b"}, headers=auth)
    assert response.status_code == 422 and "NUL" in response.json()["error"]["message"], response.text
    session = client.post("/v1/sessions", json={}, headers=auth).json()["id"]
    response = add(client, auth, session, content="a\x00b")
    assert response.status_code == 422 and "content" in response.json()["error"]["message"], response.text


def test_unknown_session_is_404_and_a_bad_id_422(client: TestClient, auth: dict[str, str]) -> None:
    assert client.get("/v1/sessions/abc123", headers=auth).status_code == 404
    assert client.get("/v1/sessions/not-valid!", headers=auth).status_code == 422


def test_the_llm_proposes_the_next_thought_from_the_branch_line(client: TestClient, auth: dict[str, str]) -> None:
    session = client.post("/v1/sessions", json={"title": "sky"}, headers=auth).json()["id"]
    add(client, auth, session, content="light scatters")
    proposed = client.post(f"/v1/sessions/{session}/next", json={}, headers=auth)
    assert proposed.status_code == 201, proposed.text
    thought = proposed.json()
    assert (thought["number"], thought["source"]) == (2, "llm")
    assert "1. light scatters" in thought["content"]  # FakeLLM echoes what it was given


def test_store_down_is_503_and_ready_says_so(client: TestClient, auth: dict[str, str], store: MemoryThoughts) -> None:
    store.down = True
    assert client.post("/v1/sessions", json={}, headers=auth).status_code == 503
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["postgresql"]["ok"] is False
    store.down = False
    assert client.get("/ready").status_code == 200


def test_scope_is_required(client: TestClient, mint: Mint) -> None:
    token = mint("chat:complete", audience="sequential-thinking")
    assert client.post("/v1/sessions", json={}, headers=bearer(token)).status_code == 403


def test_branch_line_follows_nested_branches() -> None:
    existing = [Thought(1, "main", "a"), Thought(2, "main", "b"), Thought(3, "x", "c", branch_from=1),
                Thought(4, "y", "d", branch_from=3), Thought(5, "x", "e")]
    assert [t.number for t in branch_line(existing, "y")] == [1, 3, 4]
    assert [t.number for t in branch_line(existing, "x")] == [1, 3, 5]
    assert next_thought(existing, ThoughtRequest(content="f", branch="y")).number == 6
