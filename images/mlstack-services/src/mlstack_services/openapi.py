"""Each unit's OpenAPI document, holding every status and content type the unit answers.

FastAPI documents what a route function returns, plus a 422 in a shape of its own that the
units never send. The answers that come from the shared layers (the JWT middleware's 401,
the scope check's 403, the body limits' 413, the JSON body's 400 and 415, admission
control's 429 and 503, the error handlers) are added here, to every operation they apply
to. A route declares only its own extras (a 404, an upstream's 502/504, audio or an event
stream) with ``answers()``. The fuzz stage (tests/test_openapi_fuzz.py) checks each unit's
answers against its document.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute

from .errors import ERROR_TYPES

BEARER = "bearerAuth"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
JSON = "application/json"

# The shape errors.error_body() writes, as a named schema every error answer refers to.
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "title": "Error", "type": "object", "required": ["error"], "additionalProperties": False,
        "description": 'Every error answer: {"error": {"message", "type", "status"}} (OpenAI-like).',
        "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
    },
    "ErrorDetail": {
        "title": "ErrorDetail", "type": "object", "required": ["message", "type", "status"],
        "additionalProperties": False,
        "properties": {
            "message": {"type": "string", "description": "What is wrong, for a person to read."},
            "type": {"type": "string", "enum": sorted({*ERROR_TYPES.values(), "server_error"})},
            "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status again."},
        },
    },
}

WHY: dict[int, str] = {
    400: "Malformed body: JSON that does not parse, a multipart form that does not, an empty or frameless WAV.",
    401: "No valid bearer token (missing, malformed, expired, wrong signature, audience or issuer).",
    403: "The token lacks the operation's scope.",
    404: "No such resource.",
    413: "Body over the path's limit (by Content-Length or while reading).",
    415: "Body sent in a content type the operation does not take.",
    422: "A field out of its bounds; the message names the field.",
    429: "Admission control: this unit's queue is full; try again after Retry-After seconds.",
    500: "A bug: the unit logged it and stays up. Never expected (the fuzz stage fails on it).",
    502: "An upstream unit answered with an error or an unusable body.",
    503: "Unavailable: a dependency is down, the JWT public key is missing, or admission control is full.",
    504: "An upstream unit (or espeak-ng) did not answer in time.",
}

RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer", "minimum": 0}}
CHALLENGE = {"description": 'Always `Bearer realm="mlstack"`.', "required": True, "schema": {"type": "string"}}
REQUEST_ID = {"description": "The request's id (the caller's X-Request-Id, else a new one), also in the log line.",
              "schema": {"type": "string"}}


def error(status: int, description: str | None = None,
          headers: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One error answer: its description and the Error schema, with headers when it sends some."""
    answer: dict[str, Any] = {"description": description or WHY.get(status, "Error."),
                              "content": {JSON: {"schema": ERROR_REF}}}
    if headers:
        answer["headers"] = headers
    return answer


def answers(*statuses: int, **extra: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A route's own answers for its ``responses=``: error statuses by number; success content by keyword
    (``ok={...}`` for the 200 or 201 the route returns). The common ones are added for every operation."""
    declared: dict[int | str, dict[str, Any]] = {status: error(status) for status in statuses}
    if "ok" in extra:
        declared[200] = extra["ok"]
    if "created" in extra:
        declared[201] = extra["created"]
    return declared


def binary(media_type: str, description: str) -> dict[str, Any]:
    """A success answer (or body) of raw bytes in ``media_type``."""
    return {"description": description,
            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}


class Health(BaseModel):
    status: str = Field(description="Always 'ok' when the process answers.", pattern="^ok$")
    unit: str


class Check(BaseModel):
    ok: bool
    reason: str
    optional: bool | None = Field(default=None, description="Present (true) on optional dependencies.")


class Ready(BaseModel):
    ready: bool
    unit: str
    checks: dict[str, Check]
    degraded: list[str] = Field(description="Optional dependencies that do not answer.")
    backends: dict[str, str] | None = Field(default=None, description="Which server or engine serves each store.")


def _common(path: str, operation: dict[str, Any], scopes: list[str]) -> dict[str, dict[str, Any]]:
    """The answers the shared layers may give to this operation."""
    common: dict[str, dict[str, Any]] = {"413": error(413), "500": error(500)}
    has_body = "requestBody" in operation
    if has_body:
        common.update({"400": error(400), "415": error(415)})
    if has_body or operation.get("parameters"):
        common["422"] = error(422)
    if path == "/v1" or path.startswith("/v1/"):
        common.update({
            "401": error(401, headers={"WWW-Authenticate": CHALLENGE}),
            "429": error(429, headers={"Retry-After": {**RETRY_AFTER, "required": True}}),
            "503": error(503, headers={"Retry-After": RETRY_AFTER}),
        })
        if scopes:
            common["403"] = error(403, f"The token lacks the '{' '.join(scopes)}' scope.")
    return common


def _scopes(route: APIRoute) -> list[str]:
    """The scopes a route's require_scope dependencies ask for (auth.require_scope marks them)."""
    found = (getattr(dep.call, "scope", None) for dep in route.dependant.dependencies)
    return [scope for scope in found if isinstance(scope, str)]


def complete(document: dict[str, Any], scopes_of: dict[tuple[str, str], list[str]]) -> dict[str, Any]:
    """``document`` with the common answers on every operation, the Error schema and bearer security."""
    doc = copy.deepcopy(document)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(copy.deepcopy(ERROR_SCHEMAS))
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "An EdDSA (Ed25519) JWT for this unit's audience, with the operation's scope.",
    }
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            # FastAPI's own 422 (HTTPValidationError) is never sent: the handler answers with Error.
            if "422" in responses and "HTTPValidationError" in str(responses["422"]):
                del responses["422"]
            scopes = scopes_of.get((path, method.upper()), [])
            for status, answer in _common(path, operation, scopes).items():
                responses.setdefault(status, answer)
            # /ready's 503 too: a 503 may say when to come back wherever it comes from.
            if "503" in responses:
                responses["503"].setdefault("headers", {}).setdefault("Retry-After", RETRY_AFTER)
            for answer in responses.values():
                answer.setdefault("headers", {})["X-Request-Id"] = REQUEST_ID
                for media in answer.get("content", {}).values():
                    # A route's answers(ok={"model": ...}) lands next to the plain dict schema of its return
                    # annotation: the model alone says what the answer holds.
                    if isinstance(media.get("schema"), dict) and "$ref" in media["schema"]:
                        media["schema"] = {"$ref": media["schema"]["$ref"]}
            if path == "/v1" or path.startswith("/v1/"):
                operation["security"] = [{BEARER: scopes}]
    if "HTTPValidationError" not in str(doc.get("paths")):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return doc


def install(app: FastAPI, routes: Sequence[BaseRoute]) -> Callable[[], dict[str, Any]]:
    """Makes ``app.openapi`` serve the completed document (built once, on first request). ``routes``: the
    app's and the unit's own (an included router's routes are not in ``app.routes`` one by one)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            scopes_of = {(route.path_format, method): _scopes(route)
                         for route in routes if isinstance(route, APIRoute) for method in route.methods}
            base = get_openapi(title=app.title, version=app.version, description=app.description,
                               routes=app.routes)
            app.openapi_schema = complete(base, scopes_of)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return openapi
