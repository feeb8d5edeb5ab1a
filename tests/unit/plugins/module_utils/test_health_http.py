# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP probe's pure parts as tables: the verdict on an answer, URLs, credentials and headers."""

from __future__ import annotations

import json

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _health_http as hh

HEALTHY = json.dumps({"status": "ok", "checks": {"redis": True, "db": {"latency": 3}}, "items": [{"name": "a"}]})


# --- evaluate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expect_status", "expect_json", "ok", "reason_has"),
    [
        (200, b"", [200], {}, True, "HTTP status 200"),
        (204, b"", [200, 204], None, True, "HTTP status 204"),
        (503, b'{"status": "down"}', [200], {}, False, 'HTTP status 503, expected 200; body: {"status": "down"}'),
        (302, b"", [200, 204], {}, False, "HTTP status 302, expected 200, 204"),
        (200, HEALTHY.encode(), [200], {"status": "ok"}, True, "1 JSON field(s) as expected"),
        (200, HEALTHY.encode(), [200], {"status": "ok", "checks.redis": True}, True, "2 JSON field(s)"),
        (200, HEALTHY.encode(), [200], {"checks.db.latency": 3}, True, "as expected"),
        (200, HEALTHY.encode(), [200], {"items.0.name": "a"}, True, "as expected"),
        (200, HEALTHY.encode(), [200], {"items.1.name": "a"}, False, "JSON field 'items.1.name' is missing"),
        (200, HEALTHY.encode(), [200], {"checks.postgres": True}, False, "JSON field 'checks.postgres' is missing"),
        (200, HEALTHY.encode(), [200], {"status.deep": "x"}, False, "JSON field 'status.deep' is missing"),
        (
            200,
            HEALTHY.encode(),
            [200],
            {"status": "degraded"},
            False,
            'JSON field \'status\' is "ok", expected "degraded"',
        ),
        (200, b'{"up": 1}', [200], {"up": True}, False, "JSON field 'up' is 1, expected true"),
        (200, b'{"up": true}', [200], {"up": 1}, False, "JSON field 'up' is true, expected 1"),
        (200, b'{"n": 2.0}', [200], {"n": 2}, True, "as expected"),
        (200, b'{"v": null}', [200], {"v": None}, True, "as expected"),
        (200, b"<html>OK</html>", [200], {"status": "ok"}, False, "body is not valid JSON"),
        (200, b"\xff\xfe\xfa", [200], {"status": "ok"}, False, "body is not valid JSON"),
        (200, b"  ", [200], {"status": "ok"}, False, "the body is empty"),
        (200, b'["ok"]', [200], {"status": "ok"}, False, "JSON field 'status' is missing"),
        (500, b"x" * 5000, [200], {}, False, "x" * 200 + "..."),
    ],
)
def test_evaluate(status, body, expect_status, expect_json, ok, reason_has):
    got_ok, reason = hh.evaluate(status, body, expect_status, expect_json)
    assert got_ok is ok
    assert reason_has in reason


def test_evaluate_lists_every_bad_field():
    ok, reason = hh.evaluate(200, HEALTHY.encode(), [200], {"status": "up", "checks.redis": False, "gone": 1})
    assert not ok
    assert reason.count("JSON field") == 3


# --- URLs, headers, errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/health", "http://127.0.0.1:8080/health"),
        ("https://user:pa%40ss@api.example:8443/h", "https://api.example:8443/h"),
        ("http://admin@host/", "http://host/"),
        ("http://host/h?token=abc&full=1#frag", "http://host/h?token=********&full=********"),
        ("http://host/h?verbose", "http://host/h?verbose"),
        ("http://u:p@[::1]:9000/x", "http://[::1]:9000/x"),
    ],
)
def test_redact_url(url, expected):
    assert hh.redact_url(url) == expected


def test_split_credentials():
    assert hh.split_credentials("https://us%20er:pa%40ss@host:1/p?q=1") == ("https://host:1/p?q=1", "us er", "pa@ss")
    assert hh.split_credentials("http://host/") == ("http://host/", None, None)


@pytest.mark.parametrize(
    ("url", "error_has"),
    [
        ("http://127.0.0.1:8080/", None),
        ("https://host/", None),
        ("ftp://host/", "must start with http:// or https://"),
        ("127.0.0.1:8080/health", "must start with http:// or https://"),
        ("http:///path", "has no host"),
        ("http://host:abc/", "is malformed"),
    ],
)
def test_url_error(url, error_has):
    error = hh.url_error(url)
    assert (error is None) if error_has is None else (error_has in error)


def test_request_headers():
    assert hh.request_headers({"X-Probe": 1}) == {"X-Probe": "1", "User-Agent": hh.USER_AGENT}
    assert hh.request_headers(None, bearer_token="abc")["Authorization"] == "Bearer abc"
    assert hh.request_headers(None, user="u", password="p")["Authorization"] == "Basic dTpw"
    assert hh.request_headers({"user-agent": "me"}) == {"user-agent": "me"}
    with pytest.raises(ValueError, match="not both"):
        hh.request_headers({"authorization": "Basic x"}, bearer_token="abc")
    with pytest.raises(ValueError, match="not both"):
        hh.request_headers({"Authorization": "Basic x"}, user="u", password="p")
