#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: neo4j_password
short_description: Change a Neo4j user's password live, from its former one to a new one
version_added: 0.1.0
description:
  - Logs in over Bolt with O(previous_password) and runs C(ALTER CURRENT USER SET PASSWORD FROM .. TO ..) on
    the C(system) database, the passwords as query parameters (never in the query text). Used by
    C(playbooks/rotate_passwords.yml) for the C(neo4j) user; the server does not restart.
  - When O(previous_password) is refused and O(password) accepted, the change was made already (a re-run
    after an interrupted rotation) and nothing is done.
  - The former password is tried first, so a first run has no refused login; a login refused by Neo4j's
    lock after three refused logins in a row is tried once more after the lock time.
  - Connections already logged in stay so; new connections need the new password.
author: mlstack maintainers (@aiops)
requirements:
  - neo4j (the official Python driver) >= 5.0 on the host that runs the module
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module logs in to find which password the server has, and changes nothing.
  diff_mode:
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  host:
    description: Host name or IP address of the Neo4j server.
    type: str
    default: localhost
  port:
    description: Bolt port.
    type: int
    default: 7687
  user:
    description: User whose password changes (it logs in as itself).
    type: str
    default: neo4j
  password:
    description: The new password.
    type: str
    required: true
  previous_password:
    description: The password the server has until the change.
    type: str
    required: true
  timeout:
    description: Connection timeout in seconds.
    type: float
    default: 10.0
seealso:
  - module: aiops.mlstack.neo4j_check
"""

EXAMPLES = r"""
- name: Give the neo4j user its new password, live
  aiops.mlstack.neo4j_password:
    host: 172.18.0.5
    password: "{{ secrets_values['neo4j'] }}"
    previous_password: "{{ secrets_previous['neo4j'] }}"
  register: __neo4j_password
"""

RETURN = r"""
msg:
  description: What was done, without any secret.
  returned: always
  type: str
  sample: "neo4j's password was changed (open connections stay logged in)"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.aiops.mlstack.plugins.module_utils._neo4j import (
    HAS_NEO4J,
    NEO4J_IMPORT_ERROR,
    PasswordError,
    set_password,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "localhost"},
            "port": {"type": "int", "default": 7687},
            "user": {"type": "str", "default": "neo4j"},
            "password": {"type": "str", "required": True, "no_log": True},
            "previous_password": {"type": "str", "required": True, "no_log": True},
            "timeout": {"type": "float", "default": 10.0},
        },
        supports_check_mode=True,
    )
    if not HAS_NEO4J:
        module.fail_json(msg=missing_required_lib("neo4j"), exception=NEO4J_IMPORT_ERROR)
    p = module.params
    if not 0 < p["port"] < 65536:
        module.fail_json(msg=f"port={p['port']} is not a TCP port: give 1-65535")
    try:
        result = set_password(f"bolt://{p['host']}:{p['port']}", p["user"], p["password"], p["previous_password"],
                              p["timeout"], check_mode=module.check_mode)
    except PasswordError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
