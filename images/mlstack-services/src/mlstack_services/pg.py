"""One PostgreSQL connection of a unit (its own role and database), re-opened when it breaks.

The password file is read at each connect, so a rotated password is picked up without a
restart. Every failure is a PgError with PostgreSQL's own words.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from .settings import Settings, read_secret


class PgError(RuntimeError):
    pass


def _pg_error(exc: psycopg.Error) -> PgError:
    return PgError(f"{type(exc).__name__}: {str(exc).strip()}")


def _tls_params(s: Settings) -> dict[str, str]:
    """sslmode and sslrootcert, each only when set: unset, libpq's own defaults apply as before."""
    params = {"sslmode": s.postgres_sslmode, "sslrootcert": s.postgres_sslrootcert}
    return {key: value for key, value in params.items() if value}


class PgDatabase:
    def __init__(self, settings: Settings, schema: str, connect_timeout_s: int = 3,
                 rotation_wait_s: float = 2.5) -> None:
        self.settings, self.schema, self.connect_timeout_s = settings, schema, connect_timeout_s
        self.rotation_wait_s = rotation_wait_s
        self._conn: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._schema_ready = False

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        s = self.settings
        password = read_secret(s.postgres_password_file)
        if password is None:
            raise PgError(f"PostgreSQL password file {s.postgres_password_file} is not readable")
        if not (s.postgres_host and s.postgres_user and s.postgres_db):
            raise PgError("POSTGRES_HOST, POSTGRES_USER and POSTGRES_DB must be set")
        if s.postgres_sslrootcert and read_secret(s.postgres_sslrootcert) is None:
            raise PgError(f"POSTGRES_SSLROOTCERT {s.postgres_sslrootcert} is not readable")
        try:
            self._conn = await self._connect(password)
        except psycopg.OperationalError as exc:
            # During a password rotation the role has its new password a moment before this
            # unit's file does (rotate_passwords.yml): wait for the file, then try once more.
            newer = await self._next_password(password) if "password authentication failed" in str(exc) else None
            if newer is None:
                raise
            self._conn = await self._connect(newer)
        return self._conn

    async def _connect(self, password: str) -> psycopg.AsyncConnection:
        s = self.settings
        return await psycopg.AsyncConnection.connect(
            host=s.postgres_host, port=s.postgres_port, user=s.postgres_user, dbname=s.postgres_db,
            password=password, connect_timeout=self.connect_timeout_s, autocommit=True,
            application_name=f"mlstack-{s.unit}",
            # A server that went away with its address (its container replaced) answers nothing:
            # the socket fails within 2 s by itself instead of a query waiting to be cancelled,
            # which psycopg does by asking that same vanished server, for up to 10 s.
            tcp_user_timeout=2000, keepalives=1, keepalives_idle=10, keepalives_interval=2, keepalives_count=2,
            **_tls_params(s),
        )

    async def _next_password(self, refused: str) -> str | None:
        """The password file's new content, once it differs from ``refused``; None after the wait."""
        deadline = asyncio.get_running_loop().time() + self.rotation_wait_s
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            current = read_secret(self.settings.postgres_password_file)
            if current is not None and current != refused:
                return current
        return None

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Runs one statement (after the schema exists); returns its rows, if it has any."""
        if not self._schema_ready:
            await self._run(self.schema, ())
            self._schema_ready = True
        return await self._run(sql, params)

    async def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._lock:
            reused = self._conn is not None and not self._conn.closed
            try:
                return await self._statement(sql, params)
            except psycopg.Error as exc:
                lost = self._conn is not None and self._conn.broken
                await self._drop_broken()
                if not (reused and lost):
                    raise _pg_error(exc) from None
            # The kept session died (the server restarted or moved): once more on a new one.
            try:
                return await self._statement(sql, params)
            except psycopg.Error as exc:
                await self._drop_broken()
                raise _pg_error(exc) from None

    async def _statement(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = await self._connection()
        async with conn.cursor() as cur:
            await cur.execute(sql, params or None)
            return await cur.fetchall() if cur.description else []

    async def _drop_broken(self) -> None:
        if self._conn is not None and self._conn.broken:
            await self._conn.close()
            self._conn = None

    async def check(self) -> tuple[bool, str]:
        try:
            await self.execute("SELECT 1")
        except PgError as exc:
            return False, str(exc)
        return True, f"connected to {self.settings.postgres_db} as {self.settings.postgres_user}; schema ready"

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
