"""A resolved unit, its container's inspect data and a service's /ready answer, for the tests of
aiops.mlstack.unit_verify (test_verify.py, test_unit_verify_action.py)."""

from __future__ import annotations

from typing import Any

READY = {"ready": True, "backends": {"vector": "qdrant server http://qdrant:6333", "graph": "embedded"},
         "checks": {"jwt": {"ok": True}, "vector": {"ok": True}, "graph": {"ok": True}}}


def make_unit(role: str = "ml_service", port: int = 8000, **over: Any) -> dict[str, Any]:
    unit = {"name": "chat", "kind": "service", "role": role, "port": port, "host_port": None,
            "container": "mlstack-chat", "holder": "mlstack-chat-port", "backend_network": "mlstack_backend",
            "health_path": "/health", "latency_bound_ms": None, "security_exceptions": {}, "secrets_dir": "/nowhere",
            "vault_password_file": "", "critical": True, "strict": False, "app": None, "metrics_path": "/metrics",
            "docker_url": "unix:///var/run/docker.sock"}
    return {**unit, **over}


def make_inspect(health: str | None = "healthy", running: bool = True, **host: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"Running": running, "Status": "running" if running else "exited"}
    if health is not None:
        state["Health"] = {"Status": health}
    return {
        "State": state,
        "Config": {"User": "10001:10001", "Image": "mlstack/services:1", "Labels": {},
                   "Healthcheck": {"Test": ["CMD", "true"]}, "Env": ["MLSTACK_FORWARD=chat:8000", "PATH=/bin"]},
        "HostConfig": {"CapDrop": ["ALL"], "ReadonlyRootfs": True, "Privileged": False,
                       "SecurityOpt": ["no-new-privileges:true"], "PidsLimit": 256, "Memory": 2**30,
                       "NanoCpus": 10**9, "NetworkMode": "mlstack_backend", "PortBindings": {},
                       "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}, **host},
        "NetworkSettings": {"Networks": {"mlstack_backend": {"IPAddress": "127.0.0.1"}}},
        "Mounts": [],
    }
