"""The JWT key set (stage, promote, retire, prune) and the tokens it mints, checked with PyJWT."""

from __future__ import annotations

import os
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from ansible_collections.aiops.mlstack.plugins.module_utils import _jwt
from ansible_collections.aiops.mlstack.plugins.module_utils._secrets import SecretError


@pytest.fixture
def base(tmp_path: Path) -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    _jwt.ensure_current(secrets)
    return secrets


def public_key(pem: str) -> object:
    return serialization.load_pem_public_key(pem.encode())


def test_minted_token_verifies_with_the_published_key_and_carries_the_claims(base: Path) -> None:
    private, kid = _jwt.signing_key(base)
    token, exp = _jwt.mint(private, "operator", "chat", ["chat:complete", "x"], 120, now=1_900_000_000, kid=kid)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "typ": "JWT", "kid": kid}
    [published] = _jwt.published(base)
    claims = jwt.decode(token, public_key(published["public"]), algorithms=["EdDSA"], audience="chat",
                        issuer="mlstack", options={"verify_exp": False, "verify_iat": False})
    expected = ("operator", "chat:complete x", 1_900_000_120, 1_900_000_120)
    assert (claims["sub"], claims["scope"], claims["exp"], exp) == expected
    assert published["kid"] == kid and len(kid) == 16


def test_forged_token_does_not_verify(base: Path) -> None:
    token, _exp = _jwt.mint(_jwt.throwaway_private_pem(), "mallory", "chat", [], 60)
    [published] = _jwt.published(base)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, public_key(published["public"]), algorithms=["EdDSA"], audience="chat")


@pytest.mark.parametrize(("subject", "audience", "ttl", "message"), [
    ("", "chat", 60, "subject and an audience"),
    ("op", "chat", 0, "ttl 0 s"),
    ("op", "chat", 10**6, "ttl 1000000 s"),
])
def test_bad_token_requests_are_refused(base: Path, subject: str, audience: str, ttl: int, message: str) -> None:
    private, _kid = _jwt.signing_key(base)
    with pytest.raises(SecretError, match=message):
        _jwt.mint(private, subject, audience, [], ttl)


def test_rotation_stage_promote_retire_prune(base: Path) -> None:
    first = _jwt.published(base)[0]["kid"]
    with pytest.raises(SecretError, match="no staged JWT key"):
        _jwt.promote(base, 600)
    _jwt.stage(base)
    roles = [(k["role"], k["kid"]) for k in _jwt.published(base)]
    assert roles[0] == ("signing", first) and roles[1][0] == "next"
    staged = roles[1][1]
    assert _jwt.promote(base, 600, now=1000.0) == first
    keys = _jwt.published(base, now=1500.0)
    assert [(k["role"], k["kid"]) for k in keys] == [("signing", staged), ("retired", first)]
    assert _jwt.signing_key(base)[1] == staged
    assert _jwt.bundle(keys).count("BEGIN PUBLIC KEY") == 2
    # Past the overlap the former key is no longer accepted, and pruning removes it.
    assert [k["role"] for k in _jwt.published(base, now=1700.0, prune=True)] == ["signing"]
    assert not list((base / "jwt" / "retired").glob("*.pub.pem"))


def test_promote_in_check_mode_changes_nothing(base: Path) -> None:
    _jwt.stage(base)
    before = sorted(p.name for p in (base / "jwt").iterdir())
    _jwt.promote(base, 600, check_mode=True)
    assert sorted(p.name for p in (base / "jwt").iterdir()) == before


def test_a_signing_key_others_can_read_is_refused_with_the_fix(base: Path) -> None:
    os.chmod(base / "jwt" / "signing.pem", 0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        _jwt.signing_key(base)
