"""Adopting a compose container: which declared settings it must already have."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils._compose_adopt import differences, is_compose_container
from ansible_collections.aiops.mlstack.plugins.module_utils._container_spec import normalize_spec

SPEC = normalize_spec({
    "image": "team/web:1", "command": ["http", "8080"], "env": {"GREETING": "hi"},
    "ports": {"8080/tcp": ["127.0.0.1", 18480]}, "volumes": ["rt_data:/data:rw"],
    "networks": [{"name": "rt_front", "aliases": ["web"]}],
    "healthcheck": {"test": ["CMD", "true"], "interval": 2.0, "timeout": 5.0, "retries": 10, "start_period": 5.0},
    "memory": "100663296", "cpus": 0.25, "pids_limit": 32, "restart_policy": "no", "read_only": True,
    "cap_drop": ["ALL"], "tmpfs": {"/tmp": ""},
    # The collection's additions, never compared.
    "security_opt": ["no-new-privileges:true"], "log_options": {"max-size": "10m"},
    "labels": {"io.mlstack.health-gate": "running"}})
COMPOSE: dict[str, Any] = {
    "Image": "sha256:web", "Name": "/rt-web-1", "State": {"Running": True},
    "Config": {"Cmd": ["http", "8080"], "Env": ["PATH=/usr/bin", "GREETING=hi"], "User": "10001:10001",
               "Labels": {"com.docker.compose.project": "rt", "com.docker.compose.service": "web"},
               "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000, "Timeout": 5_000_000_000,
                               "Retries": 10, "StartPeriod": 5_000_000_000}},
    "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18480"}]},
                   "Memory": 100663296, "NanoCpus": 250_000_000, "PidsLimit": 32, "RestartPolicy": {"Name": "no"},
                   "ReadonlyRootfs": True, "CapDrop": ["ALL"], "Tmpfs": {"/tmp": ""}, "DeviceRequests": None},
    "Mounts": [{"Type": "volume", "Name": "rt_data", "Destination": "/data", "RW": True}],
    "NetworkSettings": {"Networks": {"rt_front": {}}},
}


def test_a_container_compose_made_as_declared_is_adopted() -> None:
    assert differences(COMPOSE, SPEC, "sha256:web") == []
    assert is_compose_container(COMPOSE, "rt", "web") and not is_compose_container(COMPOSE, "rt", "api")


@pytest.mark.parametrize(("path", "value", "differs"), [
    (("Image",), "sha256:other", "image"),
    (("Config", "Cmd"), ["http", "9090"], "command"),
    (("Config", "Env"), ["GREETING=bye"], "env"),
    (("HostConfig", "PortBindings"), {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18480"}]}, "ports"),
    (("Mounts",), [], "volumes"),
    (("Config", "Healthcheck"), None, "healthcheck"),
    (("HostConfig", "Memory"), 0, "memory"),
    (("HostConfig", "NanoCpus"), 500_000_000, "cpus"),
    (("HostConfig", "PidsLimit"), None, "pids_limit"),
    (("HostConfig", "RestartPolicy"), {"Name": "always"}, "restart_policy"),
    (("HostConfig", "ReadonlyRootfs"), False, "read_only"),
    (("HostConfig", "CapDrop"), None, "cap_drop"),
    (("HostConfig", "Tmpfs"), {}, "tmpfs"),
    (("NetworkSettings", "Networks"), {"rt_back": {}}, "networks"),
])
def test_each_declared_setting_that_differs_is_named(path: tuple[str, ...], value: Any, differs: str) -> None:
    container = copy.deepcopy(COMPOSE)
    target = container
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert differences(container, SPEC, "sha256:web") == [differs]
