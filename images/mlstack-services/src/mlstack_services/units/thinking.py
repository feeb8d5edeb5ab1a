"""sequential-thinking: stepwise thought sessions, numbered, revisable and branching, in PostgreSQL.

A session holds numbered thoughts. A thought may revise an earlier one (``revises``: its
number) or open a branch (``branch`` with ``branch_from``: the number it branches off);
later thoughts on a branch name it. ``POST .../next`` asks the llm unit to propose the
next thought of a branch from the thoughts so far, and stores it as the llm's.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..auth import require_scope
from ..errors import ServiceError
from ..llm import LlmClient, UpstreamError
from ..metrics import Registry
from ..openapi import answers
from ..pg import PgDatabase, PgError
from ..requests import StoredText, require_json
from ..settings import Settings
from ..unit import Unit

SCHEMA = """
CREATE TABLE IF NOT EXISTS thinking_sessions (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS thoughts (
    session_id TEXT NOT NULL REFERENCES thinking_sessions (id), number INT NOT NULL,
    branch TEXT NOT NULL, content TEXT NOT NULL, revises INT, branch_from INT, source TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (session_id, number));
"""
MAIN = "main"
BRANCH_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


@dataclass(frozen=True)
class Thought:
    number: int
    branch: str
    content: str
    revises: int | None = None
    branch_from: int | None = None
    source: str = "client"


class ThoughtRequest(BaseModel):
    content: StoredText = Field(min_length=1, max_length=4000)
    revises: int | None = Field(default=None, ge=1)
    branch: str = Field(default=MAIN, pattern=BRANCH_PATTERN)
    branch_from: int | None = Field(default=None, ge=1)


class SessionRequest(BaseModel):
    title: StoredText = Field(default="", max_length=200)


class NextRequest(BaseModel):
    branch: str = Field(default=MAIN, pattern=BRANCH_PATTERN)


# The answers' shapes, for the OpenAPI document only (the routes return plain dicts).
class ThoughtOut(BaseModel):
    number: int
    branch: str
    content: str
    revises: int | None
    branch_from: int | None
    source: str


class SessionOut(BaseModel):
    id: str
    title: str
    thoughts: list[ThoughtOut]
    branches: dict[str, list[int]] | None = Field(default=None, description="GET: each branch's line of thoughts")


SESSION = {"model": SessionOut, "description": "The session."}
THOUGHT = {"model": ThoughtOut, "description": "The thought as stored."}


def next_thought(existing: list[Thought], request: ThoughtRequest, source: str = "client") -> Thought:
    """The thought to store, numbered after the others; a 422 naming the field when it does not fit."""
    numbers = {t.number for t in existing}
    branches = {t.branch for t in existing} | {MAIN}
    if request.revises is not None and request.revises not in numbers:
        raise ServiceError(422, f"revises={request.revises}: no thought with that number in this session "
                                f"(thoughts: {sorted(numbers) or 'none yet'})")
    if request.branch_from is not None:
        if request.branch == MAIN:
            raise ServiceError(422, "branch_from needs a branch name other than 'main' for the new branch")
        if request.branch in branches:
            raise ServiceError(422, f"branch {request.branch!r} exists already: add to it without branch_from")
        if request.branch_from not in numbers:
            raise ServiceError(422, f"branch_from={request.branch_from}: no thought with that number to branch off")
    elif request.branch not in branches:
        raise ServiceError(422, f"branch {request.branch!r} does not exist: open it with branch_from=<thought number>")
    return Thought(number=max(numbers, default=0) + 1, branch=request.branch, content=request.content.strip(),
                   revises=request.revises, branch_from=request.branch_from, source=source)


def branch_line(existing: list[Thought], branch: str) -> list[Thought]:
    """The thoughts a branch stands on: its parent's line up to where it branched off, then its own."""
    own = [t for t in existing if t.branch == branch]
    if branch == MAIN or not own:
        return own
    start = own[0]
    parent = next((t for t in existing if t.number == start.branch_from), None)
    base = branch_line([t for t in existing if t.number <= (start.branch_from or 0)], parent.branch) if parent else []
    return base + own


class ThoughtStore(Protocol):
    async def create(self, session_id: str, title: str) -> None: ...
    async def load(self, session_id: str) -> tuple[str, list[Thought]] | None: ...
    async def add(self, session_id: str, thought: Thought) -> None: ...
    async def check(self) -> tuple[bool, str]: ...
    async def close(self) -> None: ...


class PgThoughts:
    def __init__(self, settings: Settings) -> None:
        self.db = PgDatabase(settings, SCHEMA)

    async def create(self, session_id: str, title: str) -> None:
        await self.db.execute("INSERT INTO thinking_sessions (id, title) VALUES (%s, %s)", (session_id, title))

    async def load(self, session_id: str) -> tuple[str, list[Thought]] | None:
        rows = await self.db.execute("SELECT title FROM thinking_sessions WHERE id = %s", (session_id,))
        if not rows:
            return None
        thoughts = await self.db.execute(
            "SELECT number, branch, content, revises, branch_from, source FROM thoughts "
            "WHERE session_id = %s ORDER BY number", (session_id,))
        return str(rows[0][0]), [Thought(*row) for row in thoughts]

    async def add(self, session_id: str, thought: Thought) -> None:
        await self.db.execute(
            "INSERT INTO thoughts (session_id, number, branch, content, revises, branch_from, source) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (session_id, thought.number, thought.branch, thought.content, thought.revises, thought.branch_from,
             thought.source))

    async def check(self) -> tuple[bool, str]:
        return await self.db.check()

    async def close(self) -> None:
        await self.db.close()


def build(settings: Settings, registry: Registry, store: ThoughtStore | None = None,
          llm_transport: httpx.AsyncBaseTransport | None = None) -> Unit:
    thoughts: ThoughtStore = store if store is not None else PgThoughts(settings)
    llm = LlmClient(settings.llm_url, settings.llm_timeout_s, llm_transport)
    added = registry.counter("mlstack_thinking_thoughts_total", "Thoughts stored, by source.", ("source",))
    router = APIRouter(prefix="/v1", tags=["sequential-thinking"])
    scope = Depends(require_scope("thinking:use"))

    async def session_or_404(session_id: str) -> tuple[str, list[Thought]]:
        if not session_id.isalnum() or len(session_id) > 64:
            raise ServiceError(422, "session id: letters and digits only, at most 64")
        try:
            found = await thoughts.load(session_id)
        except PgError as exc:
            raise ServiceError(503, f"thought store (PostgreSQL) unavailable: {exc}") from None
        if found is None:
            raise ServiceError(404, f"no thinking session {session_id}")
        return found

    async def store(session_id: str, thought: Thought) -> dict[str, Any]:
        try:
            await thoughts.add(session_id, thought)
        except PgError as exc:
            raise ServiceError(503, f"thought store (PostgreSQL) unavailable: {exc}") from None
        added.inc(source=thought.source)
        return asdict(thought)

    @router.post("/sessions", status_code=201, dependencies=[scope, Depends(require_json)],
                 responses=answers(created=SESSION))
    async def create_session(body: SessionRequest) -> dict[str, Any]:
        session_id = uuid.uuid4().hex
        try:
            await thoughts.create(session_id, body.title)
        except PgError as exc:
            raise ServiceError(503, f"thought store (PostgreSQL) unavailable: {exc}") from None
        return {"id": session_id, "title": body.title, "thoughts": []}

    @router.get("/sessions/{session_id}", dependencies=[scope], responses=answers(404, ok=SESSION))
    async def get_session(session_id: str) -> dict[str, Any]:
        title, existing = await session_or_404(session_id)
        branches = sorted({t.branch for t in existing} | {MAIN})
        return {"id": session_id, "title": title, "thoughts": [asdict(t) for t in existing],
                "branches": {b: [t.number for t in branch_line(existing, b)] for b in branches}}

    @router.post("/sessions/{session_id}/thoughts", status_code=201, dependencies=[scope, Depends(require_json)],
                 responses=answers(404, created=THOUGHT))
    async def add_thought(session_id: str, body: ThoughtRequest) -> dict[str, Any]:
        _title, existing = await session_or_404(session_id)
        return await store(session_id, next_thought(existing, body))

    @router.post("/sessions/{session_id}/next", status_code=201, dependencies=[scope, Depends(require_json)],
                 responses=answers(404, 502, 504, created=THOUGHT))
    async def propose(session_id: str, body: NextRequest) -> dict[str, Any]:
        title, existing = await session_or_404(session_id)
        if body.branch not in {t.branch for t in existing} | {MAIN}:
            raise ServiceError(422, f"branch {body.branch!r} does not exist")
        line = "\n".join(f"{t.number}. {t.content}" for t in branch_line(existing, body.branch))
        try:
            answer = await llm.complete({"model": settings.llm_model, "temperature": 0, "max_tokens": 64, "messages": [
                {"role": "system", "content": "Propose the next thought of this line of thinking, one sentence."},
                {"role": "user", "content": f"Topic: {title or 'untitled'}\nThoughts so far:\n{line or '(none)'}"}]})
        except UpstreamError as exc:
            raise ServiceError(exc.status, str(exc)) from None
        # NUL removed: PostgreSQL text cannot hold it (the llm's words are not the caller's input to refuse).
        text = str((answer["choices"][0].get("message") or {}).get("content") or "").replace("\x00", "").strip()
        if not text:
            raise ServiceError(502, "the llm unit proposed an empty thought")
        return await store(session_id, next_thought(existing, ThoughtRequest(content=text[:4000], branch=body.branch),
                                                    source="llm"))

    async def close() -> None:
        await llm.aclose()
        await thoughts.close()

    return Unit(name="sequential-thinking", router=router, checks={"postgresql": thoughts.check},
                optional_checks={"llm": llm.check} if settings.llm_url else {}, on_shutdown=[close])
