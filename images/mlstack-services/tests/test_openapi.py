"""What every unit's OpenAPI document declares (openapi.py), read from GET /openapi.json.

The fuzz stage (test_openapi_fuzz.py) checks the answers against these documents; these tests
check that the documents hold what the shared layers answer, so a unit cannot drop them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlstack_services.app import create_app
from mlstack_services.settings import Settings

UNITS = ["voice-interaction", "chat", "coordination", "memory", "learning", "perception", "sequential-thinking",
         "reasoning"]
METHODS = {"get", "post", "put", "patch", "delete"}


def document(settings_for: Callable[..., Settings], unit: str, tmp_path: Any) -> dict[str, Any]:
    # No lifespan: the document is built from the routes; no engine or store is started.
    app = create_app(settings_for(unit, DATA_DIR=str(tmp_path)))
    response = TestClient(app).get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
            if method in METHODS]


@pytest.mark.parametrize("unit", UNITS)
def test_every_operation_declares_the_common_answers(settings_for: Callable[..., Settings], tmp_path: Any,
                                                     unit: str) -> None:
    doc = document(settings_for, unit, tmp_path)
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert set(doc["components"]["schemas"]["ErrorDetail"]["required"]) == {"message", "type", "status"}
    assert "HTTPValidationError" not in str(doc), "FastAPI's own 422 shape is never sent"
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids)), "operationIds are unique"
    for path, method, op in operations(doc):
        responses = op["responses"]
        label = f"{unit} {method.upper()} {path}"
        for status, answer in responses.items():
            if status.startswith(("4", "5")) and (path, status) != ("/ready", "503"):  # /ready: its Ready body
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, label
        assert "413" in responses, label
        if "requestBody" in op:
            assert {"400", "415", "422"} <= set(responses), label
        if not path.startswith("/v1/"):
            assert "security" not in op and "401" not in responses, label
            continue
        assert {"401", "403", "429", "503"} <= set(responses), label
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True, label
        assert responses["429"]["headers"]["Retry-After"]["required"] is True, label
        assert "Retry-After" in responses["503"]["headers"], label
        scopes = op["security"][0]["bearerAuth"]
        assert scopes and all(":" in s for s in scopes), label
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_common_endpoints_declare_their_real_bodies(settings_for: Callable[..., Settings], tmp_path: Any) -> None:
    paths = document(settings_for, "chat", tmp_path)["paths"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    ready = paths["/ready"]["get"]["responses"]
    assert ready["200"]["content"] == ready["503"]["content"]
    assert ready["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Ready"}
    assert paths["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Health"}


def test_unit_extras_are_declared(settings_for: Callable[..., Settings], tmp_path: Any) -> None:
    chat = document(settings_for, "chat", tmp_path)["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert set(chat["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"502", "504"} <= set(chat)
    voice = document(settings_for, "voice-interaction", tmp_path)["paths"]
    assert list(voice["/v1/tts"]["post"]["responses"]["200"]["content"]) == ["audio/wav"]
    stt = voice["/v1/stt"]["post"]
    assert {"audio/wav", "multipart/form-data"} <= set(stt["requestBody"]["content"])
    assert [p["name"] for p in stt["parameters"]] == ["mode", "engine", "language", "phrases"]
    assert "404" in voice["/v1/sessions/{session_id}"]["get"]["responses"]
    memory = document(settings_for, "memory", tmp_path)["paths"]
    assert "404" in memory["/v1/memories/{memory_id}"]["delete"]["responses"]
    thinking = document(settings_for, "sequential-thinking", tmp_path)["paths"]
    assert {"404", "502", "504"} <= set(thinking["/v1/sessions/{session_id}/next"]["post"]["responses"])
