#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: jwt_key
short_description: Keep the stack's JWT signing key set, and rotate it without cutting clients off
version_added: 0.1.0
description:
  - Keeps the Ed25519 key set that signs the services' tokens under C(<dir>/jwt) on the
    controller. C(signing.pem) signs; a staged C(next.pem) is accepted by services before
    anybody signs with it; former signing keys stay accepted in C(retired/) until their
    overlap ends, so tokens issued before a rotation keep working.
  - Returns RV(public_bundle), every public key a service must accept now, which roles write
    to each unit's C(/run/secrets/jwt_public.pem). Services re-read that file when it changes.
  - A rotation is C(state=staged), publish, C(state=promoted), publish - what
    C(playbooks/rotate_jwt.yml) does - so no service ever meets a token signed by a key it
    does not know. Retired keys past their overlap are removed.
  - This is an action plugin that runs on the controller. The private keys never leave it.
  - Where the environment variable E(MLSTACK_JWT_SIGNING_KEY_FILE) names a file (the AWX credential
    C(mlstack secrets) injects the key it keeps so), that Ed25519 key is the signing key, and only its
    public half is written to C(signing.pub.pem). Such a key is rotated where it is kept; C(state=staged)
    and C(state=promoted) are refused.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.controller
  - aiops.mlstack.vault
options:
  dir:
    description: The secrets directory on the controller; the key set lives in its C(jwt) subdirectory.
    type: path
    required: true
  state:
    description:
      - C(present) makes the signing key once and prunes expired retired keys.
      - C(staged) also makes the next key, published but not signing yet.
      - C(promoted) makes the staged key the signing key and retires the former one for O(overlap) seconds.
    type: str
    choices: [present, staged, promoted]
    default: present
  overlap:
    description: Seconds a retired signing key stays accepted; at least the longest token lifetime in use.
    type: int
    default: 3600
"""

EXAMPLES = r"""
- name: Publish the accepted public keys to a unit
  aiops.mlstack.jwt_key:
    dir: ~/.local/share/mlstack/secrets
  register: __keys

- name: Rotate, step 1 of 2 - stage the next key (then publish __keys.public_bundle everywhere)
  aiops.mlstack.jwt_key:
    dir: ~/.local/share/mlstack/secrets
    state: staged
"""

RETURN = r"""
kid:
  description: Id of the signing key (the token header's C(kid)).
  returned: always
  type: str
next_kid:
  description: Id of the staged key, if one is staged.
  returned: always
  type: str
retired:
  description: Former signing keys still accepted, each with C(kid), C(until) (epoch) and C(left_s).
  returned: always
  type: list
  elements: dict
public_bundle:
  description: The PEM public keys every service must accept now (not secret).
  returned: always
  type: str
actions:
  description: What this run changed.
  returned: always
  type: list
  elements: str
"""
