# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stack's certificate authority and its servers' certificates, on the controller.

A database that a unit on another Docker host depends on serves TLS with a certificate of
the stack's own CA, and every cross-host client verifies it against the CA bundle
(docs/scale-out.md). Everything lives in the secrets directory beside the passwords, mode
0600: ``tls/ca.key`` and ``tls/ca-current.pem`` sign; ``tls/ca.pem`` is the bundle clients
trust (the current CA, then any former one not yet expired, so that a CA rotation never
leaves a client distrusting a server whose certificate is still the former CA's);
``<unit>/tls_cert.pem`` and ``<unit>/tls_key.pem`` are a server's. Nothing is regenerated
while it is valid: a certificate is issued again when it nears its end, when its names
changed, or when the CA that signed it is no longer the current one.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - ansible-core requires it; a bare interpreter may lack it
    HAS_CRYPTOGRAPHY = False

from ansible_collections.aiops.mlstack.plugins.module_utils._unit import (
    TLS_CA_FILE,
    TLS_CA_UNIT,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
)
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError, check_permissions, secret_path

CA_KEY, CA_CURRENT = "ca.key", "ca-current.pem"
FORMER_PREFIX = "ca-former-"


@dataclass(frozen=True)
class Lifetimes:
    """Validity and renewal margins, in days."""

    ca_days: int = 3650
    ca_renew_days: int = 365
    cert_days: int = 397
    cert_renew_days: int = 30


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_permissions(path)


def _write(path: Path, data: bytes) -> None:
    """0600 from the first byte, replaced atomically: a reader sees the old file or the new one."""
    _private_dir(path.parent)
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temp, path)


def _read(path: Path) -> bytes | None:
    if not path.exists():
        return None
    check_permissions(path)
    return path.read_bytes()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def not_after(cert: x509.Certificate) -> datetime.datetime:
    return cert.not_valid_after_utc


def _expiring(cert: x509.Certificate, margin_days: int, now: datetime.datetime) -> bool:
    return not_after(cert) - now <= datetime.timedelta(days=margin_days)


def _new_ca(days: int, now: datetime.datetime) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mlstack stack CA {now:%Y-%m-%d}")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Authority(key, cert)


def _load_ca(base: Path) -> Authority | None:
    key_pem, cert_pem = _read(base / TLS_CA_UNIT / CA_KEY), _read(base / TLS_CA_UNIT / CA_CURRENT)
    if key_pem is None or cert_pem is None:
        return None
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SecretError(f"{base / TLS_CA_UNIT / CA_KEY} is not the stack CA's EC key: move the tls directory "
                          "away to have a new CA made (every server certificate is then issued again)")
    return Authority(key, x509.load_pem_x509_certificate(cert_pem))


def _formers(base: Path, now: datetime.datetime) -> list[tuple[Path, x509.Certificate]]:
    found = []
    for path in sorted((base / TLS_CA_UNIT).glob(f"{FORMER_PREFIX}*.pem")):
        found.append((path, x509.load_pem_x509_certificate(path.read_bytes())))
    return [(p, c) for p, c in found if not_after(c) > now] + [(p, c) for p, c in found if not_after(c) <= now]


def ensure_ca(base: Path, life: Lifetimes, rotate: bool = False, check_mode: bool = False,
              now: datetime.datetime | None = None) -> tuple[Authority, list[str]]:
    """The current CA (made, or replaced when it nears its end or ``rotate``) and what changed.

    A replaced CA is kept as a former one in the bundle until it expires, then dropped.
    """
    if not HAS_CRYPTOGRAPHY:
        raise SecretError("the stack CA needs the Python library cryptography on the controller "
                          "(it comes with ansible-core): pip install cryptography")
    now = now or _now()
    changes: list[str] = []
    current = _load_ca(base)
    if current is None or rotate or _expiring(current.cert, life.ca_renew_days, now):
        if current is not None:
            serial = f"{current.cert.serial_number:x}"
            changes.append(f"CA {serial} retired (in the bundle until {not_after(current.cert):%Y-%m-%d})")
            if not check_mode:
                _write(base / TLS_CA_UNIT / f"{FORMER_PREFIX}{serial}.pem", _cert_pem(current.cert))
        current = _new_ca(life.ca_days, now)
        changes.append(f"CA {current.cert.serial_number:x} made (until {not_after(current.cert):%Y-%m-%d})")
        if not check_mode:
            _write(base / TLS_CA_UNIT / CA_KEY, _key_pem(current.key))
            _write(base / TLS_CA_UNIT / CA_CURRENT, _cert_pem(current.cert))
    bundle = _cert_pem(current.cert)
    for path, cert in _formers(base, now):
        if not_after(cert) > now:
            bundle += _cert_pem(cert)
        else:
            changes.append(f"former CA {cert.serial_number:x} expired: dropped from the bundle")
            if not check_mode:
                path.unlink()
    if _read(base / TLS_CA_UNIT / TLS_CA_FILE) != bundle:
        if not changes:
            changes.append("CA bundle written")
        if not check_mode:
            _write(base / TLS_CA_UNIT / TLS_CA_FILE, bundle)
    return current, changes


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _names_of(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.IPAddress)] + san.get_values_for_type(x509.DNSName)


def _why_issue(cert: x509.Certificate | None, names: list[str], ca: Authority, life: Lifetimes,
               now: datetime.datetime) -> str | None:
    if cert is None:
        return "no certificate yet"
    if sorted(_names_of(cert)) != sorted(names):
        return f"names {sorted(_names_of(cert))} -> {sorted(names)}"
    if not _signed_by(cert, ca):
        return "signed by a former CA"
    if _expiring(cert, life.cert_renew_days, now):
        return f"ends {not_after(cert):%Y-%m-%d}, within {life.cert_renew_days} days"
    return None


def _signed_by(cert: x509.Certificate, ca: Authority) -> bool:
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ensure_server(base: Path, unit: str, names: list[str], ca: Authority, life: Lifetimes,
                  check_mode: bool = False, now: datetime.datetime | None = None,
                  force: bool = False) -> dict[str, str | list[str] | bool]:
    """A server's key and certificate for ``names`` (its SANs); issued only when needed, or ``force``."""
    now = now or _now()
    cert_path, key_path = secret_path(base, unit, TLS_CERT_FILE), secret_path(base, unit, TLS_KEY_FILE)
    pem = _read(cert_path)
    cert = x509.load_pem_x509_certificate(pem) if pem is not None and _read(key_path) is not None else None
    reason = "rotation asked for" if force and cert is not None else _why_issue(cert, names, ca, life, now)
    if reason is None and cert is not None:
        return {"changed": False, "names": names, "not_after": f"{not_after(cert):%Y-%m-%d}"}
    key = ec.generate_private_key(ec.SECP256R1())
    issued = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
              .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(min(now + datetime.timedelta(days=life.cert_days), not_after(ca.cert)))
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(_san(names), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
              .sign(ca.key, hashes.SHA256()))
    if not check_mode:
        _write(key_path, _key_pem(key))
        _write(cert_path, _cert_pem(issued))
    return {"changed": True, "names": names, "reason": reason, "not_after": f"{not_after(issued):%Y-%m-%d}"}
