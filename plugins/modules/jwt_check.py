#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: jwt_check
short_description: Prove that every /v1 endpoint of a service refuses bad tokens and lets a good one in
version_added: 0.1.0
description:
  - Reads the service's C(/openapi.json), then calls every C(/v1) operation with no token, an
    expired token, a forged token (signed by a throwaway key under the real key id) and a
    token for another audience, and expects C(401) from each; then with a valid token without
    scopes, and expects anything but C(401) (the scope check answers C(403) before any work).
  - Returns one evidence record per attack (C(jwt_<attack>_refused)) and one for the valid token
    (C(jwt_valid_token_accepted)), each with every endpoint's answer.
  - This is an action plugin that runs on the controller, where the signing key is; the
    tokens never appear in its result. The controller must reach O(url).
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.controller
  - aiops.mlstack.vault
options:
  unit:
    description: The unit, which is also the audience its tokens must carry.
    type: str
    required: true
  url:
    description: Base URL of the service (scheme, address, port).
    type: str
    required: true
  dir:
    description: The secrets directory on the controller (its C(jwt/signing.pem) signs the test tokens).
    type: path
    required: true
  other_audience:
    description: Audience of the wrong-audience token (default C(not-<unit>)).
    type: str
  timeout:
    description: Seconds per request.
    type: float
    default: 10
  fail_on_error:
    description: Fail the task when a check fails (the records are returned either way).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Attack the chat unit's API with bad tokens
  aiops.mlstack.jwt_check:
    unit: chat
    url: http://127.0.0.1:8007
    dir: ~/.local/share/mlstack/secrets
"""

RETURN = r"""
endpoints:
  description: The C(/v1) operations probed, as C(METHOD /path).
  returned: success
  type: list
  elements: str
evidence:
  description: One record per attack and one for the valid token.
  returned: always
  type: list
  elements: dict
"""
