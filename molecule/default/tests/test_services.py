"""End to end, after phase5: the critical services answer real requests on 8006 and 8007.

Tokens are minted here with the stack's Ed25519 signing key from the controller's secrets
directory, exactly as an operator would; nothing is printed of the key or the tokens.
"""

from __future__ import annotations

import base64
import io
import os
import time
import uuid
import wave
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

SECRETS = Path(os.environ.get("MLSTACK_SECRETS_DIR", Path.home() / ".local/share/mlstack/secrets"))
VOICE = "http://127.0.0.1:8006"
CHAT = "http://127.0.0.1:8007"


def token(audience: str | list[str], scopes: str, ttl: int = 300, key: Any = None) -> str:
    now = int(time.time())
    claims = {"iss": "mlstack", "sub": "molecule-e2e", "aud": audience, "scope": scopes, "iat": now,
              "exp": now + ttl, "jti": uuid.uuid4().hex}
    signing = key if key is not None else (SECRETS / "jwt" / "signing.pem").read_bytes()
    return jwt.encode(claims, signing, algorithm="EdDSA")


def auth(audience: str | list[str], scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(audience, scopes)}"}


@pytest.mark.parametrize(("base", "path"), [(VOICE, "/v1/tts"), (CHAT, "/v1/chat/completions")])
def test_no_token_is_refused(base: str, path: str) -> None:
    response = requests.post(base + path, json={}, timeout=10)
    assert response.status_code == 401


def test_token_for_another_audience_is_refused() -> None:
    response = requests.post(VOICE + "/v1/tts", json={"text": "hello"}, headers=auth("chat", "voice:tts"), timeout=10)
    assert response.status_code == 401


def test_tts_then_stt_recovers_a_command_phrase_exactly() -> None:
    phrase = "turn on the lights"
    tts = requests.post(VOICE + "/v1/tts", json={"text": phrase}, headers=auth("voice-interaction", "voice:tts"),
                        timeout=30)
    assert tts.status_code == 200, tts.text
    with wave.open(io.BytesIO(tts.content)) as wav:
        assert wav.getnframes() / wav.getframerate() > 0.3
    stt = requests.post(VOICE + "/v1/stt?mode=command", data=tts.content,
                        headers={**auth("voice-interaction", "voice:stt"), "Content-Type": "audio/wav"}, timeout=60)
    assert stt.status_code == 200, stt.text
    body = stt.json()
    assert body["mode"] == "command"
    assert body["text"] == phrase


def test_chat_is_generated_by_the_model_not_canned() -> None:
    headers = auth("chat", "chat:complete")
    answers = []
    for prompt in ("Name a colour of the sky.", "Write one word about the sea."):
        response = requests.post(CHAT + "/v1/chat/completions", headers=headers, timeout=180, json={
            "model": "local", "max_tokens": 24, "temperature": 0,
            "messages": [{"role": "user", "content": prompt}]})
        assert response.status_code == 200, response.text
        text = response.json()["choices"][0]["message"]["content"]
        assert text.strip()
        answers.append(text)
    assert answers[0] != answers[1]


def test_chat_streams_server_sent_events() -> None:
    response = requests.post(CHAT + "/v1/chat/completions", headers=auth("chat", "chat:complete"), timeout=180,
                             stream=True, json={"model": "local", "max_tokens": 16, "stream": True,
                                                "messages": [{"role": "user", "content": "Say hello."}]})
    assert response.status_code == 200
    lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    assert lines[-1] == "data: [DONE]"
    assert len(lines) > 2


def test_chat_reasons_through_the_reasoning_unit() -> None:
    """chat forwards the caller's token to reasoning, which plans, answers each step with the llm and checks."""
    token_ = token(["chat", "reasoning"], "chat:complete reasoning:reason")
    response = requests.post(CHAT + "/v1/chat/completions", headers={"Authorization": f"Bearer {token_}"},
                             timeout=180, json={"max_tokens": 32, "temperature": 0, "reasoning": True,
                                                "messages": [{"role": "user", "content": "Why is the sky blue?"}]})
    assert response.status_code == 200, response.text
    ext = response.json()["mlstack"]
    assert ext["reasoning"] == "used", ext
    assert ext["reasoning_steps"] and all(": " in step for step in ext["reasoning_steps"])


def backend_url(unit: str, port: int) -> str:
    """An internal unit, reached at its address on the backend network from this host."""
    import json
    import subprocess

    info = json.loads(subprocess.run(["docker", "inspect", f"mlstack-{unit}"], capture_output=True, text=True,
                                     check=True).stdout)[0]
    return f"http://{info['NetworkSettings']['Networks']['mlstack_backend']['IPAddress']}:{port}"


def test_sequential_thinking_numbers_revises_branches_and_asks_the_llm() -> None:
    base = backend_url("sequential-thinking", 8004)
    headers = auth("sequential-thinking", "thinking:use")
    session = requests.post(f"{base}/v1/sessions", json={"title": "why is the sky blue"}, headers=headers, timeout=10)
    assert session.status_code == 201, session.text
    url = f"{base}/v1/sessions/{session.json()['id']}"
    for body in ({"content": "sunlight holds every colour"}, {"content": "red scatters most"},
                 {"content": "blue scatters most", "revises": 2},
                 {"content": "what about sunsets", "branch": "sunset", "branch_from": 1}):
        assert requests.post(f"{url}/thoughts", json=body, headers=headers, timeout=10).status_code == 201
    proposed = requests.post(f"{url}/next", json={}, headers=headers, timeout=120)
    assert proposed.status_code == 201, proposed.text
    assert proposed.json()["source"] == "llm" and proposed.json()["content"]
    stored = requests.get(url, headers=headers, timeout=10).json()
    assert [t["number"] for t in stored["thoughts"]] == [1, 2, 3, 4, 5]
    assert stored["branches"] == {"main": [1, 2, 3, 5], "sunset": [1, 4]}
    bad = requests.post(f"{url}/thoughts", json={"content": "x", "revises": 99}, headers=headers, timeout=10)
    assert bad.status_code == 422


def test_chat_adapts_to_the_style_learned_from_feedback() -> None:
    user = f"molecule{uuid.uuid4().hex[:8]}"
    headers = auth(["chat", "learning"], "chat:complete learning:feedback learning:read")
    ask = {"user": user, "max_tokens": 16, "temperature": 0,
           "messages": [{"role": "user", "content": "What is Redis?"}]}
    first = requests.post(CHAT + "/v1/chat/completions", headers=headers, json=ask, timeout=180)
    assert first.status_code == 200, first.text
    assert first.json()["mlstack"]["style"] == "concise"  # no feedback yet
    learning = backend_url("learning", 8002)
    for rating in (5, 4, 5):
        feedback = requests.post(f"{learning}/v1/feedback", headers=headers, timeout=10,
                                 json={"user": user, "style": "detailed", "rating": rating})
        assert feedback.status_code == 201, feedback.text
    assert feedback.json()["preferred"] == "detailed"
    second = requests.post(CHAT + "/v1/chat/completions", headers=headers, json=ask, timeout=180)
    assert second.status_code == 200 and second.json()["mlstack"]["style"] == "detailed"


GATEWAY = "http://127.0.0.1:8000"
GATEWAY_SCOPES = "coordination:read coordination:route coordination:pipeline voice:stt voice:tts chat:complete"


def test_gateway_status_routes_and_runs_the_voice_chat_pipeline() -> None:
    headers = auth(["coordination", "voice-interaction", "chat"], GATEWAY_SCOPES)
    status = requests.get(GATEWAY + "/v1/status", headers=headers, timeout=30).json()
    units = {u["unit"]: u["ok"] for u in status["units"]}
    assert units["voice-interaction"] and units["chat"] and units["reasoning"]
    # Units in the catalog but not deployed are reported down, never as healthy.
    assert status["status"] == "degraded" and "memory" in status["down"]
    routed = requests.post(GATEWAY + "/v1/voice-interaction/tts", json={"text": "turn on the lights"},
                           headers=headers, timeout=30)
    assert routed.status_code == 200 and routed.content[:4] == b"RIFF"
    spoken = requests.post(GATEWAY + "/v1/pipeline/voice-chat", data=routed.content, timeout=180,
                           headers={**headers, "Content-Type": "audio/wav"})
    assert spoken.status_code == 200, spoken.text
    body = spoken.json()
    assert body["transcript"] and body["answer"] and body["voice"] == "used"
    assert base64.b64decode(body["audio_wav_base64"])[:4] == b"RIFF"
