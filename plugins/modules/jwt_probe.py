#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: jwt_probe
short_description: Send tokens minted on the controller to every /v1 endpoint of a service, from its Docker host
version_added: 0.2.0
description:
  - The request half of the JWT attacks of M(aiops.mlstack.unit_verify) for a unit on another Docker host,
    whose backend address only that host reaches. Reads the service's C(/openapi.json) and sends each
    token in O(tokens) to every C(/v1) operation; returns the status codes, never a token.
  - The tokens are minted on the controller, where the signing key stays; they live 120 seconds.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details: It only reads; check mode runs it the same.
  diff_mode:
    support: none
options:
  url:
    description: The service's base URL on its backend network.
    type: str
    required: true
  tokens:
    description: Name to bearer token (null for no token). Secret.
    type: dict
    required: true
  timeout:
    description: Seconds for each request.
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: Probe chat's endpoints with the tokens the controller minted
  aiops.mlstack.jwt_probe:
    url: http://172.18.0.5:8007
    tokens: "{{ minted }}"
  no_log: true
"""

RETURN = r"""
endpoints:
  description: The C(/v1) operations, each a C([METHOD, path]).
  returned: success
  type: list
  elements: list
answers:
  description: Token name to C("METHOD path") to status code.
  returned: success
  type: dict
"""

import http.client

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiops.mlstack.plugins.module_utils._jwt_probe import probe


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "tokens": {"type": "dict", "required": True, "no_log": True},
            "timeout": {"type": "float", "default": 10},
        },
        supports_check_mode=True,
    )
    try:
        endpoints, answers = probe(module.params["url"], module.params["tokens"], module.params["timeout"])
    except (OSError, ValueError, http.client.HTTPException) as exc:
        module.fail_json(msg=f"could not probe {module.params['url']}: {exc}")
    module.exit_json(changed=False, endpoints=[list(e) for e in endpoints], answers=answers)


if __name__ == "__main__":
    main()
