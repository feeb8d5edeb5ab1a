# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The option of the modules that read the stack's private JWT keys."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  vault_password_file:
    description:
      - A file with the Ansible Vault password that keeps the private JWT keys encrypted at rest
        (C(mlstack_vault_password_file)). Unset, the keys are plain PEM files (mode 0600).
      - A missing file, a file others can read, or a password shorter than 16 characters or with
        fewer than 8 different characters is refused with the fix before any key is touched.
        An encrypted key without this option is refused, naming the option.
    type: path
"""
