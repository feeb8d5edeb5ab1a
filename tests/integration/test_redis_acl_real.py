# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis role's real templates, rendered with the collection's filters, in a real redis-server.

No Docker: Debian's ``redis-server`` (7.0 in bookworm, the offline recipe's) on 127.0.0.1 and a
free port, or MLSTACK_TEST_REDIS_SERVER; skipped, with the reason, where absent. The catalog is
the local inventory's (voice-interaction ``sessions``, chat ``conversations``) plus a service
without ``mlstack_redis_acl`` (the default profile) and one that names a blocking command.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import redis
import yaml

from ansible_collections.aiops.mlstack.plugins.filter.catalog import redis_acl_rules, unit_clients
from ansible_collections.aiops.mlstack.plugins.module_utils import _redis as rd
from ansible_collections.aiops.mlstack.plugins.module_utils import _redis_checks as rdc

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "redis"
REDIS_SERVER = os.environ.get("MLSTACK_TEST_REDIS_SERVER") or shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None,
                                reason="no redis-server binary (PATH or MLSTACK_TEST_REDIS_SERVER)")


def _hostvars() -> dict[str, dict[str, Any]]:
    """The local inventory's services that use Redis, and two more (default profile, a blocking command)."""
    inventory = yaml.safe_load((ROOT / "inventories/local/hosts.yml").read_text())
    services = inventory["all"]["children"]["mlstack_units"]["children"]["mlstack_services"]["hosts"]
    hostvars = {name: {**entry, "mlstack_unit_kind": "service"} for name, entry in services.items()}
    hostvars["learning"] = {**hostvars["learning"], "mlstack_depends_on": ["redis"]}
    hostvars["queue-worker"] = {"mlstack_unit_kind": "service", "mlstack_depends_on": ["redis"],
                                "mlstack_redis_acl": ["@list", "blpop"]}
    hostvars["redis"] = {"mlstack_unit_kind": "database", "mlstack_unit_role": "redis"}
    return hostvars


def _render(template: str, **values: Any) -> str:
    # Ansible's template lookup: trim_blocks; the builtin hash filter; the collection's filter by FQCN
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)
    env.filters["hash"] = lambda text, algorithm: hashlib.new(algorithm, str(text).encode()).hexdigest()
    env.filters["aiops.mlstack.redis_acl_rules"] = redis_acl_rules
    return env.from_string((ROLE / "templates" / template).read_text()).render(**values)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    hostvars = _hostvars()
    clients = unit_clients(hostvars, sorted(n for n, v in hostvars.items() if v["mlstack_unit_kind"] == "service"),
                           "redis")
    passwords = {name: secrets.token_urlsafe(18) for name in ["admin", "healthcheck", *(c["name"] for c in clients)]}
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    port = _free_port()
    work = tmp_path_factory.mktemp("redis")
    (work / "users.acl").write_text(_render("users.acl.j2", redis_admin_user="admin", redis_clients=clients,
                                            secrets_values=passwords))
    # The resolved unit of a Redis with no client on another Docker host: no TLS port.
    conf = _render("redis.conf.j2", ansible_managed="managed", __redis_unit={"port": port, "tls": None},
                   redis_appendonly=True,
                   **{k: v for k, v in defaults.items()
                      if k in ("redis_maxmemory", "redis_busy_reply_threshold_ms",
                               "redis_client_output_buffer_limit_normal", "redis_client_output_buffer_limit_pubsub")})
    # The container's paths and bind, replaced for loopback: the rest is the role's file as rendered.
    for container, here in (("bind * -::*", "bind 127.0.0.1"), ("dir /data", f"dir {work}"),
                            ("aclfile /etc/mlstack-acl/users.acl", f"aclfile {work / 'users.acl'}")):
        assert conf.count(f"{container}\n") == 1, container
        conf = conf.replace(f"{container}\n", f"{here}\n")
    (work / "redis.conf").write_text(conf)
    assert REDIS_SERVER is not None
    log = (work / "redis.log").open("wb")
    proc = subprocess.Popen([REDIS_SERVER, str(work / "redis.conf")], stdout=log, stderr=subprocess.STDOUT)
    admin = redis.Redis(port=port, username="admin", password=passwords["admin"], decode_responses=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            admin.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"redis-server did not start: {(work / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.05)
    try:
        yield {"port": port, "passwords": passwords, "clients": clients, "admin": admin}
    finally:
        admin.close()
        proc.terminate()
        proc.wait(10)
        log.close()


def _users(server: dict[str, Any]) -> list[rd.RedisUser]:
    return [rd.RedisUser(c["name"], server["passwords"][c["name"]], c["prefix"], c["redis_acl"])
            for c in server["clients"]]


def test_redis_check_passes_against_the_rendered_acl(server: dict[str, Any]) -> None:
    records = rdc.check_redis("redis", "127.0.0.1", server["port"], "admin", server["passwords"]["admin"],
                              _users(server))
    failed = [(r["check"], r["observed"], r["message"]) for r in records if not r["ok"]]
    assert not failed, failed
    assert len(records) == 4 + 3 * len(server["clients"])
    risky = {r["observed"]["user"]: r for r in records if r["check"] == "risky_commands_denied"}
    assert set(risky) == {"chat", "voice_interaction", "learning", "queue_worker"}
    for user in ("chat", "voice_interaction", "learning"):
        assert risky[user]["observed"] == {"user": user, "must_deny": ["script", "blocking", "pubsub"],
                                           "script_denied": True, "blocking_denied": True, "pubsub_denied": True}
        for command in ("eval", "blpop", "subscribe"):
            assert f"NOPERM this user has no permissions to run the '{command}' command" in risky[user]["message"]
    # the service that names BLPOP may block; a script and a subscription are still refused
    assert risky["queue_worker"]["observed"] == {
        "user": "queue_worker", "must_deny": ["script", "pubsub"],
        "script_denied": True, "blocking_denied": False, "pubsub_denied": True}
    own = {r["observed"]["user"]: r["observed"] for r in records if r["check"] == "own_prefix_access"}
    assert own["learning"]["deleted"] is True, "the default profile may SET, GET and DEL its probe key"
    # neither service deletes keys (they expire): their users prove their prefix with EXISTS
    assert own["chat"] == {"user": "chat", "key": "chat:mlstack-check", "exists": 0}
    assert own["voice_interaction"]["exists"] == 0
    text = str(records)
    assert not [pw for pw in server["passwords"].values() if pw in text]


def test_a_service_user_cannot_hang_redis_with_a_script(server: dict[str, Any]) -> None:
    for client in server["clients"]:
        user = redis.Redis(port=server["port"], username=client["name"], password=server["passwords"][client["name"]],
                           socket_timeout=2)
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to run the 'eval' command"):
            user.eval("while true do end", 0)
        user.close()
    assert server["admin"].ping() is True


def test_redis_conf_limits_are_in_force(server: dict[str, Any]) -> None:
    admin = server["admin"]
    assert admin.config_get("busy-reply-threshold") == {"busy-reply-threshold": "1000"}
    limits = admin.config_get("client-output-buffer-limit")["client-output-buffer-limit"]
    assert "normal 67108864 16777216 60" in limits and "pubsub 8388608 2097152 60" in limits
    users = ["admin", "chat", "default", "healthcheck", "learning", "queue_worker", "voice_interaction"]
    assert [line.split()[1] for line in admin.acl_list()] == users
