#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: jwt_token
short_description: Mint a short-lived token for one unit of the stack, for operators and tests
version_added: 0.1.0
description:
  - Signs an EdDSA (Ed25519) JWT with the stack's signing key from C(<dir>/jwt/signing.pem) on
    the controller, with C(iss=mlstack), the subject, the audience (the unit it is for), the
    scopes, C(iat), C(exp) and a unique C(jti), and the key id in its header.
  - The token is a credential. Always set C(no_log) on the task.
  - O(forged=true) signs with a throwaway key under the real key id, and a negative O(ttl) makes an
    expired token; both exist to prove that services refuse them (C(playbooks/security.yml)).
  - This is an action plugin that runs on the controller. A signing key file readable by others
    is refused with the chmod that fixes it.
  - Where E(MLSTACK_JWT_SIGNING_KEY_FILE) names a file (an AWX credential's key), that key signs
    instead of C(signing.pem). A key that is not the published C(signing.pub.pem) is refused.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.controller
  - aiops.mlstack.vault
options:
  dir:
    description: The secrets directory on the controller.
    type: path
    required: true
  subject:
    description: Who the token is for (C(sub)), an operator or a service.
    type: str
    required: true
  audience:
    description:
      - The unit that must accept the token (C(aud)); another unit refuses it.
      - A list of units makes one token that each of them accepts, with C(aud) a JSON list (RFC 7519).
        A call through the gateway needs C(coordination) and the unit it is routed to; chat with
        C(reasoning=true) needs C(chat) and C(reasoning).
    type: raw
    required: true
  scopes:
    description:
      - Scopes the token carries (C(scope), space-separated in the token). The services require
        C(voice:tts), C(voice:stt), C(voice:session) (voice-interaction) and C(chat:complete) (chat).
    type: list
    elements: str
    default: []
  ttl:
    description: Lifetime in seconds, at most 86400. Negative makes an already expired token.
    type: int
    default: 300
  forged:
    description: Sign with a throwaway key instead of the stack's (a forgery, for security checks).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: A five-minute token to synthesize speech
  aiops.mlstack.jwt_token:
    dir: ~/.local/share/mlstack/secrets
    subject: operator-alice
    audience: voice-interaction
    scopes: [voice:tts]
  register: __token
  no_log: true

- name: One token for chat and the reasoning unit it asks (chat's reasoning option)
  aiops.mlstack.jwt_token:
    dir: ~/.local/share/mlstack/secrets
    subject: operator-alice
    audience: [chat, reasoning]
    scopes: [chat:complete, reasoning:reason]
  register: __token
  no_log: true
"""

RETURN = r"""
token:
  description: The signed token. A credential - register it under no_log.
  returned: success
  type: str
kid:
  description: Id of the key it names in its header.
  returned: success
  type: str
expires_at:
  description: Its C(exp), seconds since the epoch.
  returned: success
  type: int
forged:
  description: Whether it was signed with a throwaway key.
  returned: success
  type: bool
"""
