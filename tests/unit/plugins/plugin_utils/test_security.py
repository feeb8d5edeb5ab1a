"""The security stream's rules: endpoints to attack, answers judged, hardening, leaks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils._jwt_probe import v1_endpoints
from ansible_collections.aiops.mlstack.plugins.plugin_utils import _security as sec

OPENAPI = {"paths": {
    "/health": {"get": {}},
    "/v1/tts": {"post": {}},
    "/v1/sessions/{session_id}": {"get": {}, "delete": {}},
    "/v1x/other": {"get": {}},
}}


def test_only_v1_operations_are_attacked_with_path_parameters_filled() -> None:
    assert v1_endpoints(OPENAPI) == [("GET", "/v1/sessions/probe0"), ("DELETE", "/v1/sessions/probe0"),
                                     ("POST", "/v1/tts")]


@pytest.mark.parametrize(("attack", "answers", "ok", "text"), [
    ("forged", {"POST /v1/tts": 401, "GET /v1/x": 401}, True, "refused with 401 by all 2"),
    ("expired", {"POST /v1/tts": 401, "GET /v1/x": 200}, False, "not refused by ['GET /v1/x']"),
    ("valid", {"POST /v1/tts": 403, "GET /v1/x": 422}, True, "passed authentication on all 2"),
    ("valid", {"POST /v1/tts": 401}, False, "a valid token was refused"),
    ("no_token", {}, False, "no /v1 endpoint"),
])
def test_attacks_are_judged_from_every_answer(attack: str, answers: dict[str, int], ok: bool, text: str) -> None:
    verdict, message = sec.judge_attack(attack, answers)
    assert verdict is ok and text in message


HARDENED: dict[str, Any] = {
    "Config": {"User": "10001:10001", "Healthcheck": {"Test": ["CMD", "true"]}},
    "HostConfig": {"CapDrop": ["ALL"], "ReadonlyRootfs": True, "Privileged": False,
                   "LogConfig": {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}},
                   "SecurityOpt": ["no-new-privileges:true"], "PidsLimit": 256, "Memory": 1 << 30,
                   "NanoCpus": 10**9},
    "Mounts": [{"Source": "/var/lib/mlstack/chat/secrets", "Destination": "/run/secrets"}],
}


def test_a_hardened_container_has_no_findings() -> None:
    assert sec.hardening_findings(HARDENED) == {}


@pytest.mark.parametrize(("change", "rule"), [
    ({"Config": {"User": "", "Healthcheck": {"Test": ["CMD", "true"]}}}, "non_root"),
    ({"Config": {"User": "0:0", "Healthcheck": {"Test": ["CMD", "true"]}}}, "non_root"),
    ({"Config": {"User": "1:1"}}, "healthcheck"),
    ({"HostConfig": {**HARDENED["HostConfig"], "Privileged": True}}, "not_privileged"),
    ({"HostConfig": {**HARDENED["HostConfig"], "CapDrop": None}}, "cap_drop_all"),
    ({"HostConfig": {**HARDENED["HostConfig"], "ReadonlyRootfs": False}}, "read_only_root"),
    ({"HostConfig": {**HARDENED["HostConfig"], "SecurityOpt": ["no-new-privileges:false"]}}, "no_new_privileges"),
    ({"HostConfig": {**HARDENED["HostConfig"], "PidsLimit": -1}}, "pids_limit"),
    ({"HostConfig": {**HARDENED["HostConfig"], "LogConfig": {"Type": "json-file", "Config": {}}}}, "log_rotation"),
    ({"HostConfig": {**HARDENED["HostConfig"], "Memory": 0}}, "memory_limit"),
    ({"HostConfig": {**HARDENED["HostConfig"], "NanoCpus": 0}}, "cpu_limit"),
    ({"Mounts": [{"Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock"}]}, "no_docker_socket"),
])
def test_each_broken_setting_is_named(change: dict[str, Any], rule: str) -> None:
    findings = sec.hardening_findings({**HARDENED, **change})
    assert rule in findings
    assert sec.hardening_findings({**HARDENED, **change}, exceptions=[rule]).get(rule) is None


def test_leaks_name_the_secret_and_the_file_never_the_value(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    (secrets / "redis").mkdir(parents=True)
    (secrets / "redis" / "admin").write_text("A" * 40 + "\n")
    (secrets / "jwt").mkdir()
    (secrets / "jwt" / "signing.pem").write_text("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIPrivateBody\n"
                                                 "-----END PRIVATE KEY-----\n")
    (secrets / "jwt" / "signing.pub.pem").write_text("-----BEGIN PUBLIC KEY-----\nPUBLICPUBLICPUBLICPUBLIC\n-----END")
    values = sec.secret_values(secrets)
    assert sorted(values) == ["jwt/signing.pem", "redis/admin"]
    found = sec.leaks(values, {"log": "x " + "A" * 40 + " y", "bundle": "PUBLICPUBLICPUBLICPUBLIC",
                               "other": "MC4CAQAwBQYDK2VwBCIEIPrivateBody"})
    assert found == {"log": ["redis/admin"], "other": ["jwt/signing.pem"]}


@pytest.mark.parametrize(("bindings", "declared", "ok"), [
    ({"8007/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8007"}]}, [8007], True),
    ({}, [], True),
    (None, [None], True),
    ({"5432/tcp": [{"HostIp": "0.0.0.0", "HostPort": "5432"}]}, [], False),
    ({"8007/tcp": [{"HostIp": "", "HostPort": "8007"}], "9000/tcp": [{"HostPort": "9000"}]}, ["8007"], False),
    ({}, [8006], False),
])
def test_published_ports_are_exactly_the_declared_ones(bindings: Any, declared: list[Any], ok: bool) -> None:
    inspect = {**HARDENED, "HostConfig": {**HARDENED["HostConfig"], "PortBindings": bindings}}
    findings = sec.hardening_findings(inspect, host_ports=declared)
    assert ("published_ports" not in findings) is ok
    # Without the declaration the rule is not judged at all.
    assert "published_ports" not in sec.hardening_findings(inspect)


def test_publish_all_and_host_network_are_findings() -> None:
    host = {**HARDENED["HostConfig"], "PublishAllPorts": True, "NetworkMode": "host"}
    findings = sec.hardening_findings({**HARDENED, "HostConfig": host}, host_ports=[])
    assert "PublishAllPorts" in findings["published_ports"]
    assert "no_host_network" in findings


def test_a_signed_jwt_in_a_text_is_a_leak_whatever_key_signed_it() -> None:
    from ansible_collections.aiops.mlstack.plugins.plugin_utils import _jwt

    token, _exp = _jwt.mint(_jwt.throwaway_private_pem(), "operator", "chat", ["chat:complete"], 60)
    found = sec.leaks({}, {"log": f"Authorization: Bearer {token}", "bundle": "eyJhbGciOi is a prefix only",
                           "report": "the token was registered under no_log"})
    assert found == {"log": [sec.JWT_LEAK]}
    assert sec.leaks({}, {"log": token}, tokens=False) == {}
