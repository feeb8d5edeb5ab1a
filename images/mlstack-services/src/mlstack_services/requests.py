"""Request helpers shared by the units."""

from __future__ import annotations

from fastapi import Request

from .errors import ServiceError


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def require_json(request: Request) -> None:
    """A dependency for JSON endpoints: any other declared content type is a 415."""
    kind = media_type(request)
    if kind != "application/json" and not kind.endswith("+json"):
        shown = kind or "none"
        raise ServiceError(415, f"content type {shown!r}: send the body as application/json")
