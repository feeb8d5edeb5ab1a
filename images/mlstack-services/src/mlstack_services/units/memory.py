"""memory: memories with embeddings (semantic search) and a graph of entities and relations.

Vectors in Qdrant (the server when QDRANT_URL is set, else qdrant-client's local mode on the
data volume); the graph in Neo4j (when NEO4J_URI is set, else FalkorDB embedded on the data
volume). Which backends serve is fixed by the configuration, never switched silently when one
is down: /ready then says which and why, and the endpoints that need it answer 503.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Response
from pydantic import AfterValidator, BaseModel, Field, field_validator

from ..auth import require_scope
from ..embeddings import Embedder
from ..embeddings import check as model_files_check
from ..errors import ServiceError
from ..memory_store import Graph, QdrantVectors, StoreError, graph_for
from ..metrics import Registry
from ..openapi import answers
from ..requests import NonBlank, StoredText, no_nul, require_json
from ..settings import Settings
from ..unit import Unit

USER_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
RELATION_PATTERN = r"^[A-Za-z][A-Za-z0-9_ -]{0,63}$"


def _name(value: str) -> str:
    value = " ".join(no_nul(value).split())
    if not value:
        raise ValueError("an entity name is blank")
    if len(value) > 200:
        raise ValueError("an entity name is longer than 200 characters")
    return value


class Relation(BaseModel):
    source: str
    type: str = Field(pattern=RELATION_PATTERN, description="e.g. 'works at', 'knows'")
    target: str

    @field_validator("source", "target")
    @classmethod
    def names(cls, value: str) -> str:
        return _name(value)


class MemoryRequest(BaseModel):
    text: Annotated[NonBlank, AfterValidator(no_nul)] = Field(min_length=1, max_length=4000)
    user: str | None = Field(default=None, pattern=USER_PATTERN)
    tags: list[StoredText] = Field(default_factory=list, max_length=16)
    entities: list[str] = Field(default_factory=list, max_length=32,
                                description="entities the memory mentions (linked in the graph)")
    relations: list[Relation] = Field(default_factory=list, max_length=32)


    @field_validator("entities")
    @classmethod
    def entity_names(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(_name(v) for v in values))

    @field_validator("tags")
    @classmethod
    def tag_values(cls, values: list[str]) -> list[str]:
        if any(not 1 <= len(v.strip()) <= 64 for v in values):
            raise ValueError("a tag is blank or longer than 64 characters")
        return [v.strip() for v in values]


class SearchRequest(BaseModel):
    query: NonBlank = Field(min_length=1, max_length=4000)
    user: str | None = Field(default=None, pattern=USER_PATTERN)
    limit: int = Field(default=5, ge=1, le=50)
    min_score: float = Field(default=-1.0, ge=-1.0, le=1.0)


# The answers' shapes, for the OpenAPI document only (the routes return plain dicts).
class Memory(BaseModel, extra="allow"):
    id: str
    text: str
    user: str | None
    tags: list[str]
    entities: list[str]
    created_at: float


class Stored(Memory):
    relations: list[dict[str, Any]]
    entities_linked: int
    backends: dict[str, str]


class Hit(Memory):
    score: float


class Hits(BaseModel):
    query: str
    backend: str
    hits: list[Hit]


def _memory_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ServiceError(422, f"memory id {value[:64]!r}: expected a UUID as returned by POST /v1/memories") from None


def build(settings: Settings, registry: Registry, embedder: Any = None, vectors: Any = None,
          graph: Graph | None = None) -> Unit:
    store = vectors if vectors is not None else QdrantVectors(settings)
    knowledge = graph if graph is not None else graph_for(settings)
    state: dict[str, Any] = {"embedder": embedder, "error": None}
    stored = registry.counter("mlstack_memory_stored_total", "Memories stored.")
    searched = registry.counter("mlstack_memory_searches_total", "Semantic searches, by outcome.", ("outcome",))
    failures = registry.counter("mlstack_memory_backend_failures_total", "Backend calls that failed, by backend.",
                                ("backend",))
    router = APIRouter(prefix="/v1", tags=["memory"])

    def model() -> Any:
        if state["embedder"] is None:
            raise ServiceError(503, f"embedding model unavailable: {state['error'] or 'still loading'}")
        return state["embedder"]

    async def embed(text: str) -> list[float]:
        vectors_ = await anyio.to_thread.run_sync(model().embed, [text])
        return [float(v) for v in vectors_[0]]

    def unavailable(kind: str, exc: StoreError) -> ServiceError:
        failures.inc(backend=kind)
        return ServiceError(503, f"{kind} store unavailable: {exc}")

    @router.post("/memories", status_code=201,
                 dependencies=[Depends(require_scope("memory:write")), Depends(require_json)],
                 responses=answers(created={"model": Stored, "description": "The memory as stored."}))
    async def remember(body: MemoryRequest) -> dict[str, Any]:
        vector = await embed(body.text)
        memory_id = str(uuid.uuid4())
        names = list(dict.fromkeys([*body.entities, *(n for r in body.relations for n in (r.source, r.target))]))
        relations: list[dict[str, Any]] = []
        # The graph first: if it is down nothing is stored, and a retry merges (MERGE is idempotent).
        try:
            for relation in body.relations:
                relations.append(await knowledge.relate(relation.source, relation.type, relation.target))
            linked = await knowledge.remember(memory_id, body.text, names) if names else 0
        except StoreError as exc:
            raise unavailable("graph", exc) from None
        payload = {"text": body.text, "user": body.user, "tags": body.tags, "entities": names,
                   "created_at": time.time()}
        try:
            await store.upsert(memory_id, vector, payload)
        except StoreError as exc:
            raise unavailable("vector", exc) from None
        stored.inc()
        return {"id": memory_id, **payload, "relations": relations, "entities_linked": linked,
                "backends": {"vector": store.kind, "graph": knowledge.kind}}

    @router.post("/memories/search", dependencies=[Depends(require_scope("memory:read")), Depends(require_json)],
                 responses=answers(ok={"model": Hits, "description": "The nearest memories, best first."}))
    async def search(body: SearchRequest) -> dict[str, Any]:
        vector = await embed(body.query)
        try:
            hits = await store.search(vector, body.limit, body.user)
        except StoreError as exc:
            searched.inc(outcome="error")
            raise unavailable("vector", exc) from None
        searched.inc(outcome="ok")
        return {"query": body.query, "backend": store.kind,
                "hits": [h for h in hits if h["score"] >= body.min_score]}

    @router.get("/memories/{memory_id}", dependencies=[Depends(require_scope("memory:read"))],
                responses=answers(404, ok={"model": Memory, "description": "The memory."}))
    async def recall(memory_id: str) -> dict[str, Any]:
        try:
            found = await store.get(_memory_id(memory_id))
        except StoreError as exc:
            raise unavailable("vector", exc) from None
        if found is None:
            raise ServiceError(404, f"no memory {memory_id}")
        return found

    @router.delete("/memories/{memory_id}", status_code=204, response_class=Response,
                   dependencies=[Depends(require_scope("memory:write"))], responses=answers(404))
    async def forget(memory_id: str) -> Response:
        point = _memory_id(memory_id)
        try:
            if await store.get(point) is None:
                raise ServiceError(404, f"no memory {memory_id}")
            await knowledge.forget(point)
            await store.delete(point)
        except StoreError as exc:
            raise unavailable("memory", exc) from None
        return Response(status_code=204)

    @router.post("/relations", status_code=201,
                 dependencies=[Depends(require_scope("memory:write")), Depends(require_json)])
    async def relate(body: Relation) -> dict[str, Any]:
        try:
            return await knowledge.relate(body.source, body.type, body.target)
        except StoreError as exc:
            raise unavailable("graph", exc) from None

    @router.get("/entities/{name}/neighbours", dependencies=[Depends(require_scope("memory:read"))],
                responses=answers(404))
    async def neighbours(name: str, depth: int = Query(default=1, ge=1, le=3),
                         limit: int = Query(default=50, ge=1, le=500)) -> dict[str, Any]:
        try:
            entity = _name(name)
        except ValueError as exc:
            raise ServiceError(422, f"name: {exc}") from None
        try:
            found = await knowledge.neighbours(entity, depth, limit)
        except StoreError as exc:
            raise unavailable("graph", exc) from None
        if found is None:
            raise ServiceError(404, f"no entity named {entity!r} in the graph")
        return {**found, "backend": knowledge.kind}

    async def start() -> None:
        if state["embedder"] is None:
            try:
                state["embedder"] = await anyio.to_thread.run_sync(Embedder, settings.embedding_model_dir)
            except Exception as exc:  # a missing model is a reason in /ready
                state["error"] = f"{type(exc).__name__}: {exc}"
        await store.start()
        await knowledge.start()

    async def model_check() -> tuple[bool, str]:
        if state["embedder"] is None:
            files_ok, files = model_files_check(settings.embedding_model_dir)
            return False, (state["error"] or "still loading") if files_ok else files
        return True, f"{state['embedder'].name} ({state['embedder'].dimension}-d, onnxruntime)"

    async def close() -> None:
        await store.close()
        await knowledge.close()

    return Unit(
        name="memory", router=router, admission={"/v1/memories": "embeddings", "/v1/memories/search": "embeddings"},
        checks={"embedding-model": model_check, "vector": store.check, "graph": knowledge.check},
        backends={"vector": store.backend, "graph": knowledge.backend},
        on_startup=[start], on_shutdown=[close],
    )
