"""testinfra: Prometheus, Alertmanager and the exporters that phase5 left running.

Every target Prometheus was given (generated from the inventory) is up; stopping a
non-critical unit makes its alert fire in Alertmanager, and it resolves after the unit is
started again (the test inventory's 5 s scrape and evaluation intervals keep this within the
bounds below); the exporters' database users cannot read the services' data.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

SECRETS = Path(os.environ.get("MLSTACK_SECRETS_DIR", Path.home() / ".local/share/mlstack/secrets"))
BACKEND = "mlstack_backend"
# A non-critical unit with no dependants that wait for it.
VICTIM = "perception"
# for: 30s, plus a scrape, an evaluation, Alertmanager's group_wait and a busy two-core host.
ALERT_BOUND_S = 150


def inspect(host: Any, name: str) -> dict[str, Any]:
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def address(host: Any, name: str) -> str:
    return inspect(host, name)["NetworkSettings"]["Networks"][BACKEND]["IPAddress"]


def secret(unit: str, name: str) -> str:
    return (SECRETS / unit / name).read_text().strip()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - http to a container address
        return json.load(answer)


def wait_for(what: str, probe: Callable[[], Any], bound_s: float, every_s: float = 3) -> Any:
    deadline = time.monotonic() + bound_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {bound_s} s (last: {last!r})")


def test_every_target_is_up(host: Any) -> None:
    prometheus = f"http://{address(host, 'mlstack-prometheus')}:9090"

    def all_up() -> dict[str, str] | None:
        targets = get_json(f"{prometheus}/api/v1/targets?state=active")["data"]["activeTargets"]
        health = {t["labels"]["unit"]: t["health"] for t in targets}
        return health if health and all(h == "up" for h in health.values()) else None

    health = wait_for("every target up", all_up, 60)
    # The services, the exporters, Prometheus and Alertmanager: what the inventory declares.
    assert {"chat", "llm", "prometheus", "alertmanager", "redis-exporter", "postgres-exporter", "node-exporter",
            "resource-exporter"} <= set(health)
    result = get_json(f"{prometheus}/api/v1/query?query=up")["data"]["result"]
    assert {r["metric"]["unit"]: r["value"][1] for r in result} == dict.fromkeys(health, "1")
    # The exporters reach their databases with their own users.
    for query in ("redis_up", "pg_up"):
        values = get_json(f"{prometheus}/api/v1/query?query={query}")["data"]["result"]
        assert [v["value"][1] for v in values] == ["1"], query


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    return get_json(f"{prometheus}/api/v1/query?query={urllib.parse.quote(promql)}")["data"]["result"]


def test_the_resource_exporter_measures_every_running_unit(host: Any) -> None:
    prometheus = f"http://{address(host, 'mlstack-prometheus')}:9090"
    running = set(host.check_output(
        "docker ps --filter label=io.mlstack.unit --format '{{.Label \"io.mlstack.unit\"}}'").split())
    assert {"chat", "llm", "postgresql", "redis", "resource-exporter"} <= running

    def measured() -> dict[str, float] | None:
        # honor_labels: the unit label is the measured container's, not the exporter's.
        series = query(prometheus, 'max by (unit) (mlstack_container_memory_bytes{job="resource-exporter"})')
        found = {r["metric"]["unit"]: float(r["value"][1]) for r in series}
        return found if running <= set(found) else None

    memory = wait_for("a memory figure for every running unit", measured, 60)
    limit = {u: inspect(host, f"mlstack-{u}")["HostConfig"]["Memory"] for u in ("chat", "redis", "llm")}
    for unit, cap in limit.items():
        assert 1024 * 1024 < memory[unit] <= cap, (unit, memory[unit], cap)
    cpu = {r["metric"]["unit"] for r in query(prometheus, "mlstack_container_cpu_seconds_total > 0")}
    restarts = {r["metric"]["unit"] for r in query(prometheus, "mlstack_container_restarts_total")}
    assert running <= cpu and running <= restarts


def test_the_resource_exporter_has_read_only_views_and_no_capability(host: Any) -> None:
    config = inspect(host, "mlstack-resource-exporter")
    assert config["HostConfig"]["CapDrop"] == ["ALL"] and not config["HostConfig"]["CapAdd"]
    assert config["HostConfig"]["ReadonlyRootfs"] is True and not config["HostConfig"]["Privileged"]
    assert "no-new-privileges:true" in config["HostConfig"]["SecurityOpt"]
    mounts = [m for m in config["Mounts"] if m["Type"] == "bind"]
    assert mounts and all(m["RW"] is False for m in mounts)
    assert not any("docker.sock" in m["Source"] for m in mounts)


def test_the_llm_serves_its_own_metrics(host: Any) -> None:
    prometheus = f"http://{address(host, 'mlstack-prometheus')}:9090"
    names = {r["metric"]["__name__"] for r in query(prometheus, '{unit="llm",__name__=~"mlstack_llm_.+"}')}
    assert {"mlstack_llm_queue_depth", "mlstack_llm_completion_tokens_total"} <= names, names


def _alerts(alertmanager: str) -> list[dict[str, Any]]:
    return [a for a in get_json(f"{alertmanager}/api/v2/alerts?active=true&silenced=false&inhibited=false")
            if a["labels"].get("alertname") == "MlstackUnitDown" and a["labels"].get("unit") == VICTIM]


def test_a_stopped_unit_fires_its_alert_which_resolves_after_restart(host: Any) -> None:
    alertmanager = f"http://{address(host, 'mlstack-alertmanager')}:9093"
    assert _alerts(alertmanager) == []
    host.check_output(f"docker stop mlstack-{VICTIM}")
    try:
        started = time.monotonic()
        fired = wait_for(f"MlstackUnitDown for {VICTIM} in Alertmanager", lambda: _alerts(alertmanager), ALERT_BOUND_S)
        print(f"alert fired after {time.monotonic() - started:.0f} s")
        assert fired[0]["labels"]["severity"] == "warning"
    finally:
        host.check_output(f"docker start mlstack-{VICTIM}")
    wait_for(f"mlstack-{VICTIM} healthy", lambda: inspect(host, f"mlstack-{VICTIM}")["State"]["Health"]["Status"]
             == "healthy", 180)
    wait_for(f"MlstackUnitDown for {VICTIM} resolved", lambda: _alerts(alertmanager) == [], ALERT_BOUND_S)


def test_redis_exporter_user_reads_state_not_data(host: Any) -> None:
    client = redis.Redis(host=address(host, "mlstack-redis"), username="redis_exporter",
                         password=secret("redis", "redis_exporter"), socket_timeout=3, driver_info=None)
    assert "used_memory" in client.info("memory")
    assert client.config_get("maxmemory")
    for argv in (("GET", "chat:anything"), ("LRANGE", "chat:conv:x", "0", "-1"), ("KEYS", "*"), ("SCAN", "0"),
                 ("CONFIG", "SET", "maxmemory", "1"), ("EVAL", "return 1", "0"), ("MONITOR",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*argv)
    client.close()


def test_postgres_exporter_role_reads_statistics_not_data(host: Any) -> None:
    ip = address(host, "mlstack-postgresql")
    password = secret("postgresql", "postgres_exporter")
    with psycopg.connect(host=ip, user="postgres_exporter", password=password, dbname="postgres_exporter",
                         connect_timeout=3) as conn:
        assert conn.execute("SELECT pg_has_role(current_user, 'pg_monitor', 'MEMBER')").fetchone() == (True,)
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        assert conn.execute("SELECT count(*) FROM pg_stat_database").fetchone()[0] > 0
    for database in ("chat", "learning"):
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(host=ip, user="postgres_exporter", password=password, dbname=database, connect_timeout=3)
