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


def test_a_long_stream_runs_to_its_end_while_the_stack_is_probed() -> None:
    """Health and readiness probes reach the llm unit during the stream (chat's /ready probes it).

    llama.cpp's server cut a stream short at the next request that wanted its model lock, a
    probe of /v1/models too: the stream ended with [DONE] but no finish_reason.
    """
    import threading

    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            requests.get(CHAT + "/ready", timeout=10)
            time.sleep(0.2)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        response = requests.post(CHAT + "/v1/chat/completions", headers=auth("chat", "chat:complete"), timeout=180,
                                 stream=True, json={"max_tokens": 96, "stream": True, "temperature": 0.8, "seed": 7,
                                                    "messages": [{"role": "user", "content": "Tell a long story."}]})
        assert response.status_code == 200
        lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    finally:
        stop.set()
        prober.join()
    assert lines[-1] == "data: [DONE]"
    import json

    # The llm's last chunk says why it stopped; a cut stream has none (chat's own last chunk never has).
    reasons = [c["finish_reason"] for line in lines[:-1] for c in json.loads(line[6:])["choices"] if c["finish_reason"]]
    assert reasons in (["stop"], ["length"]), lines[-3:]


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
    # Every unit of the local inventory is deployed: none is down. Earlier tests recreate every
    # container (test_default) and rotate passwords, so a unit may still be warming up.
    deadline = time.monotonic() + 90
    while True:
        status = requests.get(GATEWAY + "/v1/status", headers=headers, timeout=30).json()
        if status["down"] == [] or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert status["down"] == [], status
    units = {u["unit"]: u["ok"] for u in status["units"]}
    assert units["voice-interaction"] and units["chat"] and units["reasoning"]
    routed = requests.post(GATEWAY + "/v1/voice-interaction/tts", json={"text": "turn on the lights"},
                           headers=headers, timeout=30)
    assert routed.status_code == 200 and routed.content[:4] == b"RIFF"
    spoken = requests.post(GATEWAY + "/v1/pipeline/voice-chat", data=routed.content, timeout=180,
                           headers={**headers, "Content-Type": "audio/wav"})
    assert spoken.status_code == 200, spoken.text
    body = spoken.json()
    assert body["transcript"] and body["answer"] and body["voice"] == "used"
    assert base64.b64decode(body["audio_wav_base64"])[:4] == b"RIFF"


def wait_ready(base: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            ready = requests.get(base + "/ready", timeout=5)
            if ready.status_code == 200:
                return ready.json()
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{base} not ready after {timeout} s"
        time.sleep(1)


def test_memory_stores_finds_links_and_keeps_memories_across_a_restart() -> None:
    """Real Neo4j (the neo4j unit) for the graph; Qdrant's embedded engine on the unit's volume."""
    import subprocess

    base = backend_url("memory", 8001)
    ready = wait_ready(base)
    assert ready["backends"]["graph"].startswith("neo4j"), ready
    assert ready["backends"]["vector"].startswith("qdrant embedded"), ready
    headers = auth("memory", "memory:write memory:read")
    user = f"molecule{uuid.uuid4().hex[:8]}"
    person = f"Ada {uuid.uuid4().hex[:6]}"
    texts = {"redis": f"{person} keeps the session cache in Redis with a password per service.",
             "garden": f"{person} grows tomatoes and basil in the garden every summer."}
    for key, text in texts.items():
        stored = requests.post(f"{base}/v1/memories", headers=headers, timeout=30, json={
            "text": text, "user": user, "entities": [person],
            "relations": [{"source": person, "type": "works at", "target": "Acme"}] if key == "redis" else []})
        assert stored.status_code == 201, stored.text
        assert stored.json()["backends"] == {"vector": "qdrant-embedded", "graph": "neo4j"}
    # The restart proves the vectors live on the volume, not in the process.
    subprocess.run(["docker", "restart", "mlstack-memory"], check=True, capture_output=True)
    base = backend_url("memory", 8001)
    wait_ready(base)
    found = requests.post(f"{base}/v1/memories/search", headers=headers, timeout=30,
                          json={"query": "which database holds the cache?", "user": user, "limit": 2})
    assert found.status_code == 200, found.text
    hits = found.json()["hits"]
    assert [h["text"] for h in hits][0] == texts["redis"], hits
    assert hits[0]["score"] > hits[1]["score"]
    near = requests.get(f"{base}/v1/entities/{person}/neighbours", headers=headers, timeout=30)
    assert near.status_code == 200, near.text
    assert "Acme" in str(near.json()), near.json()
    bad = requests.post(f"{base}/v1/memories", headers=headers, timeout=10, json={"text": "   "})
    assert bad.status_code == 422 and "text" in bad.text


PERCEPTION_CASES = [("could you switch off the kitchen lights please", "lights"),
                    ("will it rain in Paris tomorrow?", "weather"),
                    ("thank you so much, that was helpful", "thanks")]


def test_perception_recognises_intents_language_and_sentiment() -> None:
    base = backend_url("perception", 8003)
    headers = auth("perception", "perception:analyze")
    for text, intent in PERCEPTION_CASES:
        response = requests.post(f"{base}/v1/analyze", headers=headers, json={"text": text}, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["intent"]["label"] == intent, body
        assert body["language"]["code"] == "en", body
    angry = requests.post(f"{base}/v1/analyze", headers=headers, timeout=30,
                          json={"text": "This is terrible, the service is broken and I hate it.",
                                "analyses": ["sentiment"]}).json()
    assert angry["sentiment"]["label"] == "negative", angry
    bad = requests.post(f"{base}/v1/analyze", headers=headers, json={"text": "hi", "analyses": ["mood"]}, timeout=10)
    assert bad.status_code == 422


def test_perception_measures_speech_activity_in_real_speech() -> None:
    speech = requests.post(VOICE + "/v1/tts", json={"text": "turn on the lights in the kitchen"},
                           headers=auth("voice-interaction", "voice:tts"), timeout=30)
    assert speech.status_code == 200
    base = backend_url("perception", 8003)
    headers = {**auth("perception", "perception:analyze"), "Content-Type": "audio/wav"}
    heard = requests.post(f"{base}/v1/audio", data=speech.content, headers=headers, timeout=30)
    assert heard.status_code == 200, heard.text
    with wave.open(io.BytesIO(speech.content)) as wav:
        silent = io.BytesIO()
        with wave.open(silent, "wb") as out:
            out.setparams(wav.getparams())
            out.writeframes(b"\0" * len(wav.readframes(wav.getnframes())))
    quiet = requests.post(f"{base}/v1/audio", data=silent.getvalue(), headers=headers, timeout=30)
    assert quiet.status_code == 200, quiet.text
    assert heard.json()["speech"]["detected"] and heard.json()["speech"]["ratio"] > 0.3, heard.json()
    assert not quiet.json()["speech"]["detected"], quiet.json()
    assert heard.json()["loudness"]["rms_dbfs"] > quiet.json()["loudness"]["rms_dbfs"]


def test_chat_reads_the_context_perception_gives() -> None:
    headers = auth(["chat", "perception"], "chat:complete perception:analyze")
    response = requests.post(CHAT + "/v1/chat/completions", headers=headers, timeout=180, json={
        "max_tokens": 16, "temperature": 0,
        "messages": [{"role": "user", "content": "Please turn the lights off in the bedroom."}]})
    assert response.status_code == 200, response.text
    assert response.json()["mlstack"]["context"]["intent"] == "lights", response.json()["mlstack"]


def test_gateway_pipeline_answers_in_text_when_voice_is_down() -> None:
    """Stops the voice unit for the length of one request, then starts it again and waits for it."""
    import subprocess

    headers = auth(["coordination", "voice-interaction", "chat"], GATEWAY_SCOPES)
    subprocess.run(["docker", "stop", "-t", "5", "mlstack-voice-interaction"], check=True, capture_output=True)
    try:
        answered = requests.post(GATEWAY + "/v1/pipeline/voice-chat", headers=headers, timeout=180,
                                 json={"text": "what is the weather like today"})
    finally:
        subprocess.run(["docker", "start", "mlstack-voice-interaction"], check=True, capture_output=True)
        wait_ready(VOICE)
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["answer"] and body["voice"].startswith("unavailable"), body
    assert body["audio_wav_base64"] is None


def test_memory_says_its_graph_is_down_and_recovers_when_neo4j_is_back() -> None:
    """Stops the real Neo4j unit: memory's /ready names it and why, searches still answer, then it recovers."""
    import subprocess

    base = backend_url("memory", 8001)
    headers = auth("memory", "memory:write memory:read")
    subprocess.run(["docker", "stop", "-t", "10", "mlstack-neo4j"], check=True, capture_output=True)
    try:
        ready = requests.get(base + "/ready", timeout=10)
        linked = requests.post(f"{base}/v1/memories", headers=headers, timeout=30,
                               json={"text": "Grace met Ada at the conference.", "entities": ["Grace", "Ada"]})
        search = requests.post(f"{base}/v1/memories/search", headers=headers, timeout=30, json={"query": "cache"})
    finally:
        subprocess.run(["docker", "start", "mlstack-neo4j"], check=True, capture_output=True)
    assert ready.status_code == 503, ready.text
    graph = ready.json()["checks"]["graph"]
    assert not graph["ok"] and graph["reason"].startswith("neo4j bolt://neo4j:7687"), graph
    assert linked.status_code == 503 and "graph store unavailable" in linked.text, linked.text
    assert search.status_code == 200, search.text
    assert wait_ready(base, timeout=180)["checks"]["graph"]["ok"]
