"""Property-based fuzzing of every unit against its own OpenAPI document (schemathesis, in-process ASGI).

Each unit runs with the stand-ins its own tests use (FakeRedis, FakeTranscriptStore, FakeLLM and
FakeReasoning over real localhost HTTP, the in-memory PostgreSQL stores, stand-in units behind the
gateway) and with its real engines (espeak-ng, pocketsphinx, the ONNX embedding model, FalkorDB
embedded, qdrant-client's local mode). Every operation of the document gets ``EXAMPLES`` requests
that fit the document and ``EXAMPLES`` that do not, the same ones on every run (derandomized, no
shrinking, no example database), sent with a valid token holding the unit's scopes. Each answer must
not be a 5xx and must conform to the document: status, content type, declared headers, body schema.
Then every /v1 operation is sent without a token, with a token signed by another key and with a
token lacking its scope: 401 (with WWW-Authenticate) or 403, again as the document declares.

A run prints its figures (operations x examples, seconds) per unit. ``MLSTACK_FUZZ_EXAMPLES``
changes the number of examples (the fuzz stage of scripts/test keeps the default).
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (the [test] extra)")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from fakes import FakeLLM, FakeReasoning, FakeRedis, FakeTranscriptStore, serve  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from mlstack_services.app import create_app  # noqa: E402
from mlstack_services.memory_store import FalkorEmbedded, Graph  # noqa: E402
from mlstack_services.metrics import Registry  # noqa: E402
from mlstack_services.settings import Settings  # noqa: E402
from mlstack_services.stt_worker import SttWorker  # noqa: E402
from mlstack_services.unit import Unit  # noqa: E402
from mlstack_services.units import (  # noqa: E402
    chat,
    coordination,
    learning,
    memory,
    perception,
    reasoning,
    thinking,
    voice,
)
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.python.asgi import shutdown_lifespans  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_coordination import FakeUnits  # noqa: E402
from test_learning import MemoryFeedback  # noqa: E402
from test_thinking import MemoryThoughts  # noqa: E402

Mint = Callable[..., str]
EXAMPLES = int(os.environ.get("MLSTACK_FUZZ_EXAMPLES", "30"))
REQUEST_TIMEOUT_S = 120
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
UNITS = ["voice-interaction", "chat", "coordination", "memory", "learning", "perception", "sequential-thinking",
         "reasoning"]
Builder = Callable[[Settings, Registry], Unit]


@pytest.fixture(scope="module")
def neighbours() -> Iterator[dict[str, str]]:
    """The stand-in services the units reach over localhost HTTP, by the URL variable that names them."""
    units = FakeUnits()
    with ExitStack() as stack:
        yield {"LLM_URL": stack.enter_context(serve(FakeLLM().app)),
               "REASONING_URL": stack.enter_context(serve(FakeReasoning().app)),
               "VOICE_INTERACTION_URL": stack.enter_context(serve(units.voice)),
               "CHAT_URL": stack.enter_context(serve(units.chat))}


@contextmanager
def unit_app(unit: str, settings_for: Callable[..., Settings], urls: dict[str, str], tmp_path: Path,
             engine: SttWorker, embedder: Any, speech: tuple[Any, Any] = (None, None)) -> Iterator[Any]:
    """The unit's app wired to its stand-ins; what it started is stopped on leaving."""
    env = {"LLM_URL": urls["LLM_URL"], "DATA_DIR": str(tmp_path)}
    if unit == "chat":
        env["REASONING_URL"] = urls["REASONING_URL"]
    if unit == "coordination":
        env = {name: urls[name] for name in ("VOICE_INTERACTION_URL", "CHAT_URL")}
    builders: dict[str, Builder] = {
        "voice-interaction": lambda s, r: voice.build(s, r, redis=FakeRedis(), engine=engine, whisper=speech[0],
                                                         piper=speech[1]),
        "chat": lambda s, r: chat.build(s, r, redis=FakeRedis(), transcripts=FakeTranscriptStore()),
        "coordination": coordination.build,
        "memory": lambda s, r: memory.build(s, r, embedder=embedder, graph=Graph(FalkorEmbedded(
            s.data_dir, socket_dir=f"/tmp/mlstack-fuzz-falkor-{uuid.uuid4().hex[:8]}"))),
        "learning": lambda s, r: learning.build(s, r, store=MemoryFeedback()),
        "perception": lambda s, r: perception.build(s, r, embedder=embedder),
        "sequential-thinking": lambda s, r: thinking.build(s, r, store=MemoryThoughts()),
        "reasoning": reasoning.build,
    }
    app = create_app(settings_for(unit, **env), builders[unit])
    try:
        yield app
    finally:
        shutdown_lifespans()  # schemathesis started the app's lifespan with its first request


def scopes_of(operation: Any) -> list[str]:
    requirements = operation.definition.raw.get("security") or [{}]
    return sorted({scope for requirement in requirements for scopes in requirement.values() for scope in scopes})


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str], statuses: Counter[int]) -> str | None:
    """EXAMPLES requests of ``mode`` to ``operation``; the first failure's report, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        # Conformance, not speed: piper reading 4096 fuzzed characters on a busy CI machine took over
        # schemathesis's default 10 s; speed is benchmarks/' business.
        response = case.call(headers=headers, timeout=REQUEST_TIMEOUT_S)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    except Unsatisfiable:
        # Negative mode with nothing to break (a free-form string path parameter and no security): no case.
        return None
    except (Exception, FailureGroup) as exc:  # failed checks, or the request could not be made at all
        return f"{operation.label} [{mode.value}]: {type(exc).__name__}: {exc}"
    return None


def auth_failures(operation: Any, unit: str, mint: Mint) -> list[str]:
    """One request that fits the document, sent three ways a caller gets refused; each answer as declared."""
    scopes = scopes_of(operation)
    if not scopes:
        return []
    stranger = Ed25519PrivateKey.generate()
    refusals = {
        "no token": ({}, 401),
        "token signed by another key": ({"Authorization": f"Bearer {mint(' '.join(scopes), unit, key=stranger)}"},
                                        401),
        "token without the scope": ({"Authorization": f"Bearer {mint('other:scope', unit)}"}, 403),
    }
    problems: list[str] = []
    seen: list[Any] = []

    @given(case=operation.as_strategy())
    @settings(max_examples=1, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def first(case: Any) -> None:
        seen.append(case)

    first()
    case = seen[0]
    for name, (headers, expected) in refusals.items():
        try:
            response = case.call(headers=headers, timeout=REQUEST_TIMEOUT_S)
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, FailureGroup) as exc:  # FailureGroup is a BaseExceptionGroup
            problems.append(f"{operation.label} ({name}): {type(exc).__name__}: {exc}")
            continue
        if response.status_code != expected:
            problems.append(f"{operation.label} ({name}): {response.status_code}, expected {expected}")
        elif expected == 401 and "www-authenticate" not in {k.lower() for k in response.headers}:
            problems.append(f"{operation.label} ({name}): 401 without WWW-Authenticate")
    return problems


@pytest.mark.parametrize("unit", UNITS)
def test_every_answer_conforms_to_the_units_openapi_document(
        unit: str, settings_for: Callable[..., Settings], neighbours: dict[str, str], tmp_path: Path,
        engine: SttWorker, embedder: Any, mint: Mint, whisper: Any, piper: Any) -> None:
    started = time.perf_counter()
    with unit_app(unit, settings_for, neighbours, tmp_path, engine, embedder, (whisper, piper)) as app:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        all_scopes = sorted({scope for op in operations for scope in scopes_of(op)})
        valid = {"Authorization": f"Bearer {mint(' '.join(all_scopes), unit)}"}
        failures: list[str] = []
        statuses: Counter[int] = Counter()
        for operation in operations:
            raw = operation.definition.raw
            # Negative examples need something to break: a parameter or a body.
            modes = [GenerationMode.POSITIVE]
            if raw.get("parameters") or "requestBody" in raw:
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                failure = fuzz(operation, mode, valid, statuses)
                if failure:
                    failures.append(failure)
            failures.extend(auth_failures(operation, unit, mint))
    elapsed = time.perf_counter() - started
    print(f"\nfuzz {unit}: {len(operations)} operations x {EXAMPLES} examples (positive; negative too where an "
          f"operation has parameters or a body), 3 auth refusals per /v1 operation: {sum(statuses.values())} "
          f"requests in {elapsed:.1f} s, answers {dict(sorted(statuses.items()))}, {len(failures)} failures")
    assert not failures, "\n\n".join(failures)
