# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health verdicts, backoff and percentiles as tables; the probes against real local servers."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _health as h

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
    got_ok, reason = h.evaluate(status, body, expect_status, expect_json)
    assert got_ok is ok
    assert reason_has in reason


def test_evaluate_lists_every_bad_field():
    ok, reason = h.evaluate(200, HEALTHY.encode(), [200], {"status": "up", "checks.redis": False, "gone": 1})
    assert not ok
    assert reason.count("JSON field") == 3


# --- percentiles -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 50, 7.0),
        ([7.0], 95, 7.0),
        ([1, 2, 3, 4, 5], 50, 3),
        ([5, 1, 4, 2, 3], 50, 3),
        ([1, 2, 3, 4, 5], 95, 5),
        ([1, 2, 3, 4], 50, 2),
        (list(range(1, 21)), 50, 10),
        (list(range(1, 21)), 95, 19),
        (list(range(1, 101)), 95, 95),
        (list(range(1, 101)), 99, 99),
        ([3, 1, 2], 0, 1),
        ([3, 1, 2], 100, 3),
    ],
)
def test_percentile_nearest_rank(values, p, expected):
    assert h.percentile(values, p) == expected


@pytest.mark.parametrize("p", [-1, 100.5])
def test_percentile_out_of_range(p):
    with pytest.raises(ValueError, match="between 0 and 100"):
        h.percentile([1.0], p)


def test_latency_summary():
    assert h.latency_summary([4.0, 1.0, 3.0, 2.0, 10.0]) == {"min": 1.0, "p50": 3.0, "p95": 10.0, "max": 10.0}
    assert h.latency_summary([]) == {"min": None, "p50": None, "p95": None, "max": None}


# --- backoff and waiting ---------------------------------------------------------------


class FakeTime:
    """A clock that moves only when slept on (plus a fixed cost per probe)."""

    def __init__(self, probe_cost: float = 0.0) -> None:
        self.now = 100.0
        self.probe_cost = probe_cost
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(fake: FakeTime, attempts: list[h.Attempt]):
    """A probe that returns the given attempts in order, then repeats the last one."""
    calls = {"n": 0}

    def probe() -> h.Attempt:
        fake.now += fake.probe_cost
        index = min(calls["n"], len(attempts) - 1)
        calls["n"] += 1
        return attempts[index]

    probe.calls = calls
    return probe


REFUSED = h.Attempt(False, "connection refused by http://127.0.0.1:9/")
UP = h.Attempt(True, "HTTP status 200", status=200, latency_ms=1.5)


@pytest.mark.parametrize(
    ("attempt", "delay", "backoff", "max_delay", "expected"),
    [
        (1, 0.5, 1.5, 5, 0.5),
        (2, 0.5, 1.5, 5, 0.75),
        (3, 0.5, 1.5, 5, 1.125),
        (4, 0.5, 1.5, 5, 1.6875),
        (7, 0.5, 1.5, 5, 5),
        (3, 1, 1, 5, 1),
        (1, 10, 2, 5, 5),
        (5000, 0.5, 1.5, 5, 5),  # 1.5 ** 4999 overflows a float
    ],
)
def test_backoff_delay(attempt, delay, backoff, max_delay, expected):
    assert h.backoff_delay(attempt, delay, backoff, max_delay) == pytest.approx(expected)


def test_backoff_schedule_is_capped_and_gives_up_with_the_last_reason():
    fake = FakeTime()
    attempts = [h.Attempt(False, f"timed out after 3 s waiting for x (try {i})") for i in range(1, 9)]
    attempts.append(h.Attempt(False, "connection refused by http://127.0.0.1:9/ (the last one)"))
    probe = scripted(fake, attempts)
    result = h.wait_until_healthy(
        probe, retries=8, delay=0.5, backoff=1.5, max_delay=2.0, sleep=fake.sleep, clock=fake.clock
    )
    assert not result.ok
    assert result.attempts == 9 == probe.calls["n"]
    assert result.delays == pytest.approx([0.5, 0.75, 1.125, 1.6875, 2.0, 2.0, 2.0, 2.0])
    assert fake.sleeps == result.delays  # no sleep after the last attempt
    assert result.waited_s == pytest.approx(sum(result.delays), abs=1e-3)
    assert result.reason.startswith("connection refused by http://127.0.0.1:9/ (the last one)")
    assert "gave up after 9 attempt(s) in 12.1 s" in result.reason
    assert result.last is attempts[-1]


@pytest.mark.parametrize("failures", [0, 1, 3, 10])
def test_success_after_failures(failures):
    fake = FakeTime(probe_cost=0.01)
    probe = scripted(fake, [REFUSED] * failures + [UP])
    result = h.wait_until_healthy(
        probe, retries=10, delay=0.5, backoff=1.5, max_delay=5, sleep=fake.sleep, clock=fake.clock
    )
    assert result.ok
    assert result.attempts == failures + 1
    assert len(result.delays) == failures
    assert result.last is UP
    assert result.reason == "HTTP status 200"


def test_retries_zero_probes_once():
    fake = FakeTime()
    result = h.wait_until_healthy(scripted(fake, [REFUSED]), retries=0, sleep=fake.sleep, clock=fake.clock)
    assert (result.ok, result.attempts, result.delays) == (False, 1, [])


def test_fatal_attempt_is_not_retried():
    fake = FakeTime()
    fatal = h.Attempt(False, "TLS certificate of https://x/ failed verification: self-signed", fatal=True)
    result = h.wait_until_healthy(scripted(fake, [REFUSED, fatal, UP]), retries=10, sleep=fake.sleep, clock=fake.clock)
    assert not result.ok
    assert result.attempts == 2
    assert "not retried" in result.reason and "self-signed" in result.reason


def test_deadline_cuts_the_last_sleep_and_stops():
    fake = FakeTime()
    result = h.wait_until_healthy(
        scripted(fake, [REFUSED]),
        retries=100,
        delay=0.5,
        backoff=2,
        max_delay=5,
        sleep=fake.sleep,
        clock=fake.clock,
        deadline=2.0,
    )
    assert not result.ok
    assert result.delays == pytest.approx([0.5, 1.0, 0.5])
    assert result.attempts == 4
    assert "gave up at the 2 s deadline after 4 attempt(s)" in result.reason


def test_measure_counts_failures_and_keeps_ok_latencies():
    fake = FakeTime()
    slow = h.Attempt(True, "HTTP status 200", status=200, latency_ms=9.0)
    down = h.Attempt(False, "HTTP status 503, expected 200")
    m = h.measure(scripted(fake, [UP, slow, down, UP, UP]), 5)
    assert (m.total, m.ok, m.latencies_ms, m.last_failure) == (5, 4, [1.5, 9.0, 1.5, 1.5], down.reason)
    assert h.measure(scripted(fake, [UP]), 0) == h.Measurement(total=0, ok=0)


@pytest.mark.parametrize(
    ("args", "count"),
    [
        ((60, 0.5, 1.5, 5, 3, 5), 0),
        ((0, 0, 1, 0, 0.1, 0), 0),
        ((-1, -0.1, 0.5, -1, 0, -1), 6),
    ],
)
def test_validate_wait(args, count):
    assert len(h.validate_wait(*args)) == count


# --- report ----------------------------------------------------------------------------


def test_report_healthy():
    wait = h.WaitResult(True, 3, 1.27, "HTTP status 200", UP, [0.5, 0.75])
    m = h.Measurement(total=5, ok=5, latencies_ms=[1.0, 2.0, 3.0, 4.0, 5.0])
    out = h.report("chat", "health", "http://127.0.0.1:8080/health", wait, m)
    assert out["ok"] is True
    assert (out["status"], out["attempts"], out["waited_s"]) == (200, 3, 1.27)
    assert out["latency_ms"] == {"min": 1.0, "p50": 3.0, "p95": 5.0, "max": 5.0}
    assert out["reason"] == "HTTP status 200 after 3 attempt(s) in 1.3 s"
    (rec,) = out["evidence"]
    assert (rec["unit"], rec["check"], rec["ok"], rec["message"]) == ("chat", "health", True, out["reason"])
    assert rec["observed"] == {
        "url": "http://127.0.0.1:8080/health",
        "status": 200,
        "attempts": 3,
        "waited_s": 1.27,
        "latency_p50_ms": 3.0,
        "latency_p95_ms": 5.0,
        "probes_ok": 5,
        "probes_slow": 0,
        "probes_total": 5,
        "latency_bound_ms": None,
    }
    assert out["msg"].startswith("chat: health ok: ")


def test_measure_counts_a_timed_out_probe_as_slow_with_the_timeout_as_its_latency():
    fake = FakeTime()
    timed_out = h.Attempt(False, "timed out after 10 s waiting for http://x/", slow=True)
    m = h.measure(scripted(fake, [UP, timed_out, UP]), 3, timeout=10.0)
    assert (m.ok, m.slow, m.last_failure, m.latencies_ms) == (2, 1, "", [1.5, 10000.0, 1.5])


def test_report_slow_is_not_down_without_a_bound():
    """A busy host: one latency probe of five timed out. Evidence, not a failure."""
    wait = h.WaitResult(True, 1, 0.2, "HTTP status 200", UP)
    m = h.Measurement(total=5, ok=4, latencies_ms=[1.0, 2.0, 3.0, 4.0, 10000.0], slow=1,
                      last_slow="timed out after 10 s waiting for http://x/")
    out = h.report("coordination", "health", "http://x/", wait, m)
    assert out["ok"] is True
    assert "slow, not down: 1 of 5 latency probes timed out" in out["reason"]
    assert out["evidence"][0]["observed"]["probes_slow"] == 1
    assert out["latency_ms"]["p95"] == 10000.0


def test_report_slow_past_the_declared_bound_fails_and_says_so():
    wait = h.WaitResult(True, 1, 0.2, "HTTP status 200", UP)
    m = h.Measurement(total=5, ok=4, latencies_ms=[1.0, 2.0, 3.0, 4.0, 10000.0], slow=1)
    out = h.report("coordination", "health", "http://x/", wait, m, latency_bound_ms=500.0)
    assert out["ok"] is False
    assert "too slow: p95 latency 10000 ms is over the declared bound of 500 ms" in out["reason"]
    assert out["evidence"][0]["observed"]["latency_bound_ms"] == 500.0


def test_report_a_refused_probe_after_success_is_still_down_even_with_slow_ones():
    wait = h.WaitResult(True, 1, 0.2, "HTTP status 200", UP)
    m = h.Measurement(total=5, ok=3, latencies_ms=[1.0, 2.0, 3.0, 10000.0], slow=1,
                      last_failure="connection refused by x")
    out = h.report("chat", "health", "http://x/", wait, m)
    assert out["ok"] is False and "1 of 5 latency probes failed" in out["reason"]


def test_a_timeout_is_slow_and_a_refusal_is_not():
    assert h.describe_error(TimeoutError(), "http://x/", 10).slow is True
    assert h.describe_error(ConnectionRefusedError(), "http://x/", 10).slow is False


def test_report_flaky_after_success_is_not_healthy():
    wait = h.WaitResult(True, 1, 0.01, "HTTP status 200", UP)
    m = h.Measurement(total=5, ok=3, latencies_ms=[1.0, 2.0, 3.0], last_failure="HTTP status 503, expected 200")
    out = h.report("chat", "health", "http://x/", wait, m)
    assert out["ok"] is False
    assert "2 of 5 latency probes failed, the last: HTTP status 503" in out["reason"]
    assert out["evidence"][0]["observed"]["probes_ok"] == 3


def test_report_failed_wait_masks_secrets_and_has_no_latency():
    last = h.Attempt(False, "HTTP status 401, expected 200; body: bad token s3cr3t-tok")
    wait = h.WaitResult(False, 4, 1.9, last.reason + " (gave up after 4 attempt(s) in 1.9 s)", last)
    out = h.report("chat", "ready", "http://x/", wait, None, secrets=["s3cr3t-tok", None])
    assert out["ok"] is False
    assert "s3cr3t-tok" not in json.dumps(out)
    assert "********" in out["reason"]
    assert out["latency_ms"] == {"min": None, "p50": None, "p95": None, "max": None}
    assert out["evidence"][0]["check"] == "ready"
    assert out["evidence"][0]["observed"]["probes_total"] == 0


def test_report_without_latency_probes_uses_the_successful_attempt():
    wait = h.WaitResult(True, 1, 0.0, "TCP connect to db:5432 ok", h.Attempt(True, "ok", latency_ms=0.4))
    out = h.report("db", "health", "tcp://db:5432", wait, h.Measurement(total=0, ok=0))
    assert out["ok"] is True
    assert out["latency_ms"] == {"min": 0.4, "p50": 0.4, "p95": 0.4, "max": 0.4}
    assert out["status"] is None


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
    assert h.redact_url(url) == expected


def test_split_credentials():
    assert h.split_credentials("https://us%20er:pa%40ss@host:1/p?q=1") == ("https://host:1/p?q=1", "us er", "pa@ss")
    assert h.split_credentials("http://host/") == ("http://host/", None, None)


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
    error = h.url_error(url)
    assert (error is None) if error_has is None else (error_has in error)


def test_request_headers():
    assert h.request_headers({"X-Probe": 1}) == {"X-Probe": "1", "User-Agent": h.USER_AGENT}
    assert h.request_headers(None, bearer_token="abc")["Authorization"] == "Bearer abc"
    assert h.request_headers(None, user="u", password="p")["Authorization"] == "Basic dTpw"
    assert h.request_headers({"user-agent": "me"}) == {"user-agent": "me"}
    with pytest.raises(ValueError, match="not both"):
        h.request_headers({"authorization": "Basic x"}, bearer_token="abc")
    with pytest.raises(ValueError, match="not both"):
        h.request_headers({"Authorization": "Basic x"}, user="u", password="p")


@pytest.mark.parametrize(
    ("exc", "reason_has", "fatal"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused by T", False),
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "connection refused by T", False),
        (TimeoutError("timed out"), "timed out after 3 s waiting for T", False),
        (socket.timeout("timed out"), "timed out after 3 s", False),  # noqa: UP041
        (urllib.error.URLError(TimeoutError("timed out")), "timed out after 3 s", False),
        (socket.gaierror(-2, "Name or service not known"), "DNS lookup failed for T: Name or service not known", False),
        (urllib.error.URLError("unknown url type: ftp"), "cannot reach T: unknown url type: ftp", False),
        (
            ssl.SSLCertVerificationError(1, "certificate verify failed"),
            "TLS certificate of T failed verification",
            True,
        ),
        (ssl.SSLError(1, "wrong version number"), "TLS handshake with T failed", False),
        (http.client.RemoteDisconnected("closed"), "T closed the connection without an HTTP response", False),
        (ConnectionResetError(104, "reset"), "connection reset by T", False),
        (http.client.BadStatusLine("garbage"), "invalid HTTP response from T: BadStatusLine", False),
        (OSError(113, "No route to host"), "cannot connect to T: No route to host", False),
        (ValueError("unknown url type"), "cannot probe T", True),
    ],
)
def test_describe_error(exc, reason_has, fatal):
    err = h.describe_error(exc, "T", 3.0)
    assert reason_has in err.reason
    assert err.fatal is fatal


# --- real probes against local servers -------------------------------------------------


class HealthHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, HEALTHY.encode())
        elif self.path == "/down":
            self._send(503, b'{"status": "down", "checks": {"redis": false}}')
        elif self.path == "/redirect":
            self._send(302, b"", Location="/health")
        elif self.path == "/text":
            self._send(200, b"OK", "text/plain")
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send(200, b"{}")
        elif self.path == "/auth":
            good = self.headers.get("Authorization") == "Bearer let-me-in"
            self._send(200 if good else 401, b'{"status": "ok"}' if good else b'{"error": "unauthorized"}')
        else:
            self._send(404, b'{"error": "not found"}')


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HealthHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _listener(answer: bytes | None = None) -> tuple[socket.socket, threading.Thread]:
    """A TCP listener that accepts, optionally writes ``answer``, and closes each connection."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _addr = sock.accept()
            except OSError:
                return
            with conn:
                if answer is not None:
                    conn.recv(4096)
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, thread


@pytest.fixture
def tcp_port() -> Iterator[int]:
    sock, _port = _listener()
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def refused_port() -> int:
    """A port nothing listens on: bound once by the OS, then released."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_real_probe_http_healthy(http_base):
    status, body, latency = h.probe_http(f"{http_base}/health", "GET", {"User-Agent": h.USER_AGENT}, 3.0)
    assert status == 200
    assert json.loads(body)["checks"]["redis"] is True
    assert latency > 0


def test_real_probe_http_returns_error_statuses_and_redirects(http_base):
    status, body, _latency = h.probe_http(f"{http_base}/down")
    assert (status, json.loads(body)["status"]) == (503, "down")
    assert h.probe_http(f"{http_base}/redirect")[0] == 302
    assert h.probe_http(f"{http_base}/nowhere")[0] == 404
    assert h.probe_http(f"{http_base}/health", method="HEAD")[:2] == (200, b"")


@pytest.mark.parametrize(
    ("path", "expect_json", "ok", "reason_has"),
    [
        ("/health", {"status": "ok", "checks.redis": True}, True, "2 JSON field(s) as expected"),
        ("/down", {"status": "ok"}, False, 'HTTP status 503, expected 200; body: {"status": "down"'),
        ("/text", {"status": "ok"}, False, "body is not valid JSON"),
        ("/health", {"checks.postgres": True}, False, "JSON field 'checks.postgres' is missing"),
        ("/redirect", {}, False, "HTTP status 302, expected 200"),
    ],
)
def test_real_http_check(http_base, path, expect_json, ok, reason_has):
    attempt = h.http_check(f"{http_base}{path}", [200], expect_json)
    assert attempt.ok is ok
    assert reason_has in attempt.reason


def test_real_http_check_with_bearer_token(http_base):
    url = f"{http_base}/auth"
    assert h.http_check(url, [200], {}, headers=h.request_headers(None)).status == 401
    assert h.http_check(url, [200], {"status": "ok"}, headers=h.request_headers(None, "let-me-in")).ok


def test_real_probe_http_timeout(http_base):
    with pytest.raises(h.ProbeError, match=r"timed out after 0.2 s waiting for http://127\.0\.0\.1:\d+/slow"):
        h.probe_http(f"{http_base}/slow", timeout=0.2)


def test_real_probe_http_refused(refused_port):
    with pytest.raises(h.ProbeError, match=rf"connection refused by http://127\.0\.0\.1:{refused_port}/") as info:
        h.probe_http(f"http://127.0.0.1:{refused_port}/", timeout=2)
    assert not info.value.fatal


@pytest.mark.parametrize(
    ("answer", "reason_has"),
    [
        (b"", "closed the connection without an HTTP response"),
        (b"garbage\r\n\r\n", "invalid HTTP response from"),
    ],
)
def test_real_probe_http_broken_server(answer, reason_has):
    sock, _port = _listener(answer)
    try:
        with pytest.raises(h.ProbeError, match=reason_has):
            h.probe_http(f"http://127.0.0.1:{sock.getsockname()[1]}/", timeout=2)
    finally:
        sock.close()


def test_real_probe_https_with_missing_ca_file_is_fatal(refused_port):
    with pytest.raises(h.ProbeError, match="cannot load CA certificates") as info:
        h.probe_http(f"https://127.0.0.1:{refused_port}/", ca_path="/nonexistent/ca.pem")
    assert info.value.fatal


def test_real_probe_tcp(tcp_port):
    assert h.probe_tcp("127.0.0.1", tcp_port, 2.0) > 0
    assert h.tcp_check("127.0.0.1", tcp_port, 2.0).ok


def test_real_probe_tcp_refused(refused_port):
    with pytest.raises(h.ProbeError, match=rf"connection refused by tcp://127\.0\.0\.1:{refused_port}"):
        h.probe_tcp("127.0.0.1", refused_port, 2.0)
    attempt = h.tcp_check("127.0.0.1", refused_port, 2.0)
    assert not attempt.ok and "connection refused" in attempt.reason


def test_real_wait_and_measure(http_base):
    def probe() -> h.Attempt:
        return h.http_check(f"{http_base}/health", [200], {"status": "ok"})

    wait = h.wait_until_healthy(probe, retries=2, delay=0.01)
    assert wait.ok and wait.attempts == 1
    m = h.measure(probe, 5)
    assert (m.total, m.ok, len(m.latencies_ms)) == (5, 5, 5)
    out = h.report("svc", "health", h.redact_url(f"{http_base}/health"), wait, m)
    assert out["ok"] and out["latency_ms"]["p50"] > 0


def test_real_wait_gives_up_on_refused_port(refused_port):
    def probe() -> h.Attempt:
        return h.http_check(f"http://127.0.0.1:{refused_port}/", [200], {}, timeout=1)

    wait = h.wait_until_healthy(probe, retries=2, delay=0.01, backoff=2, max_delay=0.05)
    assert not wait.ok
    assert wait.attempts == 3
    assert wait.delays == pytest.approx([0.01, 0.02])
    assert "connection refused" in wait.reason and "gave up after 3 attempt(s)" in wait.reason


@pytest.fixture(scope="module")
def https_server(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """The health server behind TLS with a self-signed certificate for 127.0.0.1: (base url, cert path)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), HealthHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", str(cert)
    server.shutdown()
    server.server_close()


def test_real_https_untrusted_certificate_is_fatal(https_server):
    base, _ca = https_server
    attempt = h.http_check(f"{base}/health", [200], {}, timeout=2)
    assert not attempt.ok and attempt.fatal
    assert "TLS certificate of" in attempt.reason and "failed verification" in attempt.reason
    wait = h.wait_until_healthy(lambda: h.http_check(f"{base}/health", [200], {}, timeout=2), retries=5, delay=0.01)
    assert (wait.ok, wait.attempts) == (False, 1)


def test_real_https_with_ca_path_or_without_validation(https_server):
    base, cert = https_server
    assert h.http_check(f"{base}/health", [200], {"status": "ok"}, ca_path=cert).ok
    assert h.probe_http(f"{base}/health", validate_certs=False)[0] == 200
