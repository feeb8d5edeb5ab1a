"""coordination: the gateway. Routes /v1/<unit>/... to the units, aggregates their readiness,
and runs the voice-chat pipeline (speech to text, chat, text to speech).

The units it knows are the ``<UNIT>_URL`` variables its catalog entry wires (its optional
dependencies). The caller's token is forwarded as it is: it must name this unit and the
unit it reaches in its audience, with that unit's scopes, so the gateway grants nothing
the caller does not hold.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..auth import require_scope
from ..errors import ServiceError
from ..metrics import Registry
from ..openapi import answers
from ..requests import media_type
from ..settings import Settings
from ..unit import Unit

HOP_HEADERS = {"authorization", "content-type", "accept"}
# A unit past saturation (429) or unavailable (503) says when to come back: the gateway passes it on.
BUSY = (429, 503)
KEPT_HEADERS = ("content-type", "www-authenticate", "retry-after")


def _busy(step: str, unit: str, response: httpx.Response) -> ServiceError:
    """The unit's own 429/503 and Retry-After, so the caller backs off instead of seeing a 502."""
    retry = response.headers.get("retry-after")
    return ServiceError(response.status_code, f"{step}: {unit} is busy or unavailable "
                        f"({response.status_code}): {response.text[:200]}", {"Retry-After": retry} if retry else None)


# The answers' shapes, for the OpenAPI document only (the routes return plain dicts).
class Status(BaseModel):
    status: str = Field(pattern="^(ok|degraded)$")
    down: list[str]
    units: list[dict[str, Any]]


class VoiceChat(BaseModel):
    voice: str
    transcript: str
    answer: str
    audio_wav_base64: str | None


PIPELINE_OPENAPI = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "required": ["text"],
                                    "properties": {"text": {"type": "string", "minLength": 1}}}},
    **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in ("audio/wav", "audio/x-wav", "audio/wave")},
}}}
# The gateway passes on whatever the unit behind it answers (status, body and content type).
PASSED_ON = {"default": {"description": "The routed unit's own answer, passed on as it is.",
                         "content": {"*/*": {"schema": {}}}}}


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ServiceError(422, "body: send JSON {\"text\": ...} or audio/wav") from None
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"].strip():
        raise ServiceError(422, "text: a non-empty string is required (or send audio/wav)")
    return body


def build(settings: Settings, registry: Registry, transport: httpx.AsyncBaseTransport | None = None) -> Unit:
    upstreams = {name: url for name, url in settings.upstreams.items() if name not in ("llm", settings.unit)}
    http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(settings.llm_timeout_s, connect=2.0))
    routed = registry.counter("mlstack_coordination_routed_total", "Requests routed, by unit and status class.",
                              ("unit", "status"))
    pipelines = registry.counter("mlstack_coordination_pipelines_total", "Voice-chat pipelines, by outcome.",
                                 ("outcome",))
    router = APIRouter(prefix="/v1", tags=["coordination"])

    async def ready_of(name: str, url: str) -> dict[str, Any]:
        try:
            response = await http.get(f"{url}/ready", timeout=3.0)
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        except (httpx.HTTPError, ValueError) as exc:
            return {"unit": name, "ok": False, "reason": f"{type(exc).__name__}: {exc}"[:200]}
        failing = sorted(k for k, v in (body.get("checks") or {}).items() if not v.get("ok") and not v.get("optional"))
        return {"unit": name, "ok": response.status_code == 200, "status": response.status_code,
                "failing_checks": failing, "degraded": body.get("degraded", [])}

    @router.get("/status", dependencies=[Depends(require_scope("coordination:read"))],
                responses=answers(ok={"model": Status, "description": "The readiness of the units behind."}))
    async def status() -> dict[str, Any]:
        units = await asyncio.gather(*(ready_of(n, u) for n, u in sorted(upstreams.items())))
        down = [u["unit"] for u in units if not u["ok"]]
        return {"status": "ok" if not down else "degraded", "down": down, "units": list(units)}

    async def forward(name: str, method: str, path: str, request: Request, body: bytes | None = None,
                      headers: dict[str, str] | None = None, params: Any = None) -> httpx.Response:
        if name not in upstreams:
            raise ServiceError(404, f"no unit {name!r} behind this gateway (known: {sorted(upstreams)})")
        sent = {k: v for k, v in request.headers.items() if k.lower() in HOP_HEADERS}
        sent.update(headers or {})
        try:
            response = await http.request(method, f"{upstreams[name]}{path}", content=body, headers=sent,
                                          params=params)
        except httpx.HTTPError as exc:
            routed.inc(unit=name, status="unreachable")
            raise ServiceError(503, f"unit {name} unreachable: {type(exc).__name__}: {exc}") from None
        routed.inc(unit=name, status=f"{response.status_code // 100}xx")
        return response

    @router.post("/pipeline/voice-chat", dependencies=[Depends(require_scope("coordination:pipeline"))],
                 openapi_extra=PIPELINE_OPENAPI,
                 responses=answers(404, 502, ok={"model": VoiceChat, "description": "Transcript, answer, speech."}))
    async def voice_chat(request: Request) -> dict[str, Any]:
        result: dict[str, Any] = {"voice": "used"}
        if media_type(request) in ("audio/wav", "audio/x-wav", "audio/wave"):
            stt = await forward("voice-interaction", "POST", "/v1/stt", request, await request.body(),
                                params={"mode": "free"})
            if stt.status_code in BUSY:
                pipelines.inc(outcome="busy")
                raise _busy("speech to text", "voice-interaction", stt)
            if stt.status_code != 200:
                pipelines.inc(outcome="error")
                raise ServiceError(stt.status_code if stt.status_code < 500 else 502,
                                   f"speech to text failed: voice-interaction answered {stt.status_code}: "
                                   f"{stt.text[:200]}")
            result["transcript"] = str(stt.json().get("text", ""))
        else:
            result["transcript"] = (await _json_body(request))["text"].strip()
        question = {"max_tokens": 64, "messages": [{"role": "user", "content": result["transcript"] or "hello"}]}
        chat = await forward("chat", "POST", "/v1/chat/completions", request, json.dumps(question).encode(),
                             headers={"content-type": "application/json"})
        if chat.status_code in BUSY:
            pipelines.inc(outcome="busy")
            raise _busy("chat", "chat", chat)
        if chat.status_code != 200:
            pipelines.inc(outcome="error")
            raise ServiceError(502, f"chat answered {chat.status_code}: {chat.text[:200]}")
        answer = str(chat.json()["choices"][0]["message"]["content"]).strip() or "(no answer)"
        result["answer"] = answer
        try:
            tts = await forward("voice-interaction", "POST", "/v1/tts", request,
                                json.dumps({"text": answer[:1000]}).encode(),
                                headers={"content-type": "application/json"})
            if tts.status_code != 200:
                raise ServiceError(tts.status_code, tts.text[:200])
            result["audio_wav_base64"] = base64.b64encode(tts.content).decode()
        except ServiceError as exc:
            # Voice is down: the answer still comes back, in text.
            result.update(voice=f"unavailable: {exc.detail}", audio_wav_base64=None)
        pipelines.inc(outcome="ok" if result["voice"] == "used" else "text_only")
        return result

    async def route(unit: str, path: str, request: Request) -> Response:
        response = await forward(unit, request.method, f"/v1/{path}", request, await request.body(),
                                 params=request.query_params)
        kept = {k: v for k, v in response.headers.items() if k.lower() in KEPT_HEADERS}
        return Response(response.content, status_code=response.status_code, headers=kept)

    # Registered last: /v1/status and /v1/pipeline/... match first. One route per method, so that each
    # has an operationId of its own in the OpenAPI document (one route for five shared one id).
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        router.add_api_route("/{unit}/{path:path}", route, methods=[method], operation_id=f"route_{method.lower()}",
                             dependencies=[Depends(require_scope("coordination:route"))],
                             response_class=Response,
                             responses={**answers(404), 200: PASSED_ON["default"], **PASSED_ON})

    async def close() -> None:
        await http.aclose()

    return Unit(name="coordination", router=router, body_limits={"/v1/pipeline/voice-chat": 10 << 20},
                admission={"/v1/pipeline/voice-chat": "pipeline"},
                optional_checks={name: _reach(http, url) for name, url in sorted(upstreams.items())},
                on_shutdown=[close])


def _reach(http: httpx.AsyncClient, url: str) -> Any:
    async def check() -> tuple[bool, str]:
        try:
            response = await http.get(f"{url}/health", timeout=2.0)
        except httpx.HTTPError as exc:
            return False, f"unavailable: {type(exc).__name__}"
        return response.status_code == 200, f"{url}/health answered {response.status_code}"

    return check
