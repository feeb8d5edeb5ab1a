# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP(S) and TCP health probes, a wait with exponential backoff, latency percentiles.

Standard library only (``urllib.request``, ``http.client``, ``socket``, ``ssl``) so that
it runs on any target's Python. The I/O seam is two functions, :func:`probe_http` and
:func:`probe_tcp`; they raise :class:`ProbeError` with a readable reason when there is no
answer. Everything else is pure: :func:`evaluate` judges an answer,
:func:`wait_until_healthy` and :func:`measure` take the probe, the sleep and the clock as
arguments, so unit tests run them without a network and without waiting.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record, scrub

MAX_BODY_BYTES = 1024 * 1024
EXCERPT_CHARS = 200
USER_AGENT = "aiops.mlstack-service_health"
REDACTED = "********"

_MISSING = object()


class ProbeError(Exception):
    """A probe that got no HTTP answer or no TCP connection; ``reason`` says why.

    ``fatal`` marks errors that waiting cannot fix (a certificate that fails
    verification, an unreadable CA file, a malformed URL): a wait stops at once instead
    of running out its retries.
    """

    def __init__(self, reason: str, fatal: bool = False, slow: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal
        # A probe that ran out of time: the unit may be busy, not down (see ``report``).
        self.slow = slow


@dataclass(frozen=True)
class Attempt:
    """The verdict of one probe: ``ok``, why, the HTTP status (None for TCP or no answer)."""

    ok: bool
    reason: str
    status: int | None = None
    latency_ms: float | None = None
    fatal: bool = False
    slow: bool = False


@dataclass
class WaitResult:
    """What :func:`wait_until_healthy` saw: the outcome, the attempts and the sleeps taken."""

    ok: bool
    attempts: int
    waited_s: float
    reason: str
    last: Attempt | None = None
    delays: list[float] = field(default_factory=list)


@dataclass
class Measurement:
    """Latency probes taken after the first success: how many, how many ok, their latencies."""

    total: int
    ok: int
    latencies_ms: list[float] = field(default_factory=list)
    last_failure: str = ""
    # Probes that timed out: slow, not down. Their latency is at least the timeout.
    slow: int = 0
    last_slow: str = ""


# --- URLs and headers (pure) -----------------------------------------------------------


def url_error(url: str) -> str | None:
    """Why ``url`` cannot be probed, or None: an http(s) scheme and a host are required."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError as exc:
        return f"url {redact_url(url)!r} is malformed: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"url {redact_url(url)!r} must start with http:// or https://"
    if not parts.hostname:
        return f"url {redact_url(url)!r} has no host"
    return None


def _host_port(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port is not None else host


def redact_url(url: str) -> str:
    """``url`` fit for a record: no user info, every query value masked, no fragment."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<malformed url>"
    query = "&".join(
        f"{name}={REDACTED}" if value else name
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit((parts.scheme, _host_port(parts), parts.path, query, ""))


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its user info, and the user name and password it carried (unquoted)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    clean = urllib.parse.urlunsplit((parts.scheme, _host_port(parts), parts.path, parts.query, parts.fragment))
    return clean, user, password


def request_headers(
    headers: dict[str, Any] | None,
    bearer_token: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> dict[str, str]:
    """The headers to send: ``headers``, plus ``Authorization`` from a bearer token or URL user info.

    Raises ValueError when more than one of them sets ``Authorization``.
    """
    out = {str(k): "" if v is None else str(v) for k, v in (headers or {}).items()}
    given = [k for k in out if k.lower() == "authorization"]
    if bearer_token:
        if given:
            raise ValueError("give either bearer_token or an Authorization header, not both")
        out["Authorization"] = f"Bearer {bearer_token}"
    elif user is not None:
        if given:
            raise ValueError("give either credentials in the url or an Authorization header, not both")
        pair = f"{user}:{password or ''}".encode()
        out["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    if not any(k.lower() == "user-agent" for k in out):
        out["User-Agent"] = USER_AGENT
    return out


# --- error reasons (pure) --------------------------------------------------------------


def describe_error(exc: BaseException, target: str, timeout: float) -> ProbeError:
    """A :class:`ProbeError` whose reason names the kind of failure and the target."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        inner = exc.reason
        if not isinstance(inner, BaseException):
            return ProbeError(f"cannot reach {target}: {inner}")
        exc = inner
    # socket.timeout is TimeoutError only from Python 3.10 on; targets may run 3.8.
    if isinstance(exc, (TimeoutError, socket.timeout)):  # noqa: UP041
        return ProbeError(f"timed out after {timeout:g} s waiting for {target}", slow=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or str(exc)
        return ProbeError(f"TLS certificate of {target} failed verification: {detail}", fatal=True)
    if isinstance(exc, ssl.SSLError):
        return ProbeError(f"TLS handshake with {target} failed: {getattr(exc, 'reason', None) or exc}")
    if isinstance(exc, socket.gaierror):
        return ProbeError(f"DNS lookup failed for {target}: {exc.strerror or exc}")
    if isinstance(exc, ConnectionRefusedError):
        return ProbeError(f"connection refused by {target} (nothing listens on that port)")
    if isinstance(exc, http.client.RemoteDisconnected):
        return ProbeError(f"{target} closed the connection without an HTTP response")
    if isinstance(exc, ConnectionResetError):
        return ProbeError(f"connection reset by {target}")
    if isinstance(exc, http.client.HTTPException):
        return ProbeError(f"invalid HTTP response from {target}: {type(exc).__name__}: {exc}")
    if isinstance(exc, OSError):
        return ProbeError(f"cannot connect to {target}: {exc.strerror or exc}")
    if isinstance(exc, ValueError):
        return ProbeError(f"cannot probe {target}: {exc}", fatal=True)
    return ProbeError(f"probe of {target} failed: {type(exc).__name__}: {exc}")


# --- the I/O seam ----------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answers too: a 3xx is reported as it is, not followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def tls_context(ca_path: str | None, validate_certs: bool) -> ssl.SSLContext:
    """A client TLS context that trusts ``ca_path`` (or the system store), or checks nothing."""
    context = ssl.create_default_context(cafile=ca_path or None)
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def probe_http(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    timeout: float = 3.0,
    ca_path: str | None = None,
    validate_certs: bool = True,
) -> tuple[int, bytes, float]:
    """Send one request; return the HTTP status, up to 1 MiB of body and the latency in ms.

    Any HTTP answer is returned, 4xx and 5xx included, and redirects are not followed.
    No proxy from the environment is used. Raises :class:`ProbeError` when there is no
    answer (refused, timed out, DNS, TLS, a broken response).
    """
    target = redact_url(url)
    handlers: list[Any] = [urllib.request.ProxyHandler({}), _NoRedirect()]
    if url.lower().startswith("https:"):
        try:
            context = tls_context(ca_path, validate_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ProbeError(f"cannot load CA certificates from {ca_path}: {exc}", fatal=True) from None
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    start = time.perf_counter()
    try:
        request = urllib.request.Request(url, method=method, headers=dict(headers or {}))
        with opener.open(request, timeout=timeout) as response:
            body = response.read(MAX_BODY_BYTES)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
        try:
            body = exc.read(MAX_BODY_BYTES) or b""
        except (OSError, http.client.HTTPException):
            body = b""
        finally:
            exc.close()
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise describe_error(exc, target, timeout) from None
    return status, body, round((time.perf_counter() - start) * 1000.0, 2)


def probe_tcp(host: str, port: int, timeout: float = 3.0) -> float:
    """Open and close one TCP connection; return the connect latency in ms.

    Raises :class:`ProbeError` when the connection fails.
    """
    target = f"tcp://{f'[{host}]' if ':' in host else host}:{port}"
    start = time.perf_counter()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise describe_error(exc, target, timeout) from None
    return round((time.perf_counter() - start) * 1000.0, 2)


# --- verdicts (pure) -------------------------------------------------------------------


def _excerpt(body: bytes) -> str:
    text = " ".join(body[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace").split())
    if not text:
        return ""
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS] + "..."
    return f"; body: {text}"


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:80] + "..."


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``checks.redis``, ``items.0.name``), or ``_MISSING``.

    Dots always separate keys; a digit segment indexes a list.
    """
    current = document
    for segment in path.split("."):
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return _MISSING
    return current


def same_value(actual: Any, expected: Any) -> bool:
    """JSON equality where a boolean never equals a number (``true`` is not ``1``)."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual is expected
    return bool(actual == expected)


def evaluate(
    status: int, body: bytes, expect_status: list[int], expect_json: dict[str, Any] | None
) -> tuple[bool, str]:
    """Judge one HTTP answer: status in ``expect_status`` and every dotted JSON path equal.

    Returns ``(ok, reason)``; a failing reason carries an excerpt of the body.
    """
    if status not in expect_status:
        wanted = ", ".join(str(s) for s in expect_status)
        return False, f"HTTP status {status}, expected {wanted}{_excerpt(body)}"
    if not expect_json:
        return True, f"HTTP status {status}"
    if not body.strip():
        return False, f"HTTP status {status} but the body is empty, expected JSON"
    try:
        document = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return False, f"HTTP status {status} but the body is not valid JSON ({exc}){_excerpt(body)}"
    problems = []
    for path, expected in expect_json.items():
        actual = lookup(document, path)
        if actual is _MISSING:
            problems.append(f"JSON field {path!r} is missing")
        elif not same_value(actual, expected):
            problems.append(f"JSON field {path!r} is {_show(actual)}, expected {_show(expected)}")
    if problems:
        return False, f"HTTP status {status} but " + "; ".join(problems)
    return True, f"HTTP status {status}, {len(expect_json)} JSON field(s) as expected"


def http_check(
    url: str,
    expect_status: list[int],
    expect_json: dict[str, Any] | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    timeout: float = 3.0,
    ca_path: str | None = None,
    validate_certs: bool = True,
    probe: Any = probe_http,
) -> Attempt:
    """One HTTP probe judged by :func:`evaluate`; ``probe`` is the seam (:func:`probe_http`)."""
    try:
        status, body, latency = probe(url, method, headers, timeout, ca_path, validate_certs)
    except ProbeError as exc:
        return Attempt(False, exc.reason, fatal=exc.fatal, slow=exc.slow)
    ok, reason = evaluate(status, body, expect_status, expect_json)
    return Attempt(ok, reason, status=status, latency_ms=latency)


def tcp_check(host: str, port: int, timeout: float = 3.0, probe: Any = probe_tcp) -> Attempt:
    """One TCP connect; ``probe`` is the seam (:func:`probe_tcp`)."""
    try:
        latency = probe(host, port, timeout)
    except ProbeError as exc:
        return Attempt(False, exc.reason, fatal=exc.fatal, slow=exc.slow)
    return Attempt(True, f"TCP connect to {host}:{port} ok", latency_ms=latency)


# --- waiting and measuring -------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile by the nearest-rank method; None for no values.

    Nearest rank: sort the values and take the one at rank ``ceil(p / 100 * n)`` (at
    least 1). The result is always one of the measured values, never an interpolation;
    with 5 values p50 is the 3rd and p95 the 5th (the maximum).
    """
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {p}")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(values: list[float]) -> dict[str, float | None]:
    """``min``, ``p50``, ``p95`` and ``max`` of latencies in ms (all None for no values)."""
    return {
        "min": min(values) if values else None,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
    }


def backoff_delay(attempt: int, delay: float, backoff: float, max_delay: float) -> float:
    """Seconds to sleep after failed attempt number ``attempt`` (1-based), capped at ``max_delay``."""
    try:
        pause = delay * backoff ** (attempt - 1)
    except OverflowError:
        pause = max_delay
    return min(pause, max_delay)


def validate_wait(
    retries: int, delay: float, backoff: float, max_delay: float, timeout: float, probes: int
) -> list[str]:
    """Problems with the wait parameters, as messages naming the option."""
    problems = []
    if retries < 0:
        problems.append(f"retries must be 0 or more, got {retries}")
    if delay < 0:
        problems.append(f"delay must be 0 or more seconds, got {delay}")
    if backoff < 1:
        problems.append(f"backoff must be 1 or more (1 keeps the delay constant), got {backoff}")
    if max_delay < 0:
        problems.append(f"max_delay must be 0 or more seconds, got {max_delay}")
    if timeout <= 0:
        problems.append(f"timeout must be more than 0 seconds, got {timeout}")
    if probes < 0:
        problems.append(f"probes must be 0 or more, got {probes}")
    return problems


def wait_until_healthy(
    probe_fn: Any,
    retries: int = 60,
    delay: float = 0.5,
    backoff: float = 1.5,
    max_delay: float = 5.0,
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
    deadline: float | None = None,
) -> WaitResult:
    """Call ``probe_fn()`` (returning an :class:`Attempt`) until it is ok.

    The first attempt is immediate; after failed attempt ``n`` it sleeps
    ``min(delay * backoff ** (n - 1), max_delay)`` and tries again, at most ``retries``
    times (``retries + 1`` attempts in all, as Ansible's ``until``/``retries`` counts).
    ``deadline`` (seconds since the start, by ``clock``) bounds the whole wait: a sleep is
    cut short to end at the deadline, and no attempt starts after it. A fatal attempt
    (see :class:`ProbeError`) ends the wait at once. A failed wait's reason is the last
    attempt's reason and how the wait ended.
    """
    start = clock()
    delays: list[float] = []
    attempts = 0
    while True:
        attempts += 1
        result = probe_fn()
        elapsed = round(clock() - start, 3)
        if result.ok:
            return WaitResult(True, attempts, elapsed, result.reason, result, delays)
        if result.fatal:
            reason = f"{result.reason} (not retried: waiting cannot fix this)"
            return WaitResult(False, attempts, elapsed, reason, result, delays)
        if attempts > retries:
            reason = f"{result.reason} (gave up after {attempts} attempt(s) in {elapsed:.1f} s)"
            return WaitResult(False, attempts, elapsed, reason, result, delays)
        pause = backoff_delay(attempts, delay, backoff, max_delay)
        if deadline is not None:
            remaining = deadline - (clock() - start)
            if remaining <= 0:
                reason = (
                    f"{result.reason} (gave up at the {deadline:g} s deadline after "
                    f"{attempts} attempt(s) in {elapsed:.1f} s)"
                )
                return WaitResult(False, attempts, elapsed, reason, result, delays)
            pause = min(pause, remaining)
        delays.append(pause)
        sleep(pause)


def measure(probe_fn: Any, count: int, timeout: float | None = None) -> Measurement:
    """Take ``count`` probes back to back; keep the latencies of the ok ones and the last failure.

    A probe that timed out is counted as slow, not failed, and its latency as ``timeout``
    (a lower bound), so that the percentiles show the slowness instead of hiding it.
    """
    result = Measurement(total=count, ok=0)
    for _probe in range(count):
        attempt = probe_fn()
        if attempt.ok:
            result.ok += 1
            if attempt.latency_ms is not None:
                result.latencies_ms.append(attempt.latency_ms)
        elif attempt.slow:
            result.slow += 1
            result.last_slow = attempt.reason
            if timeout is not None:
                result.latencies_ms.append(round(timeout * 1000.0, 3))
        else:
            result.last_failure = attempt.reason
    return result


# --- the result (pure) -----------------------------------------------------------------


def report(
    unit: str,
    check: str,
    target: str,
    wait: WaitResult,
    measurement: Measurement | None,
    secrets: list[str | None] | tuple[str | None, ...] = (),
    latency_bound_ms: float | None = None,
) -> dict[str, Any]:
    """The module's result: verdict, reason, latency summary and one evidence record.

    Healthy means the wait succeeded and no latency probe after it failed: a service that
    answers once and then fails is not healthy. Slow is not down: a latency probe that timed
    out is evidence (counted, and its timeout taken as its latency), not a failure, unless
    the p95 latency passes ``latency_bound_ms``, the unit's declared bound. With no latency
    probes the latency of the successful attempt is the only sample. ``target`` must already
    be redacted; every string in ``secrets`` is masked in the reason.
    """
    measurement = measurement or Measurement(total=0, ok=0)
    if measurement.total:
        samples = list(measurement.latencies_ms)
    elif wait.ok and wait.last is not None and wait.last.latency_ms is not None:
        samples = [wait.last.latency_ms]
    else:
        samples = []
    latency = latency_summary(samples)
    flaky = measurement.total - measurement.ok - measurement.slow
    over_bound = latency_bound_ms is not None and latency["p95"] is not None and latency["p95"] > latency_bound_ms
    ok = wait.ok and flaky == 0 and not over_bound
    if not wait.ok:
        reason = wait.reason
    elif flaky:
        reason = (
            f"{wait.reason} after {wait.attempts} attempt(s), but {flaky} of {measurement.total} "
            f"latency probes failed, the last: {measurement.last_failure}"
        )
    elif over_bound:
        reason = (
            f"{wait.reason} after {wait.attempts} attempt(s), but too slow: p95 latency {latency['p95']:g} ms "
            f"is over the declared bound of {latency_bound_ms:g} ms"
        )
    else:
        reason = f"{wait.reason} after {wait.attempts} attempt(s) in {wait.waited_s:.1f} s"
        if measurement.slow:
            reason += (f"; slow, not down: {measurement.slow} of {measurement.total} latency probes "
                       f"timed out ({measurement.last_slow})")
    reason = scrub(reason, list(secrets))
    status = wait.last.status if wait.last is not None else None
    observed = {
        "url": target,
        "status": status,
        "attempts": wait.attempts,
        "waited_s": wait.waited_s,
        "latency_p50_ms": latency["p50"],
        "latency_p95_ms": latency["p95"],
        "probes_ok": measurement.ok,
        "probes_slow": measurement.slow,
        "probes_total": measurement.total,
        "latency_bound_ms": latency_bound_ms,
    }
    return {
        "ok": ok,
        "status": status,
        "attempts": wait.attempts,
        "waited_s": wait.waited_s,
        "latency_ms": latency,
        "reason": reason,
        "evidence": [record(unit, check, ok, observed, reason)],
        "msg": f"{unit}: {check} {'ok' if ok else 'failed'}: {reason}",
    }
