"""Request helpers shared by the units."""

from __future__ import annotations

from typing import Annotated

from fastapi import Request
from pydantic import AfterValidator

from .errors import ServiceError


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is blank (white space only)")
    return value


def no_nul(value: str) -> str:
    """Refuses U+0000: PostgreSQL text cannot hold it and FalkorDB's query header ends at it, so a stored
    NUL failed in the store, which answered 503 (store unavailable) for what is bad input (422); espeak-ng's
    C API (Piper's phonemizer too) cannot take it either, so speech text that held one was a 500."""
    if "\x00" in value:
        raise ValueError("holds a NUL character (U+0000)")
    return value


# A text field that must hold more than white space; the 422 names the field.
NonBlank = Annotated[str, AfterValidator(_not_blank)]
# Text a unit stores (PostgreSQL, FalkorDB, Neo4j): no NUL character.
StoredText = Annotated[str, AfterValidator(no_nul)]
# Text a unit speaks (espeak-ng, Piper): more than white space, no NUL character.
SpokenText = Annotated[NonBlank, AfterValidator(no_nul)]


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def require_json(request: Request) -> None:
    """A dependency for JSON endpoints: any other declared content type is a 415."""
    kind = media_type(request)
    if kind != "application/json" and not kind.endswith("+json"):
        shown = kind or "none"
        raise ServiceError(415, f"content type {shown!r}: send the body as application/json")
