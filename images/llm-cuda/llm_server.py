"""llama-cpp-python's OpenAI-compatible server, plus the service contract's /health and /ready.

The server's own routes take the model lock (llama_cpp.server.app.get_llama_proxy), so a probe
of /v1/models waits for the generation in progress, and with ``interrupt_requests`` (its
default, off in llm-server.sh) cuts a stream short. These two routes never take the lock: the
model is loaded before the server listens (create_app builds the proxy and loads the default
model), so answering at all proves the unit can serve.
"""

from __future__ import annotations

from typing import Any

import llama_cpp.server.__main__ as server
from llama_cpp.server import app as server_app

_create_app = server.create_app


def _models() -> list[str]:
    # Read without the lock: the aliases are fixed once the proxy exists.
    proxy = getattr(server_app, "_llama_proxy", None)
    return list(proxy) if proxy is not None else []


def create_app(*args: Any, **kwargs: Any) -> Any:
    app = _create_app(*args, **kwargs)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "unit": "llm", "models": _models()}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> dict[str, Any]:
        models = _models()
        return {"ready": bool(models), "unit": "llm", "degraded": [],
                "checks": {"model": {"ok": bool(models), "reason": f"loaded: {', '.join(models) or 'none'}"}}}

    return app


if __name__ == "__main__":
    server.create_app = create_app
    server.main()
