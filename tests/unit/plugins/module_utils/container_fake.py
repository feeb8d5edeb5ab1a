"""An in-memory Docker behind the container task's ``Engine`` seam, shared by the container tests."""

from __future__ import annotations

import json
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils import _container as ctr


class FakeEngine:
    """An in-memory Docker: containers are inspect-shaped dicts; health follows a script."""

    def __init__(self, images: dict[str, str] | None = None) -> None:
        self.images = images or {"img:1": "sha256:aaa"}
        self.containers: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        # name -> health states returned on successive inspects once running
        self.health_script: dict[str, list[str]] = {}
        self.created: list[dict[str, Any]] = []
        self.volumes: set[str] = set()

    def inspect(self, name: str) -> dict[str, Any] | None:
        c = self.containers.get(name)
        if c is None:
            return None
        script = self.health_script.get(c["Config"]["Image"])
        if c["State"]["Running"] and script:
            status = script.pop(0) if len(script) > 1 else script[0]
            # "unhealthy-slow": unhealthy because the probes ran out of time (a busy host), as
            # Docker words it; any other status is a probe that failed at once.
            output = "Health check exceeded timeout (10s)" if status.endswith("-slow") else f"probe said {status}"
            c["State"]["Health"] = {"Status": status.removesuffix("-slow"), "Log": [{"Output": output}]}
        return json.loads(json.dumps(c))

    def image_id(self, image: str) -> str | None:
        return self.images.get(image)

    def create(self, kwargs: dict[str, Any], extra_networks: list[dict[str, Any]]) -> None:
        self.calls.append(("create", kwargs["name"]))
        assert kwargs["name"] not in self.containers, "create over an existing container"
        self.created.append(kwargs)
        self.containers[kwargs["name"]] = {
            "Name": "/" + kwargs["name"], "Image": self.images.get(kwargs["image"]), "Created": "t0",
            "Mounts": [{"Type": "volume", "Name": v.split(":")[0]} for v in kwargs.get("volumes") or []
                       if not v.startswith("/")],
            "Config": {"Image": kwargs["image"], "Labels": kwargs["labels"]},
            "HostConfig": {"PortBindings": dict(kwargs.get("ports") or {}),
                           "RestartPolicy": kwargs.get("restart_policy")},
            "State": {"Running": False, "Health": {"Status": "healthy", "Log": []}},
            "NetworkSettings": {"Networks": {net: {"IPAddress": "172.18.0.9"} for net in
                                             [kwargs.get("network", "bridge")] + [n["name"] for n in extra_networks]}},
        }

    def start(self, name: str) -> None:
        self.calls.append(("start", name))
        self.containers[name]["State"]["Running"] = True

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        del self.containers[name]

    def stop_and_rename(self, name: str, new_name: str) -> None:
        self.calls.append(("stop_and_rename", name))
        c = self.containers.pop(name)
        c["State"]["Running"] = False
        self.containers[new_name] = c

    def rename(self, name: str, new_name: str) -> None:
        self.calls.append(("rename", name))
        assert new_name not in self.containers, "rename over an existing container"
        self.containers[new_name] = self.containers.pop(name)

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))
        self.containers[name]["State"]["Running"] = False

    def take_aliases(self, name: str, networks: list[dict[str, Any]]) -> None:
        self.calls.append(("take_aliases", name))
        for net in networks:
            self.containers[name]["NetworkSettings"]["Networks"][net["name"]]["Aliases"] = net["aliases"]

    def set_restart_policy(self, name: str, policy: dict[str, Any] | None) -> None:
        self.calls.append(("set_restart_policy", name))
        self.containers[name]["HostConfig"]["RestartPolicy"] = policy

    def remove_volume(self, name: str) -> bool:
        self.calls.append(("remove_volume", name))
        return True

    def logs_tail(self, name: str, lines: int) -> str:
        return "log tail"


SPEC = {
    "image": "img:1",
    "env": {"A": "1"},
    "healthcheck": {"test": ["CMD", "true"], "interval": 1},
    "networks": [{"name": "backend", "aliases": ["redis"]}],
}


def deploy(engine: FakeEngine, spec: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """One container task for unit redis, as the module would run it."""
    request = ctr.Request(name="mlstack-redis", unit="redis", spec=SPEC if spec is None else spec, **kw)
    return ctr.run(engine, request)
