"""One error shape for every unit: {"error": {"message", "type", "status"}} (OpenAI-like)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import HTTPException
from fastapi.responses import JSONResponse

# The error type each status is given (OpenAI's names where it has one); openapi.py lists them too.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "unavailable",
    504: "upstream_timeout",
}


def error_body(status: int, message: str) -> dict[str, dict[str, object]]:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "status": status}}


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=dict(headers or {}))


class ServiceError(HTTPException):
    """An HTTPException whose detail is the clear message the client reads."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=dict(headers) if headers else None)
