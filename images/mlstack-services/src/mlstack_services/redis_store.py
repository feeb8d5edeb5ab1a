"""Redis under the unit's own ACL user: every key under REDIS_PREFIX, every key with a TTL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.credentials import CredentialProvider
from redis.exceptions import AuthenticationError, NoPermissionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.maint_notifications import MaintNotificationsConfig

from .settings import Settings, read_secret


class RedisLike(Protocol):
    """The part of redis.asyncio.Redis the units use (a fake implements the same in tests)."""

    async def ping(self) -> Any: ...
    async def exists(self, *names: str) -> int: ...
    async def get(self, name: str) -> Any: ...
    async def set(self, name: str, value: str, ex: int | None = None) -> Any: ...
    async def rpush(self, name: str, *values: str) -> int: ...
    async def ltrim(self, name: str, start: int, end: int) -> Any: ...
    async def lrange(self, name: str, start: int, end: int) -> list[Any]: ...
    async def expire(self, name: str, time: int) -> Any: ...
    async def aclose(self) -> None: ...


class FileCredentials(CredentialProvider):
    """Reads the password file on every new connection, so a rotated password is picked up."""

    def __init__(self, user: str, password_file: str) -> None:
        self.user, self.password_file = user, password_file

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        password = read_secret(self.password_file)
        if password is None:
            raise AuthenticationError(f"Redis password file {self.password_file} is not readable")
        return (self.user, password) if self.user else (password,)

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        return self.get_credentials()


class CheckedSSLConnection(SSLConnection):
    """A TLS connection that names an unreadable CA file; redis-py would say only 'Error 2 connecting'."""

    def _connection_arguments(self) -> Mapping[str, Any]:
        ca_file = self.ca_certs
        if ca_file and read_secret(ca_file) is None:
            raise RedisConnectionError(f"REDIS_TLS_CA_FILE {ca_file} is not readable")
        return super()._connection_arguments()


def _tls(settings: Settings) -> dict[str, Any]:
    """redis-py's TLS options when REDIS_TLS is on: the server's certificate must chain to the
    stack's CA and name REDIS_HOST (a DNS name or an IP address SAN). Off: no option at all."""
    if not settings.redis_tls:
        return {}
    return {"ssl": True, "ssl_ca_certs": settings.redis_tls_ca_file, "ssl_cert_reqs": "required",
            "ssl_check_hostname": True}


def connect(settings: Settings) -> aioredis.Redis:
    """A lazy client: nothing is dialled until the first command, so a unit starts without Redis."""
    client = aioredis.Redis(
        host=settings.redis_host or "redis", port=settings.redis_port,
        credential_provider=FileCredentials(settings.redis_user, settings.redis_password_file),
        decode_responses=True, socket_connect_timeout=2, socket_timeout=5,
        # After Redis restarts (a redeploy or a rollback) every pooled connection is stale: the
        # first command on each must reconnect and retry, not fail the caller's request. The
        # asyncio client needs the asyncio Retry: the synchronous one never retries here.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3), health_check_interval=30,
        # The unit's ACL user may run only the commands it uses (roles/redis, mlstack_redis_acl):
        # HELLO/AUTH, then PING and its data commands. redis-py would also send CLIENT SETINFO and
        # CLIENT MAINT_NOTIFICATIONS on every connect, which such a user is refused (each refusal
        # an ACL LOG entry on Redis 7.2) and which Redis 7.0 does not know.
        driver_info=None, maint_notifications_config=MaintNotificationsConfig(enabled=False),
        **_tls(settings),
    )
    if settings.redis_tls:
        # The CA file is checked at each new connection, as the password file is: the unit starts
        # and /ready names the file, instead of the unit failing to start.
        client.connection_pool.connection_class = CheckedSSLConnection
    return client


async def check(client: RedisLike, prefix: str) -> tuple[bool, str]:
    """/ready: authenticated PING, then a read of a key under the prefix (proves the ACL key pattern)."""
    await client.ping()
    try:
        await client.exists(f"{prefix}ready-probe")
    except NoPermissionError:
        return False, f"NOPERM: this ACL user may not use keys under '{prefix}' (REDIS_PREFIX vs its ~pattern)"
    return True, f"PING ok; keys under '{prefix}' readable"


class SessionStore:
    """voice-interaction sessions: ``<prefix>session:<id>`` holds a JSON object, with a TTL."""

    def __init__(self, client: RedisLike, prefix: str, ttl_s: int) -> None:
        self.client, self.prefix, self.ttl_s = client, prefix, ttl_s

    def key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    async def create(self, metadata: dict[str, Any], subject: str) -> dict[str, Any]:
        session = {"id": uuid.uuid4().hex, "created_at": time.time(), "subject": subject,
                   "metadata": metadata, "ttl_s": self.ttl_s}
        await self.client.set(self.key(session["id"]), json.dumps(session), ex=self.ttl_s)
        return session

    async def get(self, session_id: str) -> dict[str, Any] | None:
        raw = await self.client.get(self.key(session_id))
        return None if raw is None else json.loads(raw)


class ConversationStore:
    """chat history: ``<prefix>conv:<id>`` is a list of JSON messages, capped, with a TTL."""

    def __init__(self, client: RedisLike, prefix: str, ttl_s: int, max_messages: int) -> None:
        self.client, self.prefix, self.ttl_s, self.max_messages = client, prefix, ttl_s, max_messages

    def key(self, conversation_id: str) -> str:
        return f"{self.prefix}conv:{conversation_id}"

    async def load(self, conversation_id: str) -> list[dict[str, str]]:
        raw = await self.client.lrange(self.key(conversation_id), 0, -1)
        return [json.loads(item) for item in raw]

    async def append(self, conversation_id: str, messages: list[dict[str, str]]) -> None:
        key = self.key(conversation_id)
        await self.client.rpush(key, *(json.dumps(m, ensure_ascii=False) for m in messages))
        await self.client.ltrim(key, -self.max_messages, -1)
        await self.client.expire(key, self.ttl_s)
