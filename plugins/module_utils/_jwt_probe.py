# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The requests of the JWT attacks, where the unit's address is reachable.

The tokens are minted on the controller (the signing key never leaves it); the requests go
from wherever the unit's backend address answers: the controller's process for a local
engine, the unit's Docker host (M(aiops.mlstack.jwt_probe)) for another. Stdlib only.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")


def v1_endpoints(openapi: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(METHOD, path) of every /v1 operation, path parameters filled with a harmless value."""
    out = []
    for path, operations in sorted((openapi.get("paths") or {}).items()):
        if not (path == "/v1" or path.startswith("/v1/")):
            continue
        concrete = re.sub(r"\{[^}]+\}", "probe0", path)
        out += [(method.upper(), concrete) for method in METHODS if method in (operations or {})]
    return out


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname or "", parts.port or 443, timeout=timeout,
                                           context=ssl.create_default_context()), target
    # Plain http.client: a TLS context per request (open_url's) was a fifth of the quality
    # stream's CPU with ~100 attacks per unit.
    return http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout), target


def status(method: str, url: str, token: str | None, timeout: float) -> int:
    """The status a request gets; a redirect is an answer, not followed."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    connection, target = _connection(url, timeout)
    try:
        connection.request(method, target, body=body, headers=headers)
        return int(connection.getresponse().status)
    finally:
        connection.close()


def openapi_of(base: str, timeout: float) -> Any:
    connection, target = _connection(base + "/openapi.json", timeout)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        if response.status != 200:
            raise OSError(f"GET {base}/openapi.json answered {response.status}")
        return json.loads(response.read())
    finally:
        connection.close()


def probe(base: str, tokens: Mapping[str, str | None],
          timeout: float) -> tuple[list[tuple[str, str]], dict[str, dict[str, int]]]:
    """Every /v1 endpoint of the service at ``base`` and the status each token got from each."""
    base = base.rstrip("/")
    endpoints = v1_endpoints(openapi_of(base, timeout))
    answers = {name: {f"{m} {p}": status(m, base + p, tok, timeout) for m, p in endpoints}
               for name, tok in tokens.items()}
    return endpoints, answers
