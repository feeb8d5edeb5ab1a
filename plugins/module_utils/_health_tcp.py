# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The TCP health probe: one connect, its latency, and the verdict as an :class:`Attempt`.

Standard library only; :func:`probe_tcp` is the I/O seam, :func:`tcp_check` takes it as an
argument so that unit tests run without a network.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._health import Attempt, ProbeError, describe_error


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


def tcp_check(host: str, port: int, timeout: float = 3.0, probe: Any = probe_tcp) -> Attempt:
    """One TCP connect; ``probe`` is the seam (:func:`probe_tcp`)."""
    try:
        latency = probe(host, port, timeout)
    except ProbeError as exc:
        return Attempt(False, exc.reason, fatal=exc.fatal, slow=exc.slow)
    return Attempt(True, f"TCP connect to {host}:{port} ok", latency_ms=latency)
