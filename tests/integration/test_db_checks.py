# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""redis_check, postgres_check and postgres_provision against real servers.

Starts throwaway containers from the offline recipe images (``mlstack/redis:<content hash>``,
``mlstack/postgresql:<content hash>``, as the images role tags them) on a private bridge
network and reaches them by their addresses on it. Skipped, with the reason, when the Docker
engine or an image is absent (in scripts/test an absent image fails instead).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres as pg
from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_checks as pgc
from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_provision as prov
from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_scram as scram
from ansible_collections.aiops.mlstack.plugins.module_utils import _redis as rd
from ansible_collections.aiops.mlstack.plugins.module_utils import _redis_checks as rdc
from ansible_collections.aiops.mlstack.plugins.module_utils._redis_acl import acl_rules

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def _recipe_ref(recipe: str) -> str:
    """The tag the images role builds a recipe under: its content hash."""
    from ansible_collections.aiops.mlstack.plugins.filter.tree_hash import tree_hash

    return f"mlstack/{recipe}:{tree_hash(str(ROOT / 'images' / recipe))}"


REDIS_IMAGE = os.environ.get("MLSTACK_TEST_REDIS_IMAGE") or _recipe_ref("redis")
POSTGRES_IMAGE = os.environ.get("MLSTACK_TEST_POSTGRES_IMAGE") or _recipe_ref("postgresql")
NETWORK = "helper-chk-net"
REDIS_NAME = "helper-chk-redis"
POSTGRES_NAME = "helper-chk-postgres"
LABEL = {"io.mlstack.test": "db_checks"}


def _docker() -> Any:
    try:
        import docker
    except ImportError:
        pytest.skip("the docker Python SDK is not installed")
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # any failure to reach the engine means: skip
        pytest.skip(f"no Docker engine answers: {exc}")
    return client


def _need_image(client: Any, ref: str) -> None:
    import docker

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        reason = f"image {ref} is absent (playbooks/phase5.yml builds it with the images role)"
        # scripts/test runs these after phase5: there an absent image is a failure, not a skip.
        if os.environ.get("MLSTACK_TEST_REQUIRE_IMAGES"):
            pytest.fail(reason)
        pytest.skip(reason)


def _remove(client: Any, name: str) -> None:
    import docker

    try:
        client.containers.get(name).remove(force=True, v=True)
    except docker.errors.NotFound:
        pass


def _address(container: Any) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]


def _wait(what: str, probe: Any, container: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            raise AssertionError(f"{what} exited: {container.logs(tail=30).decode(errors='replace')}")
        try:
            probe()
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout} s: {last}; logs: {container.logs(tail=30).decode()}")


@pytest.fixture(scope="module")
def docker_client() -> Any:
    return _docker()


@pytest.fixture(scope="module")
def network(docker_client: Any) -> Iterator[str]:
    import docker

    for name in (REDIS_NAME, POSTGRES_NAME):
        _remove(docker_client, name)
    try:
        docker_client.networks.get(NETWORK).remove()
    except docker.errors.NotFound:
        pass
    net = docker_client.networks.create(NETWORK, driver="bridge", labels=LABEL)
    yield NETWORK
    net.remove()


REDIS_ACL = {"chat": None, "voice": "sessions"}


@pytest.fixture(scope="module")
def redis_server(docker_client: Any, network: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    _need_image(docker_client, REDIS_IMAGE)
    passwords = {name: secrets.token_urlsafe(24) for name in ("admin", "chat", "voice")}
    config = tmp_path_factory.mktemp("redis-config")
    config.chmod(0o755)
    (config / "redis.conf").write_text(
        "port 6379\naclfile /etc/mlstack/users.acl\nappendonly yes\ndir /data\n", encoding="utf-8"
    )

    def sha(name: str) -> str:
        return hashlib.sha256(passwords[name].encode()).hexdigest()

    (config / "users.acl").write_text(
        "user default off\n"
        f"user admin on #{sha('admin')} ~* &* +@all\n"
        # the rules the role renders: chat with the default profile, voice with "sessions"
        f"user chat on #{sha('chat')} ~chat:* &chat:* {acl_rules(REDIS_ACL['chat'])}\n"
        f"user voice on #{sha('voice')} ~voice:* &voice:* {acl_rules(REDIS_ACL['voice'])}\n",
        encoding="utf-8",
    )
    for path in config.iterdir():
        path.chmod(0o644)
    container = docker_client.containers.run(
        REDIS_IMAGE,
        ["redis-server", "/etc/mlstack/redis.conf"],
        name=REDIS_NAME,
        detach=True,
        network=network,
        labels=LABEL,
        volumes={str(config): {"bind": "/etc/mlstack", "mode": "ro"}},
    )
    try:
        host = _address(container)

        def ping() -> None:
            client = rd.redis_connect(host, 6379, "admin", passwords["admin"], 2.0)
            try:
                client.ping()
            finally:
                client.close()

        _wait("redis", ping, container)
        yield {"host": host, "passwords": passwords}
    finally:
        container.remove(force=True, v=True)


@pytest.fixture(scope="module")
def postgres_server(docker_client: Any, network: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    _need_image(docker_client, POSTGRES_IMAGE)
    admin_password = secrets.token_urlsafe(24)
    secret_dir = tmp_path_factory.mktemp("postgres-secret")
    secret_dir.chmod(0o755)
    (secret_dir / "admin").write_text(admin_password + "\n", encoding="utf-8")
    (secret_dir / "admin").chmod(0o644)  # read by uid 999 in the container; a throwaway test secret
    container = docker_client.containers.run(
        POSTGRES_IMAGE,
        name=POSTGRES_NAME,
        detach=True,
        network=network,
        labels=LABEL,
        environment={"POSTGRES_PASSWORD_FILE": "/run/secrets/admin"},
        volumes={str(secret_dir): {"bind": "/run/secrets", "mode": "ro"}},
    )
    try:
        host = _address(container)

        def ping() -> None:
            pg.pg_connect(host, 5432, "postgres", admin_password, "postgres", 2.0).close()

        _wait("postgresql", ping, container)
        yield {"host": host, "admin_password": admin_password}
    finally:
        container.remove(force=True, v=True)


SERVICES = {"chat": "chat", "voice_interaction": "voice"}


@pytest.fixture(scope="module")
def pg_services() -> list[pg.Service]:
    return [pg.Service(name, secrets.token_urlsafe(24), database) for name, database in SERVICES.items()]


def _by(records: list[dict], check: str, user: str | None = None) -> dict:
    found = [r for r in records if r["check"] == check and (user is None or r["observed"].get("user") == user)]
    assert len(found) == 1, (check, user, records)
    return found[0]


def _assert_all_ok(records: list[dict]) -> None:
    failed = [(r["check"], r["observed"], r["message"]) for r in records if not r["ok"]]
    assert not failed, failed


def _assert_no_secret(obj: Any, values: list[str]) -> None:
    text = json.dumps(obj)
    for value in values:
        assert value not in text


# --- Redis --------------------------------------------------------------------------------


def _redis_users(server: dict) -> list[rd.RedisUser]:
    return [rd.RedisUser(n, server["passwords"][n], f"{n}:", REDIS_ACL[n]) for n in ("chat", "voice")]


def test_redis_checks_pass(redis_server: dict) -> None:
    records = rdc.check_redis(
        "redis", redis_server["host"], 6379, "admin", redis_server["passwords"]["admin"], _redis_users(redis_server)
    )
    _assert_all_ok(records)
    assert len(records) == 10
    connect = _by(records, "connect")
    assert connect["observed"]["redis_version"].startswith("7.")
    assert connect["observed"]["latency_ms"] > 0
    assert _by(records, "persistence")["observed"]["aof_enabled"] == 1
    assert "NOAUTH" in _by(records, "auth_required")["message"]
    assert "WRONGPASS" in _by(records, "wrong_password_rejected")["message"]
    foreign = _by(records, "foreign_prefix_denied", "chat")
    assert foreign["observed"] == {
        "user": "chat",
        "foreign_prefix": "voice:",
        "read_denied": True,
        "write_denied": True,
    }
    assert "NOPERM" in foreign["message"]
    for user in ("chat", "voice"):
        risky = _by(records, "risky_commands_denied", user)["observed"]
        assert risky["script_denied"] and risky["blocking_denied"] and risky["pubsub_denied"], risky
    _assert_no_secret(records, list(redis_server["passwords"].values()))


def test_redis_wrong_admin_password_fails_connect(redis_server: dict) -> None:
    wrong = secrets.token_urlsafe(24)
    records = rdc.check_redis("redis", redis_server["host"], 6379, "admin", wrong, _redis_users(redis_server))
    connect = _by(records, "connect")
    assert connect["ok"] is False
    assert "WRONGPASS" in connect["message"]
    assert _by(records, "persistence")["ok"] is False
    assert _by(records, "own_prefix_access", "chat")["ok"] is True
    _assert_no_secret(records, [wrong, *redis_server["passwords"].values()])


def test_redis_single_user_and_a_user_without_acl_limits(redis_server: dict) -> None:
    chat = _redis_users(redis_server)[0]
    records = rdc.check_redis("redis", redis_server["host"], 6379, "admin", redis_server["passwords"]["admin"], [chat])
    assert _by(records, "foreign_prefix_denied", "chat")["observed"]["foreign_prefix"] == rdc.NOBODY_PREFIX
    _assert_all_ok(records)
    # the admin user may touch every key: as a "service user" it must fail the isolation check
    admin = rd.RedisUser("admin", redis_server["passwords"]["admin"], "admin:")
    records = rdc.check_redis("redis", redis_server["host"], 6379, "admin", admin.password, [admin, chat])
    denied = _by(records, "foreign_prefix_denied", "admin")
    assert denied["ok"] is False
    assert denied["observed"]["read_denied"] is False and denied["observed"]["write_denied"] is False
    assert _by(records, "risky_commands_denied", "admin")["ok"] is False, "admin may run scripts"


# --- PostgreSQL ---------------------------------------------------------------------------


def _provision(server: dict, services: list[pg.Service], check_mode: bool = False) -> dict:
    return prov.provision(
        server["host"], 5432, "postgres", server["admin_password"], "postgres", services, check_mode=check_mode
    )


def test_postgres_provision_is_idempotent(postgres_server: dict, pg_services: list[pg.Service]) -> None:
    planned = _provision(postgres_server, pg_services, check_mode=True)
    assert planned["changed"] is True and len(planned["changes"]) == 8
    first = _provision(postgres_server, pg_services)
    assert first["changes"] == planned["changes"]
    second = _provision(postgres_server, pg_services)
    assert second["changed"] is False and second["changes"] == [], second["changes"]
    assert _provision(postgres_server, pg_services, check_mode=True)["changed"] is False
    assert second["diff"]["before"] == first["diff"]["after"]
    _assert_no_secret([planned, first, second], [s.password for s in pg_services] + [postgres_server["admin_password"]])


def test_postgres_checks_pass(postgres_server: dict, pg_services: list[pg.Service]) -> None:
    _provision(postgres_server, pg_services)
    records = pgc.check_postgres(
        "postgresql",
        postgres_server["host"],
        5432,
        "postgres",
        postgres_server["admin_password"],
        "postgres",
        pg_services,
    )
    _assert_all_ok(records)
    assert len(records) == 10
    assert _by(records, "connect")["observed"]["server_version"].startswith("15.")
    scram = _by(records, "scram_only")["observed"]
    assert scram["hba_methods"] == ["scram-sha-256"] and scram["non_scram_roles"] == []
    assert _by(records, "foreign_database_denied", "chat")["observed"]["denied_by"] == "privilege"
    assert "no password supplied" in _by(records, "auth_required")["message"]
    _assert_no_secret(records, [s.password for s in pg_services] + [postgres_server["admin_password"]])


def test_postgres_wrong_admin_password_fails_connect(postgres_server: dict, pg_services: list[pg.Service]) -> None:
    wrong = secrets.token_urlsafe(24)
    records = pgc.check_postgres(
        "postgresql", postgres_server["host"], 5432, "postgres", wrong, "postgres", pg_services
    )
    connect = _by(records, "connect")
    assert connect["ok"] is False
    assert 'password authentication failed for user "postgres"' in connect["message"]
    _assert_no_secret(records, [wrong])


def test_postgres_password_change_is_applied_once(postgres_server: dict, pg_services: list[pg.Service]) -> None:
    _provision(postgres_server, pg_services)
    changed = [pg.Service(pg_services[0].name, secrets.token_urlsafe(24), pg_services[0].database), *pg_services[1:]]
    result = _provision(postgres_server, changed)
    assert result["changes"] == [f"set password of role {changed[0].name} (was scram-sha-256, differs)"]
    records = pgc.check_postgres(
        "postgresql", postgres_server["host"], 5432, "postgres", postgres_server["admin_password"], "postgres", changed
    )
    _assert_all_ok(records)
    # and back, so that the other tests keep their passwords
    assert _provision(postgres_server, pg_services)["changed"] is True


@pytest.mark.parametrize("password", ["plain-ascii-1", "mlstack-Pässwörd 1", "I\u00adX \u2168 \u00aa", "a\u00a0b"])
def test_scram_verifier_agrees_with_postgresql(postgres_server: dict, password: str) -> None:
    """PostgreSQL hashes the password itself (server side); the comparison, recomputing the keys
    with its salt and iterations, must accept it, SASLprep included."""
    conn = pg.pg_connect(postgres_server["host"], 5432, "postgres", postgres_server["admin_password"], "postgres", 5)
    try:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute("DROP ROLE IF EXISTS mlstack_vector")
        from psycopg import sql

        conn.execute(sql.SQL("CREATE ROLE mlstack_vector PASSWORD {}").format(sql.Literal(password)))
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'mlstack_vector'").fetchone()[0]
        conn.execute("DROP ROLE mlstack_vector")
    finally:
        conn.close()
    parsed = scram.parse_scram_verifier(stored)
    assert parsed is not None, stored
    assert scram.verifier_matches(stored, password)
    assert not scram.verifier_matches(stored, password + "x")
    print(f"PostgreSQL-made verifier for {password!r}: {stored}")


# --- the modules through ansible (AnsiballZ packaging, no_log) -------------------------------


def _ansible(module: str, args: dict, *extra: str) -> tuple[int, str]:
    ansible = Path(sys.executable).parent / "ansible"
    if not ansible.exists():
        pytest.skip(f"no ansible beside {sys.executable}")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [
            str(ansible),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-m",
            module,
            "-a",
            json.dumps(args),
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            *extra,
            "localhost",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_modules_through_ansible(redis_server: dict, postgres_server: dict, pg_services: list[pg.Service]) -> None:
    secrets_used = [*redis_server["passwords"].values(), postgres_server["admin_password"]]
    secrets_used += [s.password for s in pg_services]
    rc, out = _ansible(
        "aiops.mlstack.redis_check",
        {
            "unit": "redis",
            "host": redis_server["host"],
            "admin_password": redis_server["passwords"]["admin"],
            "users": [{"name": n, "password": redis_server["passwords"][n], "redis_acl": REDIS_ACL[n]}
                      for n in ("chat", "voice")],
        },
    )
    assert rc == 0, out
    assert '"msg": "redis: 10 of 10 checks ok"' in out or "msg: 'redis: 10 of 10 checks ok'" in out, out
    _assert_no_secret(out, secrets_used)

    clients = [{"name": s.name, "password": s.password, "database": s.database} for s in pg_services]
    admin = {"host": postgres_server["host"], "admin_password": postgres_server["admin_password"]}
    rc, out = _ansible("aiops.mlstack.postgres_provision", {**admin, "clients": clients})
    assert rc == 0, out
    rc, out = _ansible("aiops.mlstack.postgres_provision", {**admin, "clients": clients}, "--check", "--diff")
    assert rc == 0 and "SUCCESS" in out and "CHANGED" not in out, out
    _assert_no_secret(out, secrets_used)
    rc, out = _ansible("aiops.mlstack.postgres_check", {**admin, "unit": "postgresql", "users": clients})
    assert rc == 0, out
    assert "postgresql: 10 of 10 checks ok" in out, out
    _assert_no_secret(out, secrets_used)

    rc, out = _ansible(
        "aiops.mlstack.redis_check", {"unit": "redis", "host": redis_server["host"], "admin_password": "x"}
    )
    assert rc != 0 and "connect (admin)" in out, out
