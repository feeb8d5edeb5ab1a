# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis role's rendered users.acl and redis.conf: the real templates, the collection's filters."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from ansible_collections.aiops.mlstack.plugins.filter.catalog import redis_acl_rules, unit_clients
from ansible_collections.aiops.mlstack.plugins.filter.tls import tls_fingerprint

ROLE = Path(__file__).resolve().parents[3] / "roles" / "redis"
HOSTVARS = {
    "redis": {"mlstack_unit_kind": "database", "mlstack_unit_role": "redis"},
    "voice-interaction": {"mlstack_unit_kind": "service", "mlstack_depends_on": ["redis"],
                          "mlstack_redis_acl": "sessions"},
    "chat": {"mlstack_unit_kind": "service", "mlstack_depends_on": ["redis", "postgresql"],
             "mlstack_redis_acl": "conversations"},
    "learning": {"mlstack_unit_kind": "service", "mlstack_depends_on": ["redis"]},
    "reasoning": {"mlstack_unit_kind": "service", "mlstack_depends_on": []},
}
SECRETS = {"admin": "admin-pw", "healthcheck": "hc-pw", "chat": "chat-pw", "voice_interaction": "voice-pw",
           "learning": "learning-pw"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)  # Ansible's template defaults
    env.filters["hash"] = lambda text, algorithm: hashlib.new(algorithm, str(text).encode()).hexdigest()
    env.filters["aiops.mlstack.redis_acl_rules"] = redis_acl_rules
    env.filters["aiops.mlstack.tls_fingerprint"] = tls_fingerprint
    return env


def render_acl(clients: list[dict[str, Any]], previous: dict[str, str] | None = None) -> list[str]:
    values: dict[str, Any] = {"redis_admin_user": "admin", "redis_clients": clients, "secrets_values": SECRETS}
    if previous is not None:
        values["secrets_previous"] = previous
    text = _env().from_string((ROLE / "templates" / "users.acl.j2").read_text()).render(**values)
    return text.splitlines()


def test_each_service_user_gets_only_its_commands() -> None:
    lines = render_acl(unit_clients(HOSTVARS, ["voice-interaction", "chat", "learning", "reasoning"], "redis"))
    assert lines == [
        "user default off resetkeys resetchannels -@all",
        f"user admin on #{sha('admin-pw')} ~* &* +@all",
        f"user healthcheck on #{sha('hc-pw')} resetkeys resetchannels -@all +ping",
        f"user chat on #{sha('chat-pw')} resetkeys ~chat:* resetchannels &chat:* "
        "-@all +ping +exists +rpush +ltrim +expire +lrange -@admin -@dangerous -@scripting",
        # no mlstack_redis_acl: the keyvalue profile, still without blocking, pub/sub or scripts
        f"user learning on #{sha('learning-pw')} resetkeys ~learning:* resetchannels &learning:* "
        "-@all +@read +@write +@transaction -@blocking -@pubsub +ping +exists -@admin -@dangerous -@scripting",
        f"user voice_interaction on #{sha('voice-pw')} resetkeys ~voice-interaction:* "
        "resetchannels &voice-interaction:* -@all +ping +exists +get +set -@admin -@dangerous -@scripting",
    ]
    assert not any(pw in "\n".join(lines) for pw in SECRETS.values()), "only hashes, never a password"


def test_a_rotation_keeps_the_previous_hash_beside_the_new_one() -> None:
    clients = unit_clients(HOSTVARS, ["chat"], "redis")
    [chat] = [line for line in render_acl(clients, {"chat": "old-chat-pw"}) if line.startswith("user chat ")]
    assert chat == (f"user chat on #{sha('chat-pw')} #{sha('old-chat-pw')} resetkeys ~chat:* resetchannels "
                    "&chat:* -@all +ping +exists +rpush +ltrim +expire +lrange -@admin -@dangerous -@scripting")


def test_a_client_given_without_redis_acl_gets_the_default_profile() -> None:
    # redis_clients set by hand (the role's argument spec allows name and prefix only)
    [line] = [x for x in render_acl([{"name": "chat", "prefix": "chat:"}]) if x.startswith("user chat ")]
    assert line.endswith("&chat:* -@all +@read +@write +@transaction -@blocking -@pubsub +ping +exists "
                         "-@admin -@dangerous -@scripting")


def test_a_bad_permission_is_never_rendered() -> None:
    with pytest.raises(ValueError, match=r"unit chat: mlstack_redis_acl: 'eval' is in @scripting"):
        render_acl([{"unit": "chat", "name": "chat", "prefix": "chat:", "redis_acl": ["get", "eval"]}])


def render_conf(unit: dict[str, Any]) -> list[str]:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values = {"ansible_managed": "managed", "__redis_unit": unit, "redis_appendonly": True,
              "redis_maxmemory": "256mb",
              **{k: v for k, v in defaults.items() if k.startswith(("redis_busy", "redis_client_output"))}}
    return _env().from_string((ROLE / "templates" / "redis.conf.j2").read_text()).render(**values).splitlines()


def test_redis_conf_serves_tls_only_for_other_hosts_and_names_its_certificate(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "tls_cert.pem").write_text("CERT")
    unit = {"name": "redis", "port": 6379, "secrets_dir": str(tmp_path), "tls": {"port": 6380}}
    lines = render_conf(unit)
    assert "port 6379" in lines and "tls-port 6380" in lines and "tls-auth-clients no" in lines
    assert any(sha("CERT") in line for line in lines)
    # Without clients on other hosts the configuration is what it always was: no TLS line.
    plain = render_conf({**unit, "tls": None})
    assert not [line for line in plain if line.startswith("tls-")] and plain == lines[:len(plain)]


def test_redis_conf_limits_scripts_and_output_buffers() -> None:
    lines = render_conf({"port": 6379, "tls": None})
    assert "busy-reply-threshold 1000" in lines
    assert "client-output-buffer-limit normal 64mb 16mb 60" in lines
    assert "client-output-buffer-limit pubsub 8mb 2mb 60" in lines


@pytest.mark.parametrize(("role", "option"), [("redis", "redis_clients"), ("postgresql", "postgresql_clients")])
def test_the_roles_argument_specs_accept_what_unit_clients_gives(role: str, option: str) -> None:
    # the roles validate their templated defaults: an unknown key of a client would fail the role
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    specs = yaml.safe_load((ROLE.parent / role / "meta" / "argument_specs.yml").read_text())
    spec = {option: specs["argument_specs"]["main"]["options"][option]}
    spec[option].pop("default", None)  # a templated list default is left out of the spec (antsibull-docs)
    clients = unit_clients(HOSTVARS, ["voice-interaction", "chat", "learning"], "redis")
    result = ArgumentSpecValidator(spec).validate({option: clients})
    assert result.error_messages == []
    assert result.validated_parameters[option][0]["redis_acl"] == "conversations"
