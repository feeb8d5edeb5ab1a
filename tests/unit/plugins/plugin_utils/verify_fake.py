"""A resolved unit, its container's inspect data and a service's /ready answer, for the tests of
aiops.mlstack.unit_verify (test_verify.py, test_unit_verify_action.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class FakeService(BaseHTTPRequestHandler):
    """A service's HTTP answers by path (``answers``; ``default`` for any other path), and the
    paths it was asked (``seen``). :func:`serving` gives each server its own subclass."""

    answers: dict[str, tuple[int, Any]] = {}
    default: tuple[int, Any] = (404, {"detail": "not found"})
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self.seen.append(self.path)
        status, body = self.answers.get(self.path, self.default)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serving(answers: dict[str, tuple[int, Any]],
            default: tuple[int, Any] = FakeService.default) -> Iterator[tuple[int, type[FakeService]]]:
    """A real HTTP server on a free loopback port, in a thread, for the duration of the block."""
    handler = type("Service", (FakeService,), {"answers": answers, "default": default, "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1], handler
    finally:
        httpd.shutdown()
        httpd.server_close()
