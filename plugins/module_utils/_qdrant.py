# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of a Qdrant server over its REST API, as evidence records.

HTTP through ansible's open_url, so that the module needs nothing on the target. Tests run
it against recorded responses of a Qdrant 1.x server (no server can be had on the build
machines); the records then carry ``fake``.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
from typing import Any

from ansible.module_utils.urls import open_url

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record, scrub, stopwatch


def _call(base: str, method: str, path: str, api_key: str | None, body: Any, timeout: float) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body or text); an HTTP error status is a result, not an exception."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if api_key is not None:
        headers["api-key"] = api_key
    try:
        with open_url(base.rstrip("/") + path, data=data, method=method, headers=headers, timeout=timeout,
                      use_proxy=False) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def check_qdrant(unit: str, url: str, api_key: str, timeout: float = 10.0,
                 fake: str | None = None) -> list[dict[str, Any]]:
    """Records ``health``, ``version``, ``api_key_required``, ``wrong_api_key_rejected``, ``collection_round_trip``."""
    hide = [api_key]
    records: list[dict[str, Any]] = []

    def rec(check: str, ok: bool, observed: dict[str, Any], message: str) -> None:
        records.append(record(unit, check, ok, observed, scrub(message, hide), fake=fake))

    try:
        with stopwatch() as took:
            status, body = _call(url, "GET", "/healthz", api_key, None, timeout)
        rec("health", status == 200, {"url": url, "status": status, "latency_ms": took["ms"]}, str(body)[:200])
        status, body = _call(url, "GET", "/", api_key, None, timeout)
        version = body.get("version") if isinstance(body, dict) else None
        rec("version", status == 200 and bool(version), {"status": status, "qdrant_version": version},
            str(body.get("title", "")) if isinstance(body, dict) else str(body)[:200])
    except (OSError, urllib.error.URLError) as exc:
        rec("health", False, {"url": url}, f"{type(exc).__name__}: {exc}")
        return records

    status, body = _call(url, "GET", "/collections", None, None, timeout)
    rec("api_key_required", status in (401, 403), {"status": status}, "no api-key header")
    wrong = api_key + "-wrong-" + secrets.token_hex(4)
    hide.append(wrong)
    status, body = _call(url, "GET", "/collections", wrong, None, timeout)
    rec("wrong_api_key_rejected", status in (401, 403), {"status": status}, "a wrong api-key header")

    name = "mlstack-check-" + secrets.token_hex(4)
    steps: dict[str, Any] = {"collection": name}
    try:
        with stopwatch() as took:
            schema = {"vectors": {"size": 4, "distance": "Cosine"}}
            status, reply = _call(url, "PUT", f"/collections/{name}", api_key, schema, timeout)
            steps["created"] = status == 200 and isinstance(reply, dict) and reply.get("result") is True
            points = {"points": [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4], "payload": {"probe": name}},
                                 {"id": 2, "vector": [0.4, 0.3, 0.2, 0.1], "payload": {"probe": "other"}}]}
            status, reply = _call(url, "PUT", f"/collections/{name}/points?wait=true", api_key, points, timeout)
            completed = isinstance(reply, dict) and reply.get("result", {}).get("status") == "completed"
            steps["upserted"] = status == 200 and completed
            status, body = _call(url, "POST", f"/collections/{name}/points/search", api_key,
                                 {"vector": [0.1, 0.2, 0.3, 0.4], "limit": 1, "with_payload": True}, timeout)
            hits = body.get("result") if isinstance(body, dict) else None
            steps["nearest_is_probe"] = bool(hits) and hits[0].get("id") == 1 and \
                hits[0].get("payload", {}).get("probe") == name
        steps["latency_ms"] = took["ms"]
    finally:
        # Delete even after a failed step, so that a check leaves no collection behind.
        status, reply = _call(url, "DELETE", f"/collections/{name}", api_key, None, timeout)
        steps["deleted"] = status == 200 and isinstance(reply, dict) and reply.get("result") is True
    ok = all(steps.get(k) for k in ("created", "upserted", "nearest_is_probe", "deleted"))
    rec("collection_round_trip", ok, steps, "create, upsert two points, search the nearest, delete")
    return records
