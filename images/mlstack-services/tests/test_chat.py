"""chat against FakeLLM / FakeReasoning (real HTTP on localhost), FakeRedis and FakeTranscriptStore."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes import FakeLLM, FakeReasoning, FakeRedis, FakeTranscriptStore, free_port, serve
from fastapi.testclient import TestClient
from helpers import bearer

Mint = Callable[..., str]
URL = "/v1/chat/completions"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[tuple[FakeLLM, str]]:
    llm = FakeLLM()
    with serve(llm.app) as url:
        yield llm, url


@pytest.fixture
def llm(fake_llm: tuple[FakeLLM, str]) -> FakeLLM:
    fake_llm[0].requests.clear()
    return fake_llm[0]


@pytest.fixture
def client(chat_app: Callable[..., TestClient], fake_llm: tuple[FakeLLM, str]) -> Iterator[TestClient]:
    with chat_app(LLM_URL=fake_llm[1]) as c:
        yield c


@pytest.fixture
def auth(mint: Mint) -> dict[str, str]:
    return bearer(mint("chat:complete", audience="chat"))


def ask(client: TestClient, auth: dict[str, str], text: str, **extra: Any) -> dict[str, Any]:
    response = client.post(URL, json={"model": "m", "messages": [{"role": "user", "content": text}], **extra},
                           headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def sse(body: str) -> list[Any]:
    events = [line[len("data: "):] for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_non_stream_has_the_openai_shape(client: TestClient, auth: dict[str, str], llm: FakeLLM) -> None:
    answer = ask(client, auth, "hello there")
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["role"] == "assistant"
    assert answer["choices"][0]["message"]["content"] == "FakeLLM heard 'hello there' after 0 prior turns"
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert {"prompt_tokens", "completion_tokens", "total_tokens"} <= set(answer["usage"])
    assert answer["mlstack"]["reasoning"] == "off"
    assert llm.requests[-1]["stream"] is False


def test_history_is_kept_in_redis_and_sent_with_the_next_turn(client: TestClient, auth: dict[str, str],
                                                              llm: FakeLLM, fake_redis: FakeRedis,
                                                              transcripts: FakeTranscriptStore) -> None:
    first = ask(client, auth, "my name is Ada", conversation_id="conv-1")
    assert first["mlstack"] == {"conversation_id": "conv-1", "reasoning": "off", "history_messages": 0,
                                "history": "saved", "transcript": "saved"}
    second = ask(client, auth, "what is my name?", conversation_id="conv-1")
    assert second["choices"][0]["message"]["content"].endswith("after 2 prior turns")
    assert second["mlstack"]["history_messages"] == 2
    sent = llm.requests[-1]["messages"]
    assert sent[0] == {"role": "user", "content": "my name is Ada"}
    assert sent[1]["role"] == "assistant" and "my name is Ada" in sent[1]["content"]
    key = "chat:conv:conv-1"
    assert [json.loads(m)["role"] for m in fake_redis.data[key]] == ["user", "assistant", "user", "assistant"]
    ttl = fake_redis.ttl_of(key)
    assert ttl is not None and 86000 < ttl <= 86400
    assert [(r["conversation_id"], r["role"]) for r in transcripts.rows] == [
        ("conv-1", "user"), ("conv-1", "assistant"), ("conv-1", "user"), ("conv-1", "assistant")]
    assert transcripts.rows[2]["content"] == "what is my name?"


def test_history_is_capped(chat_app: Callable[..., TestClient], fake_llm: tuple[FakeLLM, str],
                           auth: dict[str, str], fake_redis: FakeRedis) -> None:
    with chat_app(LLM_URL=fake_llm[1], CONVERSATION_MAX_MESSAGES="4") as client:
        for i in range(5):
            ask(client, auth, f"turn {i}", conversation_id="capped")
    items = [json.loads(m)["content"] for m in fake_redis.data["chat:conv:capped"]]
    assert len(items) == 4 and items[0] == "turn 3"


def test_without_conversation_id_an_id_is_made(client: TestClient, auth: dict[str, str],
                                               fake_redis: FakeRedis) -> None:
    answer = ask(client, auth, "hi")
    conversation_id = answer["mlstack"]["conversation_id"]
    assert len(conversation_id) == 32
    assert f"chat:conv:{conversation_id}" in fake_redis.data


def test_stream_proxies_sse_and_ends_with_done(client: TestClient, auth: dict[str, str], llm: FakeLLM,
                                               fake_redis: FakeRedis, transcripts: FakeTranscriptStore) -> None:
    body = {"messages": [{"role": "user", "content": "stream please"}], "stream": True, "conversation_id": "s1"}
    with client.stream("POST", URL, json=body, headers=auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    chunks = sse(text)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["mlstack"]["conversation_id"] == "s1"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == "FakeLLM heard 'stream please' after 0 prior turns"
    assert chunks[-1]["choices"] == [] and chunks[-1]["mlstack"]["history"] == "saved"
    assert llm.requests[-1]["stream"] is True
    saved = [json.loads(m) for m in fake_redis.data["chat:conv:s1"]]
    assert saved[-1] == {"role": "assistant", "content": content}
    assert transcripts.rows[-1]["content"] == content


def test_reasoning_degrades_when_the_unit_is_unreachable(chat_app: Callable[..., TestClient],
                                                         fake_llm: tuple[FakeLLM, str], auth: dict[str, str]) -> None:
    with chat_app(LLM_URL=fake_llm[1], REASONING_URL=f"http://127.0.0.1:{free_port()}") as client:
        answer = ask(client, auth, "why is the sky blue?", reasoning=True)
    assert answer["choices"][0]["message"]["content"]
    assert answer["mlstack"]["reasoning"].startswith("unavailable: cannot connect")


def test_reasoning_degrades_when_not_configured(client: TestClient, auth: dict[str, str]) -> None:
    answer = ask(client, auth, "why?", reasoning=True)
    assert answer["mlstack"]["reasoning"] == "unavailable: REASONING_URL is not set"


def test_reasoning_is_used_when_present(chat_app: Callable[..., TestClient], fake_llm: tuple[FakeLLM, str],
                                        auth: dict[str, str], llm: FakeLLM) -> None:
    reasoning = FakeReasoning()
    with serve(reasoning.app) as url, chat_app(LLM_URL=fake_llm[1], REASONING_URL=url) as client:
        answer = ask(client, auth, "what is six times seven?", reasoning=True)
    assert answer["mlstack"]["reasoning"] == "used"
    assert answer["mlstack"]["reasoning_steps"] == ["read the question", "think it over"]
    assert reasoning.requests == [{"question": "what is six times seven?"}]
    assert reasoning.authorization[0] == auth["Authorization"]
    system = llm.requests[-1]["messages"][0]
    assert system["role"] == "system" and "FakeReasoning says 42" in system["content"]


def test_stream_with_reasoning_unavailable_says_so_in_the_first_chunk(chat_app: Callable[..., TestClient],
                                                                      fake_llm: tuple[FakeLLM, str],
                                                                      auth: dict[str, str]) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "reasoning": True}
    with chat_app(LLM_URL=fake_llm[1], REASONING_URL=f"http://127.0.0.1:{free_port()}") as client:
        response = client.post(URL, json=body, headers=auth)
    chunks = sse(response.text)
    assert chunks[0]["mlstack"]["reasoning"].startswith("unavailable:")


def test_transcript_failure_does_not_fail_the_answer(client: TestClient, auth: dict[str, str],
                                                     transcripts: FakeTranscriptStore) -> None:
    transcripts.down = True
    answer = ask(client, auth, "still there?")
    assert answer["mlstack"]["transcript"].startswith("not saved:")


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"model": "m"}, 422, "messages"),
    ({"messages": []}, 422, "messages"),
    ({"messages": [{"role": "user", "content": ""}]}, 422, "empty"),
    ({"messages": [{"role": "user", "content": "   "}]}, 422, "empty"),
    ({"messages": [{"role": "system", "content": "be brief"}]}, 422, "user"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, 422, "role"),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": 5}, 422, "temperature"),
    ({"messages": [{"role": "user", "content": "hi"}], "conversation_id": "../etc"}, 422, "conversation_id"),
])
def test_bad_requests_are_4xx_with_a_message(client: TestClient, auth: dict[str, str], body: dict[str, Any],
                                             status: int, needle: str) -> None:
    response = client.post(URL, json=body, headers=auth)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]


def test_malformed_json_is_400_and_the_service_stays_up(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(URL, content=b'{"messages": [', headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["error"]["message"]
    assert client.get("/health").json() == {"status": "ok", "unit": "chat"}


def test_wrong_content_type_is_415(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(URL, content=b"hello", headers={**auth, "Content-Type": "text/plain"})
    assert response.status_code == 415


def test_a_nul_character_is_422_not_a_lost_transcript(client: TestClient, auth: dict[str, str],
                                                      transcripts: FakeTranscriptStore) -> None:
    """PostgreSQL cannot store U+0000: the answer came back but its transcript was silently not saved."""
    for content in ("a\x00b", [{"type": "text", "text": "a\x00b"}]):
        response = client.post(URL, json={"messages": [{"role": "user", "content": content}]}, headers=auth)
        assert response.status_code == 422 and "NUL" in response.json()["error"]["message"], response.text
    assert transcripts.rows == []


def test_missing_scope_is_403(client: TestClient, mint: Mint) -> None:
    token = mint("voice:tts", audience="chat")
    response = client.post(URL, json={"messages": [{"role": "user", "content": "hi"}]}, headers=bearer(token))
    assert response.status_code == 403


def test_voice_token_is_not_a_chat_token(client: TestClient, mint: Mint) -> None:
    token = mint("chat:complete", audience="voice-interaction")
    response = client.post(URL, json={"messages": [{"role": "user", "content": "hi"}]}, headers=bearer(token))
    assert response.status_code == 401


def test_llm_down_is_503_with_a_reason(chat_app: Callable[..., TestClient], auth: dict[str, str]) -> None:
    with chat_app(LLM_URL=f"http://127.0.0.1:{free_port()}") as client:
        for stream in (False, True):
            response = client.post(URL, json={"messages": [{"role": "user", "content": "hi"}], "stream": stream},
                                   headers=auth)
            assert response.status_code == 503
            assert "llm unit" in response.json()["error"]["message"]
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["llm"]["ok"] is False
        assert client.get("/health").status_code == 200


def test_ready_checks_redis_postgresql_and_llm(client: TestClient, transcripts: FakeTranscriptStore,
                                               fake_redis: FakeRedis) -> None:
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"jwt", "redis", "postgresql", "llm"}
    assert transcripts.schema_ready
    fake_redis.down = True
    transcripts.down = True
    ready = client.get("/ready")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["redis"] == {"ok": False, "reason": "ConnectionError: FakeRedis is down"}
    assert checks["postgresql"]["ok"] is False and checks["llm"]["ok"] is True


def test_chat_metrics_count_completions(client: TestClient, auth: dict[str, str]) -> None:
    ask(client, auth, "count me")
    text = client.get("/metrics").text
    # prometheus_client sorts the labels and writes every value as a float
    assert 'mlstack_chat_completions_total{outcome="ok",stream="false"} 1.0' in text


def test_history_sent_to_the_llm_fits_the_character_budget(chat_app: Callable[..., TestClient],
                                                           fake_llm: tuple[FakeLLM, str], auth: dict[str, str],
                                                           llm: FakeLLM) -> None:
    with chat_app(LLM_URL=fake_llm[1], HISTORY_MAX_CHARS="150") as client:
        for i in range(4):
            ask(client, auth, f"message number {i}", conversation_id="budget")
    sent = llm.requests[-1]["messages"]
    history = sent[:-1]
    assert sum(len(m["content"]) for m in history) <= 150
    assert history and history[0]["role"] == "user"
    assert sent[-1] == {"role": "user", "content": "message number 3"}


def test_a_degraded_optional_unit_is_reported_in_ready_but_does_not_make_chat_unready(
        chat_app: Callable[..., TestClient], fake_llm: tuple[FakeLLM, str]) -> None:
    with chat_app(LLM_URL=fake_llm[1], REASONING_URL=f"http://127.0.0.1:{free_port()}") as client:
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["degraded"] == ["reasoning"]
        assert body["checks"]["reasoning"]["optional"] is True
        assert body["checks"]["reasoning"]["reason"].startswith("unavailable:")


def test_a_live_optional_unit_is_not_degraded(chat_app: Callable[..., TestClient],
                                              fake_llm: tuple[FakeLLM, str]) -> None:
    with serve(FakeReasoning().app) as reasoning_url, chat_app(LLM_URL=fake_llm[1],
                                                                REASONING_URL=reasoning_url) as client:
        body = client.get("/ready").json()
        assert body["degraded"] == [] and body["checks"]["reasoning"]["ok"] is True, body


@pytest.fixture(scope="module")
def perception_url(public_key_file: Any, embedder: Any) -> Iterator[str]:
    """The real perception unit (its engines loaded), served on localhost."""
    from mlstack_services.app import create_app
    from mlstack_services.settings import Settings
    from mlstack_services.units import perception

    settings = Settings.from_env({"MLSTACK_UNIT": "perception", "JWT_PUBLIC_KEY_FILE": str(public_key_file)})
    app = create_app(settings, lambda s, r: perception.build(s, r, embedder=embedder))
    with serve(app, lifespan="on") as url:
        yield url


def test_chat_reads_the_context_from_perception_with_a_token_that_may(chat_app: Callable[..., TestClient],
                                                                      fake_llm: tuple[FakeLLM, str], llm: FakeLLM,
                                                                      perception_url: str, mint: Mint) -> None:
    both = bearer(mint("chat:complete perception:analyze", audience=["chat", "perception"]))
    with chat_app(LLM_URL=fake_llm[1], PERCEPTION_URL=perception_url) as client:
        ext = ask(client, both, "Will it rain in Paris tomorrow?")["mlstack"]
        assert ext["perception"] == "used"
        assert ext["context"]["intent"] == "weather" and ext["context"]["language"] == "en"
        notes = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "system"]
        assert any("intent weather" in n for n in notes), notes
        # A token without the perception scope: chat does not call it at all.
        plain = ask(client, bearer(mint("chat:complete", audience="chat")), "Will it rain?")["mlstack"]
        assert "perception" not in plain and "context" not in plain
        assert client.get("/ready").json()["checks"]["perception"]["ok"] is True


def test_chat_answers_when_perception_is_down(chat_app: Callable[..., TestClient], fake_llm: tuple[FakeLLM, str],
                                              mint: Mint) -> None:
    both = bearer(mint("chat:complete perception:analyze", audience=["chat", "perception"]))
    with chat_app(LLM_URL=fake_llm[1], PERCEPTION_URL=f"http://127.0.0.1:{free_port()}") as client:
        ext = ask(client, both, "hello")["mlstack"]
        assert ext["perception"].startswith("unavailable:") and "context" not in ext
        assert client.get("/ready").json()["degraded"] == ["perception"]


def test_models_lists_the_llm_model_in_openai_shape(chat_app: Callable[..., TestClient],
                                                    fake_llm: tuple[FakeLLM, str], auth: dict[str, str]) -> None:
    with chat_app(LLM_URL=fake_llm[1], LLM_MODEL="gemma-3-270m") as c:
        response = c.get("/v1/models", headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list"
        assert [(m["id"], m["object"], m["owned_by"]) for m in body["data"]] == [("gemma-3-270m", "model", "mlstack")]
        assert isinstance(body["data"][0]["created"], int)
        assert c.get("/v1/models").status_code == 401
        document = c.get("/openapi.json").json()
        assert document["paths"]["/v1/models"]["get"]["security"] == [{"bearerAuth": ["chat:complete"]}]
