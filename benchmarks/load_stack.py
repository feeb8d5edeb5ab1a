"""One unit of a local stand-in stack for ``benchmarks/load.py --local``, on 127.0.0.1.

    PYTHONPATH=images/mlstack-services/src:images/mlstack-services/tests \\
        .venv-services/bin/python benchmarks/load_stack.py voice-interaction --port 18006

Runs with the services' venv (load.py starts it so). The unit's own code is the real one
(app, middleware, admission, auth, the unit's routes); its neighbours are the test fakes,
named as such: FakeRedis and FakeTranscriptStore for the databases, and ``fake-llm`` runs
SlowFakeLLM (one completion at a time, ``--token-delay`` per word) for the llm unit.
voice-interaction runs the real espeak-ng and pocketsphinx. Settings come from the
environment as in a container (JWT_PUBLIC_KEY_FILE, LLM_URL, <UNIT>_URL, ADMISSION_*).
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from fakes import FakeRedis, FakeTranscriptStore, SlowFakeLLM
from fastapi import FastAPI
from mlstack_services.app import create_app
from mlstack_services.metrics import Registry
from mlstack_services.settings import Settings
from mlstack_services.unit import Unit
from mlstack_services.units import chat, coordination, voice


def build(unit: str, port: int, token_delay_s: float) -> FastAPI:
    if unit == "fake-llm":
        fake = SlowFakeLLM(token_delay_s)
        fake.app.get("/health")(lambda: {"status": "ok", "unit": "fake-llm"})
        return fake.app
    settings = Settings.from_env({**os.environ, "MLSTACK_UNIT": unit, "PORT": str(port)})

    def builder(s: Settings, registry: Registry) -> Unit:
        if unit == "voice-interaction":
            return voice.build(s, registry, redis=FakeRedis())
        if unit == "chat":
            return chat.build(s, registry, redis=FakeRedis(), transcripts=FakeTranscriptStore())
        return coordination.build(s, registry)

    return create_app(settings, builder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("unit", choices=["fake-llm", "voice-interaction", "chat", "coordination"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-delay", type=float, default=0.02, help="fake-llm: seconds per streamed word")
    args = parser.parse_args()
    uvicorn.run(build(args.unit, args.port, args.token_delay), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
