"""coordination against stand-ins of voice-interaction and chat (real HTTP on localhost), named as such."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes import free_port, serve
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient
from helpers import bearer
from mlstack_services.app import create_app
from mlstack_services.settings import Settings
from mlstack_services.units import coordination

Mint = Callable[..., str]


class FakeUnits:
    """Stand-ins for voice-interaction (STT echoes a fixed transcript, TTS returns bytes) and chat."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.voice, self.chat = FastAPI(), FastAPI()
        for app, name in ((self.voice, "voice-interaction"), (self.chat, "chat")):
            app.get("/health")(lambda: {"status": "ok"})
            app.get("/ready")(lambda name=name: {"ready": True, "unit": name, "checks": {}, "degraded": []})
        self.voice.post("/v1/stt")(self.stt)
        self.voice.post("/v1/tts")(self.tts)
        self.chat.post("/v1/chat/completions")(self.completions)
        self.chat.get("/v1/echo/{word}")(self.echo)

    async def stt(self, request: Request) -> dict[str, Any]:
        self.seen.append(("stt", request.headers.get("authorization")))
        return {"text": "turn on the lights", "mode": request.query_params.get("mode")}

    async def tts(self, request: Request) -> Response:
        self.seen.append(("tts", request.headers.get("authorization")))
        return Response(b"RIFF" + (await request.json())["text"].encode(), media_type="audio/wav")

    async def completions(self, request: Request) -> dict[str, Any]:
        text = (await request.json())["messages"][-1]["content"]
        self.seen.append(("chat", request.headers.get("authorization")))
        return {"choices": [{"message": {"role": "assistant", "content": f"You said: {text}"}}]}

    async def echo(self, word: str, request: Request) -> JSONResponse:
        return JSONResponse({"word": word, "q": request.query_params.get("q")}, status_code=201)


@pytest.fixture(scope="module")
def units() -> Iterator[tuple[FakeUnits, str, str]]:
    fake = FakeUnits()
    with serve(fake.voice) as voice, serve(fake.chat) as chat:
        yield fake, voice, chat


def gateway(settings_for: Callable[..., Settings], **urls: str) -> TestClient:
    return TestClient(create_app(settings_for("coordination", **urls), lambda s, r: coordination.build(s, r)))


@pytest.fixture
def client(settings_for: Callable[..., Settings], units: tuple[FakeUnits, str, str]) -> Iterator[TestClient]:
    with gateway(settings_for, VOICE_INTERACTION_URL=units[1], CHAT_URL=units[2],
                 REASONING_URL=f"http://127.0.0.1:{free_port()}") as c:
        yield c


ALL = "coordination:read coordination:route coordination:pipeline voice:stt voice:tts chat:complete"


def token(mint: Mint) -> dict[str, str]:
    return bearer(mint(ALL, audience=["coordination", "voice-interaction", "chat"]))


def test_status_aggregates_every_unit_and_names_what_is_down(client: TestClient, mint: Mint) -> None:
    body = client.get("/v1/status", headers=token(mint)).json()
    assert body["status"] == "degraded" and body["down"] == ["reasoning"]
    assert {u["unit"]: u["ok"] for u in body["units"]} == {"chat": True, "reasoning": False,
                                                            "voice-interaction": True}
    assert client.get("/ready").json()["degraded"] == ["reasoning"]  # optional: the gateway stays ready


def test_routes_to_a_unit_with_the_callers_token_path_query_and_status(client: TestClient, mint: Mint) -> None:
    response = client.get("/v1/chat/echo/hello?q=1", headers=token(mint))
    assert response.status_code == 201 and response.json() == {"word": "hello", "q": "1"}
    unknown = client.get("/v1/nothing/here", headers=token(mint))
    assert unknown.status_code == 404 and "known: ['chat', 'reasoning', 'voice-interaction']" in unknown.text
    assert client.get("/v1/reasoning/reason", headers=token(mint)).status_code == 503


def test_voice_chat_pipeline_speech_in_speech_and_text_out(client: TestClient, mint: Mint,
                                                           units: tuple[FakeUnits, str, str]) -> None:
    units[0].seen.clear()
    response = client.post("/v1/pipeline/voice-chat", content=b"RIFF....WAVE", headers={
        **token(mint), "Content-Type": "audio/wav"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["transcript"] == "turn on the lights" and body["answer"] == "You said: turn on the lights"
    assert base64.b64decode(body["audio_wav_base64"]) == b"RIFFYou said: turn on the lights"
    assert [step for step, _auth in units[0].seen] == ["stt", "chat", "tts"]
    assert all(auth and auth.startswith("Bearer ") for _step, auth in units[0].seen)  # the caller's token


def test_pipeline_answers_in_text_when_voice_is_down(settings_for: Callable[..., Settings], mint: Mint,
                                                     units: tuple[FakeUnits, str, str]) -> None:
    with gateway(settings_for, VOICE_INTERACTION_URL=f"http://127.0.0.1:{free_port()}", CHAT_URL=units[2]) as c:
        response = c.post("/v1/pipeline/voice-chat", json={"text": "hello"}, headers=token(mint))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["answer"] == "You said: hello" and body["audio_wav_base64"] is None
        assert body["voice"].startswith("unavailable: unit voice-interaction unreachable")


@pytest.mark.parametrize("payload", [{}, {"text": ""}, {"text": 3}])
def test_pipeline_bad_input_is_422(client: TestClient, mint: Mint, payload: dict[str, Any]) -> None:
    assert client.post("/v1/pipeline/voice-chat", json=payload, headers=token(mint)).status_code == 422


def test_gateway_scopes_are_required(client: TestClient, mint: Mint) -> None:
    weak = bearer(mint("chat:complete", audience=["coordination", "chat"]))
    assert client.get("/v1/status", headers=weak).status_code == 403
    assert client.get("/v1/chat/echo/x", headers=weak).status_code == 403
