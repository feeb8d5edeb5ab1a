"""JWT on every /v1 endpoint: EdDSA (Ed25519) signatures checked with the public key only."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ServiceError, error_response

ALGORITHMS = ["EdDSA"]
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mlstack"'}


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    token: str


class KeyUnavailable(RuntimeError):
    """The public key file is missing or is not an Ed25519 public key."""


def kid_of(key: Ed25519PublicKey) -> str:
    """A key's id as the collection's jwt_key computes it: SHA-256 of the DER SubjectPublicKeyInfo."""
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def load_keys(data: bytes, source: str) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key of a PEM file (signing, staged and retired keys during a rotation)."""
    blocks = re.findall(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", data, re.S)
    if not blocks:
        raise KeyUnavailable(f"JWT public key file {source} holds no PEM public key")
    keys: dict[str, Ed25519PublicKey] = {}
    for block in blocks:
        try:
            key = load_pem_public_key(block)
        except ValueError as exc:
            raise KeyUnavailable(f"JWT public key file {source} is not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyUnavailable(f"JWT public key file {source} is not an Ed25519 key")
        keys[kid_of(key)] = key
    return keys


class JwtVerifier:
    """Verifies bearer tokens for one audience; re-reads the key file when it changes (rotation)."""

    def __init__(self, key_file: str, issuer: str, audience: str) -> None:
        self.key_file, self.issuer, self.audience = key_file, issuer, audience
        self._keys: dict[str, Ed25519PublicKey] | None = None
        self._stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()

    def keys(self) -> dict[str, Ed25519PublicKey]:
        try:
            st = os.stat(self.key_file)
        except OSError as exc:
            raise KeyUnavailable(f"JWT public key file {self.key_file} is not readable: {exc.strerror}") from None
        stamp = (st.st_mtime, st.st_size)
        with self._lock:
            if self._keys is None or stamp != self._stamp:
                try:
                    with open(self.key_file, "rb") as handle:
                        data = handle.read()
                except OSError as exc:
                    raise KeyUnavailable(f"JWT public key file {self.key_file} is not readable: {exc}") from None
                self._keys, self._stamp = load_keys(data, self.key_file), stamp
            return self._keys

    def check(self) -> tuple[bool, str]:
        """For /ready: whether tokens can be verified at all."""
        try:
            keys = self.keys()
        except KeyUnavailable as exc:
            return False, str(exc)
        return True, f"{len(keys)} Ed25519 public key(s) loaded"

    def _candidates(self, token: str) -> list[Ed25519PublicKey]:
        try:
            keys = self.keys()
        except KeyUnavailable as exc:
            raise ServiceError(503, f"cannot verify tokens: {exc}") from None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise ServiceError(401, f"invalid token: {exc}", _CHALLENGE) from None
        if kid is None:
            return list(keys.values())
        if kid not in keys:
            raise ServiceError(401, f"token signed by an unknown key (kid {str(kid)[:32]!r})", _CHALLENGE)
        return [keys[kid]]

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise ServiceError(401, "missing bearer token: send 'Authorization: Bearer <JWT>'", _CHALLENGE)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ServiceError(401, "malformed Authorization header: expected 'Bearer <JWT>'", _CHALLENGE)
        candidates = self._candidates(token)
        for index, key in enumerate(candidates):
            try:
                claims = self._decode(token, key)
            except jwt.InvalidSignatureError:
                if index + 1 < len(candidates):
                    continue
                raise ServiceError(401, "token signature is not valid for this service's public keys",
                                   _CHALLENGE) from None
            scope = claims.get("scope", "")
            scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
            return Principal(subject=str(claims.get("sub", "")), scopes=scopes, token=token)
        raise ServiceError(401, "no key to verify the token with", _CHALLENGE)

    def _decode(self, token: str, key: Ed25519PublicKey) -> dict[str, Any]:
        """The claims, or a 401 naming what is wrong; a bad signature is left to the caller (next key)."""
        try:
            return jwt.decode(token, key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                              options={"require": ["exp", "iss", "aud"]}, leeway=5)
        except jwt.InvalidSignatureError:
            raise
        except jwt.ExpiredSignatureError:
            raise ServiceError(401, "token expired", _CHALLENGE) from None
        except jwt.InvalidAudienceError:
            raise ServiceError(401, f"token audience does not include '{self.audience}'", _CHALLENGE) from None
        except jwt.InvalidIssuerError:
            raise ServiceError(401, f"token issuer is not '{self.issuer}'", _CHALLENGE) from None
        except jwt.MissingRequiredClaimError as exc:
            raise ServiceError(401, f"token lacks the required '{exc.claim}' claim", _CHALLENGE) from None
        except jwt.InvalidAlgorithmError:
            raise ServiceError(401, "token algorithm is not EdDSA", _CHALLENGE) from None
        except jwt.InvalidTokenError as exc:
            raise ServiceError(401, f"invalid token: {exc}", _CHALLENGE) from None


class AuthMiddleware:
    """Every path under /v1 needs a valid token before anything else runs (body parsing included)."""

    def __init__(self, app: ASGIApp, verifier: JwtVerifier, prefix: str = "/v1") -> None:
        self.app, self.verifier, self.prefix = app, verifier, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/")):
            authorization = None
            for key, value in scope.get("headers", []):
                if key == b"authorization":
                    authorization = value.decode("latin-1")
            try:
                principal = self.verifier.verify(authorization)
            except ServiceError as exc:
                await error_response(exc.status_code, str(exc.detail), exc.headers)(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the token (checked by AuthMiddleware, else here) must carry ``scope`` (else 403)."""

    async def dependency(request: Request) -> Principal:
        principal = getattr(request.state, "principal", None)
        if not isinstance(principal, Principal):
            verifier: JwtVerifier = request.app.state.verifier
            principal = verifier.verify(request.headers.get("authorization"))
        if scope not in principal.scopes:
            raise ServiceError(403, f"token lacks the '{scope}' scope")
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    # Read by openapi.py: the operation's security requirement names its scope.
    dependency.scope = scope  # type: ignore[attr-defined]
    return dependency
