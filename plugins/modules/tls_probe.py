#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tls_probe
short_description: From a unit's Docker host, prove its databases on other hosts speak verified TLS only
version_added: 0.2.0
description:
  - For each dependency on another Docker host (PostgreSQL or Redis), connects to the address and port that
    host publishes it on and checks that a TLS session verifies against the stack's CA bundle for that
    address (PostgreSQL after its SSLRequest), and that a client without TLS is turned away before it may
    authenticate (PostgreSQL's C(no pg_hba.conf entry ... no encryption); Redis closes the connection).
  - Run by M(aiops.mlstack.unit_verify) on the unit's host; it changes nothing.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details: It only connects; check mode runs it the same.
  diff_mode:
    support: none
options:
  dependencies:
    description: The dependencies, each with C(unit), C(role), C(docker_host), C(address) and C(port).
    type: list
    elements: dict
    required: true
  ca_pem:
    description: The stack's CA bundle (PEM; public).
    type: str
    required: true
  timeout:
    description: Seconds for each connection.
    type: float
    default: 5
"""

EXAMPLES = r"""
- name: Check the TLS of learning's databases on h1
  aiops.mlstack.tls_probe:
    dependencies:
      - {unit: postgresql, role: postgresql, docker_host: h1, address: 10.77.0.11, port: 5432}
    ca_pem: "{{ lookup('ansible.builtin.file', '~/.local/share/mlstack/secrets/tls/ca.pem') }}"
"""

RETURN = r"""
dependencies:
  description: Per unit - C(docker_host), C(address), C(role), C(tls) (C(ok), C(version) or C(error)) and
    C(plaintext) (C(ok) when refused, C(answer)).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiops.mlstack.plugins.module_utils._tls_probe import probe


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dependencies": {"type": "list", "elements": "dict", "required": True},
            "ca_pem": {"type": "str", "required": True},
            "timeout": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    module.exit_json(changed=False, dependencies=probe(module.params["dependencies"], module.params["ca_pem"],
                                                       module.params["timeout"]))


if __name__ == "__main__":
    main()
