# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health probes: what every probe kind returns, and why a probe got no answer.

Standard library only, so that it runs on any target's Python. A probe kind
(:mod:`._health_http`, :mod:`._health_tcp`) has one I/O seam that raises
:class:`ProbeError` with a readable reason when there is no answer, and a check that
turns the answer into an :class:`Attempt`; :mod:`._health_wait` waits for, measures and
reports on attempts of any kind.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.error
from dataclasses import dataclass


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
