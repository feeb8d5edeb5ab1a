# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Why a probe got no answer, as a table; the HTTP and TCP probes, the wait and the measurement
against real local servers."""

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
from ansible_collections.aiops.mlstack.plugins.module_utils import _health_http as hh
from ansible_collections.aiops.mlstack.plugins.module_utils import _health_tcp as ht
from ansible_collections.aiops.mlstack.plugins.module_utils import _health_wait as hw

HEALTHY = json.dumps({"status": "ok", "checks": {"redis": True, "db": {"latency": 3}}, "items": [{"name": "a"}]})


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
    status, body, latency = hh.probe_http(f"{http_base}/health", "GET", {"User-Agent": hh.USER_AGENT}, 3.0)
    assert status == 200
    assert json.loads(body)["checks"]["redis"] is True
    assert latency > 0


def test_real_probe_http_returns_error_statuses_and_redirects(http_base):
    status, body, _latency = hh.probe_http(f"{http_base}/down")
    assert (status, json.loads(body)["status"]) == (503, "down")
    assert hh.probe_http(f"{http_base}/redirect")[0] == 302
    assert hh.probe_http(f"{http_base}/nowhere")[0] == 404
    assert hh.probe_http(f"{http_base}/health", method="HEAD")[:2] == (200, b"")


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
    attempt = hh.http_check(f"{http_base}{path}", [200], expect_json)
    assert attempt.ok is ok
    assert reason_has in attempt.reason


def test_real_http_check_with_bearer_token(http_base):
    url = f"{http_base}/auth"
    assert hh.http_check(url, [200], {}, headers=hh.request_headers(None)).status == 401
    assert hh.http_check(url, [200], {"status": "ok"}, headers=hh.request_headers(None, "let-me-in")).ok


def test_real_probe_http_timeout(http_base):
    with pytest.raises(h.ProbeError, match=r"timed out after 0.2 s waiting for http://127\.0\.0\.1:\d+/slow"):
        hh.probe_http(f"{http_base}/slow", timeout=0.2)


def test_real_probe_http_refused(refused_port):
    with pytest.raises(h.ProbeError, match=rf"connection refused by http://127\.0\.0\.1:{refused_port}/") as info:
        hh.probe_http(f"http://127.0.0.1:{refused_port}/", timeout=2)
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
            hh.probe_http(f"http://127.0.0.1:{sock.getsockname()[1]}/", timeout=2)
    finally:
        sock.close()


def test_real_probe_https_with_missing_ca_file_is_fatal(refused_port):
    with pytest.raises(h.ProbeError, match="cannot load CA certificates") as info:
        hh.probe_http(f"https://127.0.0.1:{refused_port}/", ca_path="/nonexistent/ca.pem")
    assert info.value.fatal


def test_real_probe_tcp(tcp_port):
    assert ht.probe_tcp("127.0.0.1", tcp_port, 2.0) > 0
    assert ht.tcp_check("127.0.0.1", tcp_port, 2.0).ok


def test_real_probe_tcp_refused(refused_port):
    with pytest.raises(h.ProbeError, match=rf"connection refused by tcp://127\.0\.0\.1:{refused_port}"):
        ht.probe_tcp("127.0.0.1", refused_port, 2.0)
    attempt = ht.tcp_check("127.0.0.1", refused_port, 2.0)
    assert not attempt.ok and "connection refused" in attempt.reason


def test_real_wait_and_measure(http_base):
    def probe() -> h.Attempt:
        return hh.http_check(f"{http_base}/health", [200], {"status": "ok"})

    wait = hw.wait_until_healthy(probe, retries=2, delay=0.01)
    assert wait.ok and wait.attempts == 1
    m = hw.measure(probe, 5)
    assert (m.total, m.ok, len(m.latencies_ms)) == (5, 5, 5)
    out = hw.report("svc", "health", hh.redact_url(f"{http_base}/health"), wait, m)
    assert out["ok"] and out["latency_ms"]["p50"] > 0


def test_real_wait_gives_up_on_refused_port(refused_port):
    def probe() -> h.Attempt:
        return hh.http_check(f"http://127.0.0.1:{refused_port}/", [200], {}, timeout=1)

    wait = hw.wait_until_healthy(probe, retries=2, delay=0.01, backoff=2, max_delay=0.05)
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
    attempt = hh.http_check(f"{base}/health", [200], {}, timeout=2)
    assert not attempt.ok and attempt.fatal
    assert "TLS certificate of" in attempt.reason and "failed verification" in attempt.reason
    wait = hw.wait_until_healthy(lambda: hh.http_check(f"{base}/health", [200], {}, timeout=2), retries=5, delay=0.01)
    assert (wait.ok, wait.attempts) == (False, 1)


def test_real_https_with_ca_path_or_without_validation(https_server):
    base, cert = https_server
    assert hh.http_check(f"{base}/health", [200], {"status": "ok"}, ca_path=cert).ok
    assert hh.probe_http(f"{base}/health", validate_certs=False)[0] == 200
