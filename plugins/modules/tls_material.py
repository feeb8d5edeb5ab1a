#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tls_material
short_description: The stack's CA and its servers' TLS certificates, made and renewed on the controller
version_added: 0.2.0
description:
  - Keeps the stack's own certificate authority in the secrets directory (C(tls/ca.key) and
    C(tls/ca-current.pem) sign, C(tls/ca.pem) is the bundle clients trust) and, for each server in
    O(servers), a key and a certificate C(<unit>/tls_cert.pem), C(<unit>/tls_key.pem) whose subject
    alternative names are the server's O(servers[].names) (IP addresses and DNS names). Every file is
    mode 0600 in a 0700 directory, written atomically.
  - Nothing valid is made again. A certificate is issued again when its names changed, when it ends
    within O(cert_renew_days), or when the current CA did not sign it. The CA is replaced when it ends
    within O(ca_renew_days) or O(rotate=ca); the former CA stays in the bundle until it expires, so no
    client distrusts a server in the meantime.
  - Used by C(playbooks/host.yml) for the databases that units on other Docker hosts reach
    (docs/scale-out.md). With no server, nothing is made.
  - This is an action plugin that runs on the controller. No key is ever returned.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: partial
    details: Names what is made, issued or retired and why (serials and dates); never key material.
options:
  secrets_dir:
    description: The secrets directory on the controller (the resolved unit's C(secrets_dir)).
    type: path
    required: true
  servers:
    description: The units that serve TLS.
    type: list
    elements: dict
    default: []
    suboptions:
      unit:
        description: The unit (its certificate goes in its secrets subdirectory).
        type: str
        required: true
      names:
        description: The names clients reach it by (its unit name, container name, its host's address).
        type: list
        elements: str
        required: true
  rotate:
    description:
      - V(ca) replaces the CA now (and so issues every server certificate again); V(servers) issues
        every server certificate again with the current CA.
    type: str
    choices: [none, ca, servers]
    default: none
  ca_days:
    description: Validity of a new CA, in days.
    type: int
    default: 3650
  ca_renew_days:
    description: A CA ending within this many days is replaced.
    type: int
    default: 365
  cert_days:
    description: Validity of a server certificate, in days (never past the CA's end).
    type: int
    default: 397
  cert_renew_days:
    description: A server certificate ending within this many days is issued again.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: The stack CA and the cross-host databases' certificates
  aiops.mlstack.tls_material:
    secrets_dir: ~/.local/share/mlstack/secrets
    servers:
      - unit: postgresql
        names: [postgresql, mlstack-postgresql, 10.0.0.21]
  run_once: true
"""

RETURN = r"""
ca:
  description: The current CA's serial (hex) and last day of validity.
  returned: when a server is given
  type: dict
servers:
  description: Per unit - C(changed), C(names), C(not_after) and, when issued, C(reason).
  returned: always
  type: dict
"""
