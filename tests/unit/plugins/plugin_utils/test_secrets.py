"""Secrets: generated once, 0600, never replaced, loose permissions refused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError, ensure


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_once_private_and_kept(tmp_path: Path) -> None:
    base = tmp_path / "secrets"
    value, created = ensure(base, "redis", "admin")
    assert created and len(value) == 40 and value.isalnum()
    assert mode(base / "redis" / "admin") == 0o600
    assert mode(base / "redis") == 0o700
    again, created_again = ensure(base, "redis", "admin")
    assert (again, created_again) == (value, False)


def test_two_secrets_differ(tmp_path: Path) -> None:
    assert ensure(tmp_path, "redis", "admin")[0] != ensure(tmp_path, "redis", "chat")[0]


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    value, created = ensure(tmp_path / "s", "redis", "admin", check_mode=True)
    assert created and value
    assert not (tmp_path / "s").exists()


def test_loose_file_permissions_are_refused_with_the_fix(tmp_path: Path) -> None:
    ensure(tmp_path, "redis", "admin")
    (tmp_path / "redis" / "admin").chmod(0o644)
    with pytest.raises(SecretError, match=r"mode 0644, readable by others: run 'chmod 600 .*admin'"):
        ensure(tmp_path, "redis", "admin")


def test_short_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir(mode=0o700)
    weak = tmp_path / "redis" / "admin"
    weak.write_text("hunter2\n")
    weak.chmod(0o600)
    with pytest.raises(SecretError, match="shorter than 24 characters"):
        ensure(tmp_path, "redis", "admin")


@pytest.mark.parametrize("name", ["../etc", "Admin", "", "a/b"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(SecretError, match="invalid"):
        ensure(tmp_path, "redis", name)


def test_keypair_generated_once_private_half_private(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import ensure_keypair

    public, created = ensure_keypair(tmp_path, "jwt", "signing")
    assert created and public.startswith("-----BEGIN PUBLIC KEY-----")
    assert mode(tmp_path / "jwt" / "signing.pem") == 0o600
    assert (tmp_path / "jwt" / "signing.pub.pem").read_text() == public
    assert ensure_keypair(tmp_path, "jwt", "signing") == (public, False)
    key = serialization.load_pem_private_key((tmp_path / "jwt" / "signing.pem").read_bytes(), password=None)
    assert key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode() == public


def test_keypair_with_loose_permissions_is_refused(tmp_path: Path) -> None:
    from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import ensure_keypair

    ensure_keypair(tmp_path, "jwt", "signing")
    (tmp_path / "jwt" / "signing.pem").chmod(0o640)
    with pytest.raises(SecretError, match="chmod 600"):
        ensure_keypair(tmp_path, "jwt", "signing")


def test_rotation_keeps_the_former_value_until_it_ends(tmp_path: Path) -> None:
    from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import drop_previous, previous, rotate

    first, _created = ensure(tmp_path, "redis", "chat")
    new = rotate(tmp_path, "redis", "chat")
    assert new != first and previous(tmp_path, "redis", "chat") == first
    assert ensure(tmp_path, "redis", "chat")[0] == new
    # A rotation that did not end is not begun again: the former value stays the one clients had.
    assert rotate(tmp_path, "redis", "chat") == new and previous(tmp_path, "redis", "chat") == first
    assert oct((tmp_path / "redis" / "chat.previous").stat().st_mode & 0o777) == "0o600"
    assert drop_previous(tmp_path, "redis", "chat") is True
    assert previous(tmp_path, "redis", "chat") is None and drop_previous(tmp_path, "redis", "chat") is False


def test_rotation_in_check_mode_writes_nothing(tmp_path: Path) -> None:
    from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import previous, rotate

    first, _created = ensure(tmp_path, "redis", "chat")
    assert rotate(tmp_path, "redis", "chat", check_mode=True) == first
    assert previous(tmp_path, "redis", "chat") is None


def test_a_rotation_interrupted_before_its_new_value_gets_one_on_the_re_run(tmp_path: Path) -> None:
    """Killed between writing <name>.previous and the new value: both hold the former one."""
    from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import previous, rotate, rotation_started

    first, _created = ensure(tmp_path, "postgresql", "postgres")
    (tmp_path / "postgresql" / "postgres.previous").write_text(first + "\n")
    (tmp_path / "postgresql" / "postgres.previous").chmod(0o600)
    assert rotation_started(tmp_path, "postgresql", "postgres") is False
    new = rotate(tmp_path, "postgresql", "postgres")
    assert new != first and previous(tmp_path, "postgresql", "postgres") == first
    assert rotation_started(tmp_path, "postgresql", "postgres") is True
    # Begun now: a further re-run keeps the new value.
    assert rotate(tmp_path, "postgresql", "postgres") == new
