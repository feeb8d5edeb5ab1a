# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a unit on one Docker host sees of its databases on another: TLS that verifies against the
stack's CA for the host's address, and no plaintext. Stdlib only: it runs on the unit's Docker host
(M(aiops.mlstack.tls_probe)) or in the controller's process for a local engine.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Mapping
from typing import Any

# PostgreSQL's SSLRequest and protocol 3.0 (its frontend/backend protocol, "Message Formats").
_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_PG_PROTOCOL = 196608
PROBE_USER = "mlstack_tls_probe"


def _pg_startup() -> bytes:
    body = struct.pack("!i", _PG_PROTOCOL) + b"user\0" + PROBE_USER.encode() + b"\0database\0" \
        + PROBE_USER.encode() + b"\0\0"
    return struct.pack("!i", len(body) + 4) + body


def _read_some(sock: socket.socket, limit: int = 4096) -> bytes:
    try:
        return sock.recv(limit)
    except (ConnectionResetError, TimeoutError):
        return b""


def handshake(address: str, port: int, role: str, ca_pem: str, timeout: float) -> dict[str, Any]:
    """A TLS session verified against ``ca_pem`` for ``address``: its version, or why not."""
    context = ssl.create_default_context(cadata=ca_pem)
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            if role == "postgresql":
                raw.sendall(_PG_SSL_REQUEST)
                answer = raw.recv(1)
                if answer != b"S":
                    return {"ok": False, "error": f"the server refused TLS (answered {answer!r} to SSLRequest)"}
            with context.wrap_socket(raw, server_hostname=address) as tls:
                return {"ok": True, "version": tls.version(), "verified_for": address}
    except ssl.SSLCertVerificationError as exc:
        return {"ok": False, "error": f"certificate not verified for {address}: {exc.verify_message}"}
    except (OSError, ssl.SSLError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def plaintext_refused(address: str, port: int, role: str, timeout: float) -> dict[str, Any]:
    """Whether the published port turns a client without TLS away before it may authenticate."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            if role == "postgresql":
                raw.sendall(_pg_startup())
                answer = _read_some(raw)
                # 'E' naming pg_hba and no encryption: refused; 'R' (an authentication request): let in.
                refused = answer[:1] == b"E" and b"no encryption" in answer
                return {"ok": refused, "answer": "error: no pg_hba.conf entry, no encryption" if refused
                        else f"answered {answer[:1]!r}: a plaintext client may authenticate"}
            raw.sendall(b"PING\r\n")
            answer = _read_some(raw)
            refused = not answer.startswith((b"+", b"-"))
            return {"ok": refused, "answer": "closed without a Redis reply" if refused
                    else f"answered {answer[:32]!r} in plaintext"}
    except OSError as exc:
        return {"ok": False, "answer": f"could not connect: {type(exc).__name__}: {exc}"}


def probe(dependencies: list[Mapping[str, Any]], ca_pem: str, timeout: float) -> dict[str, Any]:
    """Each cross-host dependency ({unit, role, docker_host, address, port}): TLS and plaintext."""
    out = {}
    for dep in dependencies:
        address, port, role = str(dep["address"]), int(dep["port"]), str(dep["role"])
        out[str(dep["unit"])] = {"docker_host": dep["docker_host"], "address": f"{address}:{port}", "role": role,
                                 "tls": handshake(address, port, role, ca_pem, timeout),
                                 "plaintext": plaintext_refused(address, port, role, timeout)}
    return out
