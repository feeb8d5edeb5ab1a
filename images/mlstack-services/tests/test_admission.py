"""Admission control past saturation: N running, M waiting, the rest refused at once with 429
and Retry-After; /health answers throughout. Statuses and counts only, never timings: the
held fakes keep admitted work running for as long as a test looks, so nothing depends on speed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fakes import FakeRedis, FakeTranscriptStore, HeldFakeEspeak, HeldFakeLLM, serve
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from helpers import bearer, needs_espeak
from mlstack_services.admission import Gate, Refused
from mlstack_services.app import create_app
from mlstack_services.metrics import Registry
from mlstack_services.settings import ConfigError, Settings
from mlstack_services.stt_worker import SttWorker
from mlstack_services.unit import Unit
from mlstack_services.units import chat, coordination, voice

Mint = Callable[..., str]
BOUND_S = 30  # the most any wait in these tests may take before the test fails instead of hanging


# --- the gate itself -------------------------------------------------------------------------


def test_gate_runs_n_queues_m_and_refuses_the_rest_at_once() -> None:
    async def scenario() -> None:
        gate = Gate("work", concurrency=2, queue=1, wait_s=BOUND_S)
        await gate.acquire()
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        assert (gate.in_flight, gate.waiting) == (2, 1)
        with pytest.raises(Refused) as refused:
            await gate.acquire()  # no await on a slot: refused before any wait
        assert refused.value.reason == "queue_full" and refused.value.retry_after_s >= 1
        gate.release(0.5)  # handed to the waiter: still two running, none waiting
        await asyncio.wait_for(waiter, BOUND_S)
        assert (gate.in_flight, gate.waiting) == (2, 0)
        gate.release(0.5)
        gate.release(0.5)
        assert (gate.in_flight, gate.waiting) == (0, 0)

    asyncio.run(scenario())


def test_gate_refuses_a_wait_that_runs_out_and_frees_its_place() -> None:
    async def scenario() -> None:
        gate = Gate("work", concurrency=1, queue=1, wait_s=0.05)
        await gate.acquire()
        with pytest.raises(Refused) as refused:
            await gate.acquire()
        assert refused.value.reason == "wait_timeout"
        assert (gate.in_flight, gate.waiting) == (1, 0)
        gate.release()
        assert gate.in_flight == 0

    asyncio.run(scenario())


def test_gate_a_cancelled_waiter_leaves_the_line_and_slots_are_not_lost() -> None:
    async def scenario() -> None:
        gate = Gate("work", concurrency=1, queue=1, wait_s=BOUND_S)
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gate.waiting == 0
        gate.release()
        assert gate.in_flight == 0
        await asyncio.wait_for(gate.acquire(), BOUND_S)  # the slot is there to take
        assert gate.in_flight == 1

    asyncio.run(scenario())


@pytest.mark.parametrize(("concurrency", "held_s", "holders", "expected"), [
    (1, None, 0, 1),      # nothing measured yet: 1 s a request
    (1, 2.0, 1, 4),       # one running and the newcomer, 2 s each
    (2, 2.0, 2, 3),       # two slots share the backlog
    (1, 100.0, 1, 60),    # capped: a client should look again within a minute
])
def test_gate_retry_after_follows_the_backlog(concurrency: int, held_s: float | None, holders: int,
                                             expected: int) -> None:
    async def scenario() -> int:
        gate = Gate("work", concurrency=concurrency, queue=0, wait_s=1)
        if held_s is not None:
            await gate.acquire()
            gate.release(held_s)
        for _ in range(holders):
            await gate.acquire()
        return gate.retry_after_s()

    assert asyncio.run(scenario()) == expected


def test_admission_settings_have_defaults_and_bounds() -> None:
    base = {"MLSTACK_UNIT": "chat"}
    settings = Settings.from_env(base)
    assert (settings.admission_concurrency, settings.admission_queue, settings.admission_wait_s) == (2, 6, 15)
    chosen = Settings.from_env({**base, "ADMISSION_CONCURRENCY": "4", "ADMISSION_QUEUE": "0",
                                "ADMISSION_WAIT_S": "5"})
    assert (chosen.admission_concurrency, chosen.admission_queue, chosen.admission_wait_s) == (4, 0, 5)
    for name, value in (("ADMISSION_CONCURRENCY", "0"), ("ADMISSION_QUEUE", "-1"), ("ADMISSION_WAIT_S", "x")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({**base, name: value})


# --- a unit under overload, over real HTTP ---------------------------------------------------


@contextmanager
def voice_served(settings_for: Callable[..., Settings], espeak: Any, engine: SttWorker, **env: str) -> Iterator[str]:
    def builder(s: Settings, registry: Registry) -> Unit:
        return voice.build(s, registry, redis=FakeRedis(), espeak=espeak, engine=engine)

    with serve(create_app(settings_for("voice-interaction", **env), builder)) as url:
        yield url


def metric(text: str, line_start: str) -> float:
    return float(next(line for line in text.splitlines() if line.startswith(line_start)).rsplit(" ", 1)[1])


def assert_refusal(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error" and error["status"] == 429
    assert "at capacity" in error["message"]


def test_overloaded_voice_refuses_past_n_plus_m_at_once_and_stays_healthy(
        settings_for: Callable[..., Settings], engine: SttWorker, mint: Mint) -> None:
    espeak = HeldFakeEspeak()
    auth = bearer(mint("voice:tts"))
    with voice_served(settings_for, espeak, engine, ADMISSION_CONCURRENCY="1", ADMISSION_QUEUE="2") as url, \
            httpx.Client(base_url=url, timeout=BOUND_S) as client, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client.post, "/v1/tts", json={"text": f"hello {i}", "engine": "espeak-ng"},
                               headers=auth) for i in range(8)]
        # 1 runs, 2 wait, 5 are refused while the held synthesis is still running: their
        # answers arrive before anything is released (as_completed fails the test past BOUND_S).
        refused = []
        for future in as_completed(futures, timeout=BOUND_S):
            refused.append(future.result())
            if len(refused) == 5:
                break
        for response in refused:
            assert_refusal(response)
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        metrics = client.get("/metrics").text
        assert metric(metrics, 'mlstack_admission_in_flight{gate="speech"}') == 1
        assert metric(metrics, 'mlstack_admission_queued{gate="speech"}') == 2
        assert metric(metrics, 'mlstack_admission_refused_total{gate="speech",reason="queue_full"}') == 5
        assert metric(metrics, 'mlstack_admission_capacity{gate="speech",kind="queue"}') == 2
        assert espeak.started == 1
        espeak.release.set()
        statuses = [f.result(timeout=BOUND_S).status_code for f in futures]
        assert statuses.count(200) == 3 and statuses.count(429) == 5
        assert espeak.started == 3
        after = client.get("/metrics").text
        assert metric(after, 'mlstack_admission_in_flight{gate="speech"}') == 0
        assert metric(after, 'mlstack_admission_admitted_total{gate="speech"}') == 3


def test_a_queued_request_is_refused_when_its_wait_runs_out(
        settings_for: Callable[..., Settings], engine: SttWorker, mint: Mint) -> None:
    espeak = HeldFakeEspeak()
    auth = bearer(mint("voice:tts"))
    with voice_served(settings_for, espeak, engine, ADMISSION_CONCURRENCY="1", ADMISSION_QUEUE="1",
                      ADMISSION_WAIT_S="1") as url, \
            httpx.Client(base_url=url, timeout=BOUND_S) as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/v1/tts", json={"text": "first", "engine": "espeak-ng"}, headers=auth)
        while espeak.started == 0 and not first.done():
            threading.Event().wait(0.01)
        second = client.post("/v1/tts", json={"text": "second", "engine": "espeak-ng"}, headers=auth)
        assert_refusal(second)
        assert "within 1 s" in second.json()["error"]["message"]
        metrics = client.get("/metrics").text
        assert metric(metrics, 'mlstack_admission_refused_total{gate="speech",reason="wait_timeout"}') == 1
        assert metric(metrics, 'mlstack_admission_queued{gate="speech"}') == 0
        espeak.release.set()
        assert first.result(timeout=BOUND_S).status_code == 200


def test_ungated_paths_and_refused_tokens_never_take_a_place(
        settings_for: Callable[..., Settings], engine: SttWorker, mint: Mint) -> None:
    espeak = HeldFakeEspeak()
    with voice_served(settings_for, espeak, engine, ADMISSION_CONCURRENCY="1", ADMISSION_QUEUE="0") as url, \
            httpx.Client(base_url=url, timeout=BOUND_S) as client, ThreadPoolExecutor(1) as pool:
        held = pool.submit(client.post, "/v1/tts", json={"text": "held", "engine": "espeak-ng"},
                           headers=bearer(mint("voice:tts")))
        while espeak.started == 0 and not held.done():
            threading.Event().wait(0.01)
        assert client.post("/v1/tts", json={"text": "no token"}).status_code == 401
        assert client.post("/v1/sessions", json={}, headers=bearer(mint("voice:session"))).status_code == 201
        assert client.get("/ready").status_code in (200, 503)  # answered, whatever the fake Redis says
        assert_refusal(client.post("/v1/tts", json={"text": "over", "engine": "espeak-ng"},
                                   headers=bearer(mint("voice:tts"))))
        espeak.release.set()
        assert held.result(timeout=BOUND_S).status_code == 200


@needs_espeak
def test_real_espeak_burst_past_capacity_gets_429s_and_the_rest_succeed(
        settings_for: Callable[..., Settings], engine: SttWorker, mint: Mint) -> None:
    auth = bearer(mint("voice:tts"))
    text = "The quick brown fox jumps over the lazy dog near the river bank. " * 15
    burst = 12
    with voice_served(settings_for, None, engine, ADMISSION_CONCURRENCY="1", ADMISSION_QUEUE="1") as url:
        clients = [httpx.Client(base_url=url, timeout=BOUND_S) for _ in range(burst)]
        try:
            for client in clients:
                assert client.get("/health").status_code == 200  # connections open before the burst
            start = threading.Barrier(burst)

            def one(client: httpx.Client) -> httpx.Response:
                start.wait(BOUND_S)
                return client.post("/v1/tts", json={"text": text, "engine": "espeak-ng"}, headers=auth)

            with ThreadPoolExecutor(burst) as pool:
                futures: list[Future[httpx.Response]] = [pool.submit(one, c) for c in clients]
                health = clients[0].get("/health")
                responses = [f.result(timeout=BOUND_S) for f in futures]
        finally:
            for client in clients:
                client.close()
    assert health.status_code == 200
    ok = [r for r in responses if r.status_code == 200]
    busy = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(busy) == burst, [r.status_code for r in responses]
    assert ok and busy  # at most 2 of 12 simultaneous requests admitted at first
    assert all(r.content[:4] == b"RIFF" for r in ok)
    for response in busy:
        assert_refusal(response)


def test_a_chat_stream_holds_its_slot_to_the_last_chunk(
        settings_for: Callable[..., Settings], mint: Mint) -> None:
    llm = HeldFakeLLM()
    auth = bearer(mint("chat:complete", audience="chat"))
    body = {"stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with serve(llm.app) as llm_url:
        settings = settings_for("chat", LLM_URL=llm_url, ADMISSION_CONCURRENCY="1", ADMISSION_QUEUE="0")

        def builder(s: Settings, registry: Registry) -> Unit:
            return chat.build(s, registry, redis=FakeRedis(), transcripts=FakeTranscriptStore())

        with serve(create_app(settings, builder)) as url, httpx.Client(base_url=url, timeout=BOUND_S) as client:
            with client.stream("POST", "/v1/chat/completions", json=body, headers=auth) as stream:
                assert stream.status_code == 200
                lines = stream.iter_lines()
                assert "held" in next(line for line in lines if line.startswith("data: "))
                # The stream has sent a chunk and is still open: its slot is taken.
                assert_refusal(client.post("/v1/chat/completions", json=body, headers=auth))
                assert client.get("/health").status_code == 200
                llm.release.set()
                rest = [line for line in lines if line.startswith("data: ")]
                assert rest[-1] == "data: [DONE]"
            with client.stream("POST", "/v1/chat/completions", json=body, headers=auth) as again:
                assert again.status_code == 200
                assert [line for line in again.iter_lines() if line.startswith("data: ")][-1] == "data: [DONE]"


def test_a_503_says_when_to_come_back(chat_app: Callable[..., TestClient], mint: Mint) -> None:
    with chat_app() as client:  # no LLM_URL: the llm unit cannot be reached
        response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                               headers=bearer(mint("chat:complete", audience="chat")))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


# --- the gateway passes a busy unit's answer on ---------------------------------------------


@pytest.fixture(scope="module")
def busy_chat() -> Iterator[str]:
    """A stand-in for a chat unit past saturation: every completion is refused with 429."""
    app = FastAPI()
    app.get("/health")(lambda: {"status": "ok"})

    @app.post("/v1/chat/completions")
    async def refuse() -> JSONResponse:
        return JSONResponse({"error": {"message": "busy", "type": "rate_limit_error", "status": 429}},
                            status_code=429, headers={"Retry-After": "7"})

    with serve(app) as url:
        yield url


def test_gateway_pipeline_and_routes_pass_a_busy_units_429_and_retry_after(
        settings_for: Callable[..., Settings], mint: Mint, busy_chat: str) -> None:
    settings = settings_for("coordination", CHAT_URL=busy_chat)

    def builder(s: Settings, registry: Registry) -> Unit:
        return coordination.build(s, registry)

    token = mint("coordination:pipeline coordination:route chat:complete", audience=["coordination", "chat"])
    with TestClient(create_app(settings, builder)) as client:
        pipeline = client.post("/v1/pipeline/voice-chat", json={"text": "hello"}, headers=bearer(token))
        routed = client.post("/v1/chat/chat/completions", json={"messages": []}, headers=bearer(token))
    assert pipeline.status_code == 429 and pipeline.headers["retry-after"] == "7"
    assert pipeline.json()["error"]["type"] == "rate_limit_error"
    assert routed.status_code == 429 and routed.headers["retry-after"] == "7"
