# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stack CA and its servers' certificates (plugin_utils/_tls.py), checked with real TLS."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError
from ansible_collections.aiops.mlstack.plugins.plugin_utils._tls import Lifetimes, ensure_ca, ensure_server, not_after

LIFE = Lifetimes()
NOW = datetime.datetime(2026, 12, 6, tzinfo=datetime.UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_ca_and_server_are_made_once_private_and_verify(tmp_path: Path) -> None:
    ca, changes = ensure_ca(tmp_path, LIFE)
    assert changes and (tmp_path / "tls" / "ca.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 1
    issued = ensure_server(tmp_path, "postgresql", ["postgresql", "mlstack-postgresql", "10.77.0.11"], ca, LIFE)
    assert issued["changed"] and issued["reason"] == "no certificate yet"
    for path in (tmp_path / "tls" / "ca.key", tmp_path / "postgresql" / "tls_key.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    cert = _cert(tmp_path / "postgresql" / "tls_cert.pem")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.77.0.11")]
    assert san.get_values_for_type(x509.DNSName) == ["postgresql", "mlstack-postgresql"]
    cert.verify_directly_issued_by(ca.cert)
    # A second run makes nothing.
    again, changes = ensure_ca(tmp_path, LIFE)
    assert changes == [] and again.cert.serial_number == ca.cert.serial_number
    assert ensure_server(tmp_path, "postgresql", ["postgresql", "mlstack-postgresql", "10.77.0.11"], again,
                         LIFE)["changed"] is False


def test_new_names_issue_again(tmp_path: Path) -> None:
    ca, _changes = ensure_ca(tmp_path, LIFE)
    ensure_server(tmp_path, "redis", ["redis"], ca, LIFE)
    moved = ensure_server(tmp_path, "redis", ["redis", "10.0.0.21"], ca, LIFE)
    assert moved["changed"] and "10.0.0.21" in moved["reason"]


def test_renewal_near_the_end(tmp_path: Path) -> None:
    ca, _changes = ensure_ca(tmp_path, LIFE, now=NOW)
    ensure_server(tmp_path, "redis", ["redis"], ca, LIFE, now=NOW)
    end = not_after(_cert(tmp_path / "redis" / "tls_cert.pem"))
    later = end - datetime.timedelta(days=LIFE.cert_renew_days - 1)
    renewed = ensure_server(tmp_path, "redis", ["redis"], ca, LIFE, now=later)
    assert renewed["changed"] and "within" in renewed["reason"]


def test_ca_rotation_keeps_the_former_ca_in_the_bundle_until_it_ends(tmp_path: Path) -> None:
    old, _changes = ensure_ca(tmp_path, LIFE, now=NOW)
    ensure_server(tmp_path, "postgresql", ["postgresql"], old, LIFE, now=NOW)
    new, changes = ensure_ca(tmp_path, LIFE, rotate=True, now=NOW)
    assert new.cert.serial_number != old.cert.serial_number and any("retired" in c for c in changes)
    assert (tmp_path / "tls" / "ca.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 2
    # The server's certificate is the former CA's: issued again by the new one.
    reissued = ensure_server(tmp_path, "postgresql", ["postgresql"], new, LIFE, now=NOW)
    assert reissued["changed"] and reissued["reason"] == "signed by a former CA"
    # Once the former CA has ended it leaves the bundle.
    after = not_after(old.cert) + datetime.timedelta(days=1)
    _ca, changes = ensure_ca(tmp_path, Lifetimes(ca_renew_days=0), now=after)
    assert any("dropped" in c for c in changes)
    assert (tmp_path / "tls" / "ca.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 1


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    ca, changes = ensure_ca(tmp_path, LIFE, check_mode=True)
    assert changes and not (tmp_path / "tls").exists()
    assert ensure_server(tmp_path, "redis", ["redis"], ca, LIFE, check_mode=True)["changed"]
    assert not (tmp_path / "redis").exists()


def test_a_ca_key_others_can_read_is_refused(tmp_path: Path) -> None:
    ensure_ca(tmp_path, LIFE)
    (tmp_path / "tls" / "ca.key").chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        ensure_ca(tmp_path, LIFE)


def _serve_once(cert: Path, key: Path) -> tuple[int, threading.Thread]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            conn, _peer = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


@pytest.mark.parametrize(("name", "trusted", "verifies"), [
    ("127.0.0.1", True, True),      # the right CA and a name in the certificate
    ("10.9.9.9", True, False),      # a name the certificate does not carry
    ("127.0.0.1", False, False),    # another CA
])
def test_a_real_handshake_verifies_only_the_right_ca_and_name(tmp_path: Path, name: str, trusted: bool,
                                                              verifies: bool) -> None:
    ca, _changes = ensure_ca(tmp_path / "stack", LIFE)
    ensure_server(tmp_path / "stack", "redis", ["redis", "127.0.0.1"], ca, LIFE)
    other, _changes = ensure_ca(tmp_path / "other", LIFE)
    bundle = (tmp_path / ("stack" if trusted else "other") / "tls" / "ca.pem")
    server = tmp_path / "stack" / "redis"
    port, thread = _serve_once(server / "tls_cert.pem", server / "tls_key.pem")
    client = ssl.create_default_context(cafile=str(bundle))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client.wrap_socket(raw, server_hostname=name) as tls:
            assert verifies and tls.recv(2) == b"ok"
    except ssl.SSLCertVerificationError:
        assert not verifies
    thread.join(timeout=5)
    assert other.cert.serial_number != ca.cert.serial_number
