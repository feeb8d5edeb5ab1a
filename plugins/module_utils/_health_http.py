# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP(S) health probe: the URL and its credentials, one request, and the verdict.

Standard library only (``urllib.request``, ``http.client``, ``ssl``). :func:`probe_http` is
the I/O seam; everything else is pure: :func:`evaluate` judges an answer (status and
dotted JSON fields), :func:`http_check` takes the probe as an argument so that unit tests
run without a network.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._health import Attempt, ProbeError, describe_error

MAX_BODY_BYTES = 1024 * 1024
EXCERPT_CHARS = 200
USER_AGENT = "aiops.mlstack-service_health"
REDACTED = "********"

_MISSING = object()


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
