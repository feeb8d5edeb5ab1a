"""testinfra: what phase5 left on this machine, checked from the outside.

Runs through pytest (``--hosts=local://``) from the scenario's verify playbook. Secrets are
read from the controller's secrets directory and never printed: assertions compare
outcomes (accepted/refused), never values.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[3]
SECRETS = Path(os.environ.get("MLSTACK_SECRETS_DIR", Path.home() / ".local/share/mlstack/secrets"))
BACKEND = "mlstack_backend"
REDIS_RUNTIME = Path("/var/lib/mlstack/redis")


def inspect(host: Any, name: str) -> dict[str, Any]:
    out = host.check_output(f"docker inspect {name}")
    return json.loads(out)[0]


def address(host: Any, name: str) -> str:
    return inspect(host, name)["NetworkSettings"]["Networks"][BACKEND]["IPAddress"]


def secret(unit: str, name: str) -> str:
    return (SECRETS / unit / name).read_text().strip()


def leaked_secrets(text: str) -> list[str]:
    """Names (never values) of the generated secrets that occur in ``text``."""
    leaks = []
    # Public keys and the retirement times of rotated keys are not secret.
    for path in sorted(p for p in SECRETS.rglob("*") if p.is_file() and not p.name.endswith((".pub.pem", ".until"))):
        value = path.read_text().strip()
        # A PEM key is checked by its base64 body lines, any of which would be a leak.
        pieces = [line for line in value.splitlines() if "-----" not in line] if "-----" in value else [value]
        if any(piece and piece in text for piece in pieces):
            leaks.append(str(path.relative_to(SECRETS)))
    return leaks


@pytest.mark.parametrize("name", ["mlstack-redis", "mlstack-postgresql"])
def test_container_running_healthy_hardened_and_unpublished(host: Any, name: str) -> None:
    info = inspect(host, name)
    assert info["State"]["Running"] is True
    assert info["State"]["Health"]["Status"] == "healthy"
    assert info["Config"]["User"] == "999:999"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    assert info["HostConfig"]["Privileged"] is False
    assert not info["HostConfig"]["PortBindings"]
    assert list(info["NetworkSettings"]["Networks"]) == [BACKEND]


def test_backend_network_is_internal(host: Any) -> None:
    net = json.loads(host.check_output(f"docker network inspect {BACKEND}"))[0]
    assert net["Internal"] is True


def test_secrets_are_private_files(host: Any) -> None:
    for unit in ("redis", "postgresql"):
        directory = host.file(str(SECRETS / unit))
        assert directory.mode == 0o700
        for path in (SECRETS / unit).iterdir():
            assert host.file(str(path)).mode == 0o600


def test_redis_refuses_anonymous_and_wrong_password(host: Any) -> None:
    ip = address(host, "mlstack-redis")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host=ip, socket_timeout=3).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host=ip, username="admin", password="wrong-" + uuid.uuid4().hex, socket_timeout=3).ping()


def test_redis_service_user_confined_to_its_prefix_and_commands(host: Any) -> None:
    # chat's user may run what chat's history issues (mlstack_redis_acl: conversations), on chat:* only
    client = redis.Redis(host=address(host, "mlstack-redis"), username="chat", password=secret("redis", "chat"),
                         socket_timeout=3, driver_info=None)
    assert client.rpush("chat:verify", "1") >= 1
    assert client.expire("chat:verify", 60) is True
    assert client.lrange("chat:verify", 0, -1)[-1] == b"1"
    with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to access one of the keys"):
        client.exists("voice-interaction:anything")
    # neither a script (EVAL "while true do end" 0 would stall Redis for everyone), a blocking
    # command, pub/sub, nor a command chat does not use
    for argv in (("EVAL", "return 1", "0"), ("BLPOP", "chat:verify", "0.01"), ("SUBSCRIBE", "chat:verify"),
                 ("SET", "chat:verify2", "1"), ("KEYS", "chat:*"), ("CONFIG", "GET", "maxmemory")):
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to run"):
            client.execute_command(*argv)
    client.close()


def test_postgres_refuses_missing_and_wrong_password(host: Any) -> None:
    ip = address(host, "mlstack-postgresql")
    for password in ("", "wrong-" + uuid.uuid4().hex):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=ip, user="postgres", password=password, dbname="postgres", connect_timeout=3)


def test_postgres_service_role_reaches_only_its_database(host: Any) -> None:
    ip = address(host, "mlstack-postgresql")
    with psycopg.connect(host=ip, user="chat", password=secret("postgresql", "chat"), dbname="chat",
                         connect_timeout=3) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("chat",)
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(host=ip, user="chat", password=secret("postgresql", "chat"), dbname="learning",
                        connect_timeout=3)


def test_data_survives_recreation_of_both_containers(host: Any) -> None:
    marker = uuid.uuid4().hex
    r = redis.Redis(host=address(host, "mlstack-redis"), username="chat", password=secret("redis", "chat"),
                    socket_timeout=3, driver_info=None)
    # with the commands chat's user may run (a list, as chat's history)
    r.rpush("chat:survives", marker)
    r.expire("chat:survives", 3600)
    pg_kw = {"user": "chat", "password": secret("postgresql", "chat"), "dbname": "chat", "connect_timeout": 3}
    with psycopg.connect(host=address(host, "mlstack-postgresql"), **pg_kw) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS survives (marker text)")
        conn.execute("INSERT INTO survives VALUES (%s)", (marker,))
    before = {n: inspect(host, n)["Id"] for n in ("mlstack-redis", "mlstack-postgresql")}
    # A configuration directory of a Redis long gone: the run removes what no container mounts.
    stale = REDIS_RUNTIME / "config-00000000deadbeef"
    stale.mkdir(mode=0o500)

    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    run = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-v", "-i", "inventories/local", "playbooks/units.yml",
         "-e", "mlstack_recreate=always"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    assert leaked_secrets(run.stdout + run.stderr) == [], "a generated secret appears in the run's log"

    after = {n: inspect(host, n)["Id"] for n in before}
    assert all(before[n] != after[n] for n in before), "containers were not recreated"
    kept = {str(p) for p in REDIS_RUNTIME.glob("config-*")}
    mounted = {m["Source"] for name in ("mlstack-redis", "mlstack-redis_previous")
               if host.run(f"docker inspect {name}").rc == 0 for m in inspect(host, name)["Mounts"]}
    assert not stale.exists() and kept and kept <= mounted, (kept, mounted)
    r = redis.Redis(host=address(host, "mlstack-redis"), username="chat", password=secret("redis", "chat"),
                    socket_timeout=3, driver_info=None)
    assert marker.encode() in r.lrange("chat:survives", 0, -1)
    with psycopg.connect(host=address(host, "mlstack-postgresql"), **pg_kw) as conn:
        assert conn.execute("SELECT count(*) FROM survives WHERE marker = %s", (marker,)).fetchone() == (1,)


def test_no_secret_in_the_evidence_bundles() -> None:
    bundles = [p for p in (ROOT / "evidence").rglob("*") if p.is_file()]
    assert bundles, "no evidence bundle was written"
    text = "\n".join(p.read_text(errors="replace") for p in bundles)
    assert "evidence.json" in {p.name for p in bundles}
    assert leaked_secrets(text) == [], "a generated secret appears in an evidence bundle"


def test_leak_detector_finds_a_planted_secret() -> None:
    # The detector itself must be able to fail: plant one secret in a text and look.
    assert leaked_secrets("log line " + secret("redis", "admin") + " end") == ["redis/admin"]
