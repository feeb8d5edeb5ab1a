"""The JWT key set (stage, promote, retire, prune) and the tokens it mints, checked with PyJWT."""

from __future__ import annotations

import os
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from ansible_collections.aiops.mlstack.plugins.plugin_utils import _jwt
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError
from ansible_collections.aiops.mlstack.plugins.plugin_utils._vault import Vault


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


def vault_file(tmp_path: Path, password: str, mode: int = 0o600) -> Path:
    path = tmp_path / "vault-pass"
    path.write_text(password + "\n")
    path.chmod(mode)
    return path


def test_vaulted_keys_are_encrypted_at_rest_and_still_sign(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    vault = Vault(vault_file(tmp_path, "correct-horse-battery-staple"))
    _jwt.ensure_current(secrets, vault=vault)
    assert (secrets / "jwt" / "signing.pem").read_bytes().startswith(b"$ANSIBLE_VAULT")
    private, kid = _jwt.signing_key(secrets, vault)
    token, _exp = _jwt.mint(private, "op", "chat", [], 60, kid=kid)
    [published] = _jwt.published(secrets)
    assert jwt.decode(token, public_key(published["public"]), algorithms=["EdDSA"], audience="chat")["sub"] == "op"
    with pytest.raises(SecretError, match="give vault_password_file"):
        _jwt.signing_key(secrets)
    with pytest.raises(SecretError, match="cannot be decrypted with this vault password"):
        _jwt.signing_key(secrets, Vault(vault_file(tmp_path, "another-long-password-here")))


def test_a_plain_key_is_encrypted_in_place_when_a_vault_is_given(base: Path, tmp_path: Path) -> None:
    assert not (base / "jwt" / "signing.pem").read_bytes().startswith(b"$ANSIBLE_VAULT")
    _jwt.ensure_current(base, vault=Vault(vault_file(tmp_path, "correct-horse-battery-staple")))
    stored = base / "jwt" / "signing.pem"
    assert stored.read_bytes().startswith(b"$ANSIBLE_VAULT") and oct(stored.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(("password", "mode", "message"), [
    ("short", 0o600, "too weak"),
    ("aaaaaaaaaaaaaaaaaaaaaaaa", 0o600, "too weak"),
    ("correct-horse-battery-staple", 0o644, "chmod 600"),
])
def test_weak_or_exposed_vault_passwords_are_refused(tmp_path: Path, password: str, mode: int,
                                                     message: str) -> None:
    with pytest.raises(SecretError, match=message):
        Vault(vault_file(tmp_path, password, mode))


def test_a_missing_vault_password_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="does not exist: create it"):
        Vault(tmp_path / "nope")


def test_a_list_audience_is_a_json_list_claim_every_named_unit_accepts(base: Path) -> None:
    private, kid = _jwt.signing_key(base)
    token, _exp = _jwt.mint(private, "op", ["chat", "reasoning", "chat"], ["chat:complete"], 60, kid=kid)
    key = public_key(_jwt.published(base)[0]["public"])
    for unit in ("chat", "reasoning"):
        claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=unit, issuer="mlstack")
        assert claims["aud"] == ["chat", "reasoning"]
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key, algorithms=["EdDSA"], audience="voice-interaction", issuer="mlstack")


def test_a_string_audience_stays_a_string_claim(base: Path) -> None:
    private, kid = _jwt.signing_key(base)
    token, _exp = _jwt.mint(private, "op", "chat", [], 60, kid=kid)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "chat"


@pytest.mark.parametrize("audience", [[], ["chat", ""], [" "]])
def test_an_empty_unit_in_the_audience_is_refused(base: Path, audience: list[str]) -> None:
    private, _kid = _jwt.signing_key(base)
    with pytest.raises(SecretError):
        _jwt.mint(private, "op", audience, [], 60)


def test_an_injected_key_is_published_never_written_and_signs(tmp_path: Path) -> None:
    base = tmp_path / "secrets"
    kept = _jwt.throwaway_private_pem()
    key_file = tmp_path / "awx-job-file"
    key_file.write_bytes(kept)
    injected = _jwt.injected_key({_jwt.SIGNING_KEY_ENV: str(key_file)})
    assert injected == kept
    assert _jwt.ensure_current(base, check_mode=True, injected=injected) == (_jwt.public_of(kept), True)
    assert not base.exists(), "check mode writes nothing"
    assert _jwt.ensure_current(base, injected=injected) == (_jwt.public_of(kept), True)
    assert _jwt.ensure_current(base, injected=injected)[1] is False
    assert not (base / "jwt" / "signing.pem").exists()
    private, kid = _jwt.signing_key(base, injected=injected)
    assert private == kept and kid == _jwt.kid_of(_jwt.public_of(kept))


@pytest.mark.parametrize("environ", [{}, {_jwt.SIGNING_KEY_ENV: ""}])
def test_no_injected_key_without_the_variable(environ: dict[str, str]) -> None:
    assert _jwt.injected_key(environ) is None


def test_an_empty_injected_file_is_no_key_and_a_missing_one_is_refused(tmp_path: Path) -> None:
    # AWX writes the file even where the credential's optional key field was left empty.
    (tmp_path / "empty").write_text("")
    assert _jwt.injected_key({_jwt.SIGNING_KEY_ENV: str(tmp_path / "empty")}) is None
    with pytest.raises(SecretError, match="No such file"):
        _jwt.injected_key({_jwt.SIGNING_KEY_ENV: str(tmp_path / "gone")})


def test_a_key_other_than_the_published_one_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "secrets"
    _jwt.ensure_current(base)
    with pytest.raises(SecretError, match="is not the one published"):
        _jwt.signing_key(base, injected=_jwt.throwaway_private_pem())
