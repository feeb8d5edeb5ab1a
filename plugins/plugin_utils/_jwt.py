# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The JWT signing key set and the tokens it mints (EdDSA, Ed25519), on the controller.

Layout under ``<secrets dir>/jwt``: ``signing.pem`` / ``signing.pub.pem`` sign today;
``next.pem`` / ``next.pub.pem`` is a staged key that services already accept but nobody
signs with yet; ``retired/<kid>.pub.pem`` with ``retired/<kid>.until`` are former signing
keys that services keep accepting until the overlap ends. A rotation is stage, publish,
promote, publish: at no moment is a token signed with a key that a service does not know.
Keys are made with the cryptography package (an ansible-core dependency), tokens signed with PyJWT.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import (
    SecretError,
    check_permissions,
    ensure_keypair,
)

UNIT = "jwt"
CURRENT, NEXT = "signing", "next"
MAX_TTL_S = 86400
ISSUER = "mlstack"
# A signing key kept outside the secrets directory: AWX's "mlstack secrets" credential writes the
# key it holds to a file of the job's and names that file here. It signs; only its public half is
# written to the directory, so the private key never rests on the execution node.
SIGNING_KEY_ENV = "MLSTACK_JWT_SIGNING_KEY_FILE"


def _plain(data: bytes, source: Path, vault: Any = None) -> bytes:
    """A private key's PEM; a vaulted one without a vault password is refused with the fix."""
    if vault is not None:
        return vault.decrypt(data, source)
    if data.startswith(b"$ANSIBLE_VAULT"):
        raise SecretError(f"{source} is Ansible Vault-encrypted: give vault_password_file "
                          "(mlstack_vault_password_file)")
    return data


def kid_of(public_pem: str) -> str:
    """A key's id: the start of the SHA-256 of its DER SubjectPublicKeyInfo (services compute the same)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(public_pem.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def _dir(base: Path) -> Path:
    return base / UNIT


def _retired(base: Path) -> Path:
    return _dir(base) / "retired"


def _read_public(base: Path, name: str) -> str | None:
    path = _dir(base) / f"{name}.pub.pem"
    return path.read_text() if path.exists() else None


def injected_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The PEM of the signing key named by ``MLSTACK_JWT_SIGNING_KEY_FILE``, if set and not empty."""
    name = (os.environ if environ is None else environ).get(SIGNING_KEY_ENV, "")
    if not name:
        return None
    try:
        pem = Path(name).read_bytes()
    except OSError as exc:
        raise SecretError(f"{SIGNING_KEY_ENV}={name}: {exc.strerror}") from exc
    return pem if pem.strip() else None


def public_of(private_pem: bytes) -> str:
    """The public PEM of an Ed25519 private key; anything else is refused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SecretError("the JWT signing key is not an Ed25519 private key")
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _publish_injected(base: Path, private_pem: bytes, check_mode: bool) -> tuple[str, bool]:
    """The injected key's public half as the signing key services accept. Returns (public PEM, changed)."""
    public = public_of(private_pem)
    path = _dir(base) / f"{CURRENT}.pub.pem"
    changed = not path.exists() or path.read_text() != public
    if changed and not check_mode:
        for directory in (base, _dir(base)):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            check_permissions(directory)
        path.write_text(public)
        path.chmod(0o644)
    return public, changed


def ensure_current(base: Path, check_mode: bool = False, vault: Any = None,
                   injected: bytes | None = None) -> tuple[str, bool]:
    """The signing key pair, made once; or, with ``injected``, that key's public half published.
    Returns (public PEM, created or changed)."""
    if injected is not None:
        return _publish_injected(base, injected, check_mode)
    return ensure_keypair(base, UNIT, CURRENT, check_mode, vault)


def stage(base: Path, check_mode: bool = False, vault: Any = None) -> tuple[str, bool]:
    """A next key that services will accept before anybody signs with it. Returns (public PEM, created)."""
    return ensure_keypair(base, UNIT, NEXT, check_mode, vault)


def promote(base: Path, overlap_s: int, now: float | None = None, check_mode: bool = False) -> str:
    """The staged key signs from now on; the former one is accepted ``overlap_s`` longer. Returns its kid."""
    directory = _dir(base)
    if not (directory / f"{NEXT}.pem").exists():
        raise SecretError(f"no staged JWT key in {directory}: run with state=staged and publish the key to "
                          "every unit first (playbooks/rotate_jwt.yml does both), so no service meets a token "
                          "signed by a key it does not know")
    old_public = _read_public(base, CURRENT)
    if old_public is None:
        raise SecretError(f"{directory}/{CURRENT}.pub.pem is missing: run with state=present first")
    old_kid = kid_of(old_public)
    if check_mode:
        return old_kid
    retired = _retired(base)
    retired.mkdir(mode=0o700, exist_ok=True)
    check_permissions(retired)
    (retired / f"{old_kid}.pub.pem").write_text(old_public)
    until = int((time.time() if now is None else now) + overlap_s)
    (retired / f"{old_kid}.until").write_text(f"{until}\n")
    for suffix in (".pem", ".pub.pem"):
        os.replace(directory / f"{NEXT}{suffix}", directory / f"{CURRENT}{suffix}")
    return old_kid


def retired_keys(base: Path, now: float | None = None, prune: bool = False) -> list[dict[str, Any]]:
    """Former signing keys still accepted; with ``prune`` the ones past their overlap are removed."""
    now = time.time() if now is None else now
    out: list[dict[str, Any]] = []
    retired = _retired(base)
    for pem in sorted(retired.glob("*.pub.pem")) if retired.exists() else []:
        kid = pem.name[: -len(".pub.pem")]
        until_file = retired / f"{kid}.until"
        try:
            until = int(until_file.read_text().strip())
        except (OSError, ValueError):
            until = 0
        if until > now:
            out.append({"kid": kid, "until": until, "public": pem.read_text()})
        elif prune:
            pem.unlink()
            until_file.unlink(missing_ok=True)
    return out


def published(base: Path, now: float | None = None, prune: bool = False) -> list[dict[str, Any]]:
    """Every public key a service must accept now: the signing one first, then staged, then retired."""
    keys = []
    for name in (CURRENT, NEXT):
        public = _read_public(base, name)
        if public is not None:
            keys.append({"kid": kid_of(public), "role": name, "public": public})
    keys += [{**key, "role": "retired"} for key in retired_keys(base, now, prune)]
    return keys


def bundle(keys: list[dict[str, Any]]) -> str:
    """The PEM file services read: several public keys, one after another."""
    return "".join(key["public"] if key["public"].endswith("\n") else key["public"] + "\n" for key in keys)


def audience_claim(audience: str | list[str] | tuple[str, ...]) -> str | list[str]:
    """The ``aud`` claim: one unit as a string, several as a JSON list (RFC 7519, 4.1.3), duplicates dropped.

    A list must stay a list: written as one string (``"['chat', 'reasoning']"``) no unit would find
    its name in it, and every unit would answer 401.
    """
    if isinstance(audience, str):
        units = [audience.strip()]
    else:
        units = list(dict.fromkeys(str(unit).strip() for unit in audience))
    if not units or not all(units):
        raise SecretError(f"audience {audience!r}: name the unit(s) that must accept the token, none empty")
    return units[0] if isinstance(audience, str) else units


def mint(private_pem: bytes, subject: str, audience: str | list[str], scopes: list[str], ttl_s: int,
         now: float | None = None, kid: str | None = None) -> tuple[str, int]:
    """A token signed by PyJWT: iss, sub, aud, scope (space-separated), iat, exp, jti. Returns (token, exp)."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not subject or not audience:
        raise SecretError("a token needs a subject and an audience (the unit it is for)")
    if not -MAX_TTL_S <= ttl_s <= MAX_TTL_S or ttl_s == 0:
        raise SecretError(f"ttl {ttl_s} s: use 1..{MAX_TTL_S} s (negative only to make an expired token on purpose)")
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SecretError("the JWT signing key is not an Ed25519 private key")
    issued = int(time.time() if now is None else now)
    exp = issued + ttl_s
    claims = {"iss": ISSUER, "sub": subject, "aud": audience_claim(audience), "scope": " ".join(scopes),
              "iat": issued, "exp": exp, "jti": uuid.uuid4().hex}
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid} if kid else None)
    return token, exp


def throwaway_private_pem() -> bytes:
    """A key nobody published: what a forger would sign with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption())


def signing_key(base: Path, vault: Any = None, injected: bytes | None = None) -> tuple[bytes, str]:
    """The private signing key (decrypted; ``injected`` when given) and its kid; refuses a key file
    that others can read, and a key whose public half is not the published signing key."""
    public = _read_public(base, CURRENT)
    if public is None:
        raise SecretError(f"{_dir(base)}/{CURRENT}.pub.pem is missing: run playbooks/phase5.yml "
                          "(aiops.mlstack.jwt_key publishes the signing key) first")
    if injected is not None:
        private = injected
    else:
        path = _dir(base) / f"{CURRENT}.pem"
        if not path.exists():
            raise SecretError(f"{path} does not exist: run playbooks/phase5.yml (role aiops.mlstack.secrets) first")
        check_permissions(path.parent)
        check_permissions(path)
        private = _plain(path.read_bytes(), path, vault)
    # Services know only the published key: a token signed by another one would get 401 everywhere.
    if kid_of(public_of(private)) != kid_of(public):
        raise SecretError(f"the JWT signing key{' named by ' + SIGNING_KEY_ENV if injected is not None else ''} "
                          f"is not the one published in {_dir(base)}/{CURRENT}.pub.pem: run playbooks/phase5.yml "
                          "with the same key first")
    return private, kid_of(public)


def present_bundle(base: Path, check_mode: bool = False, vault: Any = None) -> str:
    """The public keys a service must accept now, the signing key made first when there is none
    (state=present of aiops.mlstack.jwt_key: what a unit's deploy publishes)."""
    ensure_current(base, check_mode, vault, injected_key())
    return bundle(published(base, prune=not check_mode))
