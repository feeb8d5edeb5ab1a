# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""qdrant_check's logic against FakeQdrant: an HTTP server replaying recorded Qdrant responses.

No Qdrant server can be run here; every record these tests see is marked ``fake``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _qdrant

API_KEY = "qdrant-s3cret-api-key-value"
RECORDED = json.loads((Path(__file__).parent / "fixtures" / "qdrant_responses.json").read_text())
FAKE = "FakeQdrant (recorded responses)"


class FakeQdrant(ThreadingHTTPServer):
    """Replays RECORDED; keeps which collections exist so a lost create or delete shows."""

    def __init__(self, enforce_key: bool = True, lose_points: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.enforce_key = enforce_key
        self.lose_points = lose_points
        self.collections: set[str] = set()
        self.calls: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: FakeQdrant

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        return None

    def _send(self, status: int, body: Any) -> None:
        raw = (json.dumps(body) if not isinstance(body, str) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/plain")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?")[0]
        self.server.calls.append(f"{self.command} {path}")
        if path != "/healthz" and self.server.enforce_key and self.headers.get("api-key") != API_KEY:
            self._send(*RECORDED["unauthorized"])
            return
        match = re.fullmatch(r"/collections/([\w-]+)(/.*)?", path)
        key = f"{self.command} {path}"
        name = ""
        if match:
            name = match.group(1)
            key = f"{self.command} /collections/{{name}}{match.group(2) or ''}"
            if self.command != "PUT" or match.group(2):
                if name not in self.server.collections:
                    self._send(404, json.loads(json.dumps(RECORDED["not_found"]).replace("{name}", name)))
                    return
            if self.command == "PUT" and not match.group(2):
                self.server.collections.add(name)
            if self.command == "DELETE":
                self.server.collections.discard(name)
        status, body = RECORDED[key]
        if key.endswith("/points/search") and self.server.lose_points:
            body = {**body, "result": []}
        self._send(status, json.loads(json.dumps(body).replace("{name}", name)))

    do_GET = do_PUT = do_POST = do_DELETE = _serve  # noqa: N815


@pytest.fixture
def fake_qdrant(request: pytest.FixtureRequest) -> Iterator[FakeQdrant]:
    server = FakeQdrant(**getattr(request, "param", {}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run(server: FakeQdrant, key: str = API_KEY) -> dict[str, dict[str, Any]]:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    records = _qdrant.check_qdrant("qdrant", url, key, 2.0, fake=FAKE)
    assert API_KEY not in json.dumps(records)
    assert all(r["fake"] == FAKE for r in records)
    return {r["check"]: r for r in records}


def test_all_checks_pass_against_the_recorded_server(fake_qdrant: FakeQdrant) -> None:
    by = _run(fake_qdrant)
    assert list(by) == ["health", "version", "api_key_required", "wrong_api_key_rejected", "collection_round_trip"]
    assert all(r["ok"] for r in by.values()), by
    assert by["version"]["observed"]["qdrant_version"] == "1.12.4"
    assert fake_qdrant.collections == set(), "the probe collection is deleted"


@pytest.mark.parametrize("fake_qdrant", [{"enforce_key": False}], indirect=True)
def test_a_server_without_an_api_key_fails_both_key_checks(fake_qdrant: FakeQdrant) -> None:
    by = _run(fake_qdrant)
    assert not by["api_key_required"]["ok"] and not by["wrong_api_key_rejected"]["ok"]
    assert by["collection_round_trip"]["ok"]


@pytest.mark.parametrize("fake_qdrant", [{"lose_points": True}], indirect=True)
def test_lost_points_fail_the_round_trip_and_the_collection_is_still_deleted(fake_qdrant: FakeQdrant) -> None:
    by = _run(fake_qdrant)
    assert not by["collection_round_trip"]["ok"]
    assert by["collection_round_trip"]["observed"]["deleted"] is True
    assert fake_qdrant.collections == set()


def test_a_wrong_key_fails_the_round_trip_without_leaking(fake_qdrant: FakeQdrant) -> None:
    by = _run(fake_qdrant, key="not-the-key")
    assert not by["version"]["ok"] and not by["collection_round_trip"]["ok"]
    assert "not-the-key" not in json.dumps(list(by.values()))


def test_an_unreachable_server_fails_health_and_stops() -> None:
    records = _qdrant.check_qdrant("qdrant", "http://127.0.0.1:9", API_KEY, 0.5)
    assert [r["check"] for r in records] == ["health"] and not records[0]["ok"]
