"""chat transcripts in PostgreSQL (the unit's own database and role); the table is made if absent."""

from __future__ import annotations

import asyncio
from typing import Protocol

import psycopg

from .settings import Settings, read_secret

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


class TranscriptError(RuntimeError):
    pass


class PgTranscripts:
    """One connection, re-opened when it breaks; the password file is read at each connect."""

    def __init__(self, settings: Settings, connect_timeout_s: int = 3) -> None:
        self.settings, self.connect_timeout_s = settings, connect_timeout_s
        self._conn: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._schema_ready = False

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        s = self.settings
        password = read_secret(s.postgres_password_file)
        if password is None:
            raise TranscriptError(f"PostgreSQL password file {s.postgres_password_file} is not readable")
        if not (s.postgres_host and s.postgres_user and s.postgres_db):
            raise TranscriptError("POSTGRES_HOST, POSTGRES_USER and POSTGRES_DB must be set")
        self._conn = await psycopg.AsyncConnection.connect(
            host=s.postgres_host, port=s.postgres_port, user=s.postgres_user, dbname=s.postgres_db,
            password=password, connect_timeout=self.connect_timeout_s, autocommit=True,
            application_name=f"mlstack-{s.unit}",
        )
        return self._conn

    async def _execute(self, sql: str, rows: list[tuple[str, str, str]] | None = None) -> None:
        async with self._lock:
            try:
                conn = await self._connection()
                async with conn.cursor() as cur:
                    if rows is None:
                        await cur.execute(sql)
                    else:
                        await cur.executemany(sql, rows)
            except psycopg.Error as exc:
                if self._conn is not None and self._conn.broken:
                    await self._conn.close()
                    self._conn = None
                raise TranscriptError(f"{type(exc).__name__}: {str(exc).strip()}") from None

    async def ensure_schema(self) -> None:
        if not self._schema_ready:
            await self._execute(SCHEMA)
            self._schema_ready = True

    async def add(self, conversation_id: str, messages: list[dict[str, str]]) -> None:
        await self.ensure_schema()
        rows = [(conversation_id, m["role"], m["content"]) for m in messages]
        await self._execute("INSERT INTO transcripts (conversation_id, role, content) VALUES (%s, %s, %s)", rows)

    async def check(self) -> tuple[bool, str]:
        try:
            await self.ensure_schema()
            await self._execute("SELECT 1 FROM transcripts LIMIT 1")
        except TranscriptError as exc:
            return False, str(exc)
        s = self.settings
        return True, f"connected to {s.postgres_db} as {s.postgres_user}; transcripts table ready"

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
