"""chat transcripts in PostgreSQL (the unit's own database and role); the table is made if absent."""

from __future__ import annotations

from typing import Protocol

from .pg import PgDatabase, PgError
from .settings import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS transcripts (
    id BIGSERIAL PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS transcripts_conversation_idx ON transcripts (conversation_id, id);
"""


class TranscriptStore(Protocol):
    async def ensure_schema(self) -> None: ...
    async def add(self, conversation_id: str, messages: list[dict[str, str]]) -> None: ...
    async def check(self) -> tuple[bool, str]: ...
    async def close(self) -> None: ...


# A failed write or check says PostgreSQL's own words; chat reports it and answers anyway.
TranscriptError = PgError


class PgTranscripts:
    """chat's transcripts through the unit's one PostgreSQL connection (re-opened when it breaks)."""

    def __init__(self, settings: Settings, connect_timeout_s: int = 3) -> None:
        self.settings = settings
        self.db = PgDatabase(settings, SCHEMA, connect_timeout_s)

    async def ensure_schema(self) -> None:
        await self.db.execute("SELECT 1")

    async def add(self, conversation_id: str, messages: list[dict[str, str]]) -> None:
        if not messages:
            return
        values = ", ".join(["(%s, %s, %s)"] * len(messages))
        params = tuple(v for m in messages for v in (conversation_id, m["role"], m["content"]))
        await self.db.execute(f"INSERT INTO transcripts (conversation_id, role, content) VALUES {values}", params)

    async def check(self) -> tuple[bool, str]:
        try:
            await self.db.execute("SELECT 1 FROM transcripts LIMIT 1")
        except PgError as exc:
            return False, str(exc)
        s = self.settings
        return True, f"connected to {s.postgres_db} as {s.postgres_user}; transcripts table ready"

    async def close(self) -> None:
        await self.db.close()
