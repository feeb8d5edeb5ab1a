# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible Vault for the private JWT keys: controller-side only (ansible.parsing is not module_utils)."""

from __future__ import annotations

from pathlib import Path

from ansible.parsing.vault import AnsibleVaultError, VaultLib, VaultSecret, is_encrypted

from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError, check_permissions

MIN_VAULT_PASSWORD = 16


class Vault:
    """Ansible Vault for the private keys, from a password file that is checked first.

    A missing, unreadable, loosely permitted or weak password file is refused before any
    key is touched, with the fix.
    """

    def __init__(self, password_file: str | Path) -> None:
        path = Path(password_file).expanduser()
        if not path.is_file():
            raise SecretError(f"vault password file {path} does not exist: create it (mode 0600, at least "
                              f"{MIN_VAULT_PASSWORD} characters) or leave vault_password_file unset")
        check_permissions(path)
        password = path.read_bytes().strip()
        if len(password) < MIN_VAULT_PASSWORD or len(set(password)) < 8:
            raise SecretError(f"vault password in {path} is too weak: use at least {MIN_VAULT_PASSWORD} characters "
                              "with at least 8 different ones (e.g. 'openssl rand -base64 32 > FILE')")
        self._lib = VaultLib([("default", VaultSecret(password))])

    def encrypt(self, data: bytes) -> bytes:
        return self._lib.encrypt(data)

    def decrypt(self, data: bytes, source: Path) -> bytes:
        if not is_encrypted(data):
            return data
        try:
            return self._lib.decrypt(data)
        except AnsibleVaultError:
            raise SecretError(f"{source} cannot be decrypted with this vault password: use the password it "
                              "was encrypted with") from None


def vault_of(password_file: str | Path | None) -> Vault | None:
    return Vault(password_file) if password_file else None
