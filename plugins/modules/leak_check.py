#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: leak_check
short_description: Prove that no generated secret appears in logs or evidence bundles
version_added: 0.1.0
description:
  - Reads every generated secret under O(dir) on the controller (passwords; private keys by each
    line of their body; public keys and rotation times are not secret) and searches the files
    under O(paths) for them, for instance C(evidence/) and the run's log.
  - With O(tokens), any signed JWT (C(header.claims.signature), the stack's bearer credential,
    expired or not, whoever signed it) found in those files is a leak too.
  - Returns one evidence record C(secrets_not_leaked) that names the files and the secrets
    found, never their values.
  - This is an action plugin that runs on the controller.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.controller
options:
  dir:
    description: The secrets directory on the controller.
    type: path
    required: true
  paths:
    description: Files and directories to search (symbolic links are not followed).
    type: list
    elements: path
    required: true
  tokens:
    description: Also report any signed JWT found in the files (a token belongs under C(no_log), never in a log).
    type: bool
    default: true
  unit:
    description: Unit the evidence record is filed under.
    type: str
    default: security
  fail_on_error:
    description: Fail the task when a secret is found.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: No secret in the evidence bundles
  aiops.mlstack.leak_check:
    dir: ~/.local/share/mlstack/secrets
    paths: ["{{ playbook_dir }}/../evidence"]
"""

RETURN = r"""
evidence:
  description: The C(secrets_not_leaked) record.
  returned: always
  type: dict
"""
