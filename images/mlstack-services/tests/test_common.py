"""What every unit shares: settings, /health, /ready, /metrics, JSON logs, the process itself."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fakes import free_port
from fastapi.testclient import TestClient
from helpers import bearer, needs_espeak, needs_pocketsphinx
from mlstack_services.app import create_app
from mlstack_services.logs import JsonFormatter
from mlstack_services.settings import ConfigError, Settings
from prometheus_client.parser import text_string_to_metric_families

# --- settings --------------------------------------------------------------------------------


def test_settings_defaults_follow_the_contract() -> None:
    s = Settings.from_env({"MLSTACK_UNIT": "voice-interaction"})
    assert (s.port, s.redis_port, s.postgres_port) == (8080, 6379, 5432)
    assert s.redis_prefix == "voice-interaction:"
    assert s.jwt_audience == "voice-interaction" and s.jwt_issuer == "mlstack"
    assert s.redis_password_file == "/run/secrets/redis_password"
    assert s.postgres_password_file == "/run/secrets/postgres_password"
    assert s.jwt_public_key_file == "/run/secrets/jwt_public.pem"


@pytest.mark.parametrize(("env", "needle"), [
    ({}, "MLSTACK_UNIT"),
    ({"MLSTACK_UNIT": "toaster"}, "voice-interaction"),
    ({"MLSTACK_UNIT": "chat", "PORT": "eighty"}, "PORT"),
    ({"MLSTACK_UNIT": "chat", "PORT": "70000"}, "PORT"),
    ({"MLSTACK_UNIT": "chat", "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env(env)


# --- /health, /ready, /metrics ---------------------------------------------------------------


def test_health(voice_client: TestClient) -> None:
    assert voice_client.get("/health").json() == {"status": "ok", "unit": "voice-interaction"}


def test_ready_is_503_with_a_reason_when_redis_is_unreachable(settings_for: Callable[..., Settings]) -> None:
    # The real redis client, pointed at a port nobody listens on.
    settings = settings_for("voice-interaction", REDIS_HOST="127.0.0.1", REDIS_PORT=str(free_port()))
    with TestClient(create_app(settings)) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["ready"] is False
        assert body["checks"]["redis"]["ok"] is False
        assert "Connect" in body["checks"]["redis"]["reason"]
        assert body["checks"]["jwt"]["ok"] is True
        assert client.get("/health").status_code == 200


@needs_espeak
@needs_pocketsphinx
def test_ready_is_200_when_dependencies_answer(voice_client: TestClient) -> None:
    response = voice_client.get("/ready")
    assert response.status_code == 200, response.text
    assert all(check["ok"] for check in response.json()["checks"].values())


def test_metrics_parse_as_prometheus_text_and_count_requests(voice_client: TestClient,
                                                             mint: Callable[..., str]) -> None:
    def requests_total(route: str, status: str) -> float:
        text = voice_client.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (sample.name == "mlstack_http_requests_total" and sample.labels.get("route") == route
                        and sample.labels.get("status") == status):
                    return sample.value
        return 0.0

    before = requests_total("/v1/sessions", "201")
    voice_client.post("/v1/sessions", headers=bearer(mint("voice:session")))
    voice_client.post("/v1/sessions", headers=bearer(mint("voice:session")))
    assert requests_total("/v1/sessions", "201") == before + 2
    voice_client.post("/v1/sessions")
    assert requests_total("/v1/sessions", "401") >= 1

    response = voice_client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["mlstack_http_request_duration_seconds"].type == "histogram"
    assert families["mlstack_sessions_created"].type == "counter"
    assert "mlstack_stt_requests" in families and "mlstack_tts_requests" in families


# --- logs ------------------------------------------------------------------------------------


def test_request_logs_are_json_without_secrets(voice_client: TestClient, mint: Callable[..., str]) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("voice-interaction"))
    logger = logging.getLogger("mlstack_services.request")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = mint("voice:session")
    try:
        voice_client.post("/v1/sessions", json={"metadata": {"secret": "body-content"}}, headers=bearer(token))
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    entry = next(e for e in lines if e.get("path") == "/v1/sessions")
    assert {"time", "level", "unit", "msg", "method", "path", "status", "latency_ms"} <= set(entry)
    assert entry["unit"] == "voice-interaction" and entry["status"] == 201
    assert token not in stream.getvalue() and "body-content" not in stream.getvalue()


# --- the process: python -m mlstack_services -------------------------------------------------


def _start(unit: str, public_key_file: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full_env = {**os.environ, "MLSTACK_UNIT": unit, "PORT": str(port), "JWT_PUBLIC_KEY_FILE": str(public_key_file),
                "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(free_port()), **env}
    proc = subprocess.Popen([sys.executable, "-m", "mlstack_services"], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("no /health within 30 s")


@pytest.mark.parametrize("unit", ["voice-interaction", "chat"])
def test_process_starts_without_its_dependencies_and_stops_on_sigterm(unit: str, public_key_file: Path) -> None:
    proc, base = _start(unit, public_key_file, POSTGRES_HOST="127.0.0.1", POSTGRES_PORT=str(free_port()),
                        POSTGRES_USER="u", POSTGRES_DB="d", LLM_URL=f"http://127.0.0.1:{free_port()}")
    try:
        assert httpx.get(f"{base}/health").json() == {"status": "ok", "unit": unit}
        ready = httpx.get(f"{base}/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    # uvicorn finishes the shutdown, then re-raises SIGTERM: exit by the signal (143 in Docker) is expected.
    assert proc.returncode in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert all({"time", "level", "unit", "msg"} <= set(entry) for entry in lines)
    assert any(entry.get("path") == "/ready" and entry.get("status") == 503 for entry in lines)
    messages = [entry["msg"] for entry in lines]
    assert "unit stopped" in messages
    assert messages[-1].startswith("Finished server process")


def test_process_refuses_an_unknown_unit() -> None:
    proc = subprocess.run([sys.executable, "-m", "mlstack_services"], env={**os.environ, "MLSTACK_UNIT": "toaster"},
                          capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert "MLSTACK_UNIT" in json.loads(proc.stderr)["msg"]
