#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: neo4j_check
short_description: Prove that Neo4j answers over Bolt, enforces authentication and stores a write
version_added: 0.1.0
description:
  - Probes a Neo4j server with the official C(neo4j) Python driver and returns one evidence record
    per check, see RV(evidence).
  - C(connect) the user authenticates; the Bolt protocol version, the server agent, the Neo4j
    version and edition (C(dbms.components())) and the latency are observed.
  - C(auth_required) a connection without credentials is refused with an authentication error (a
    network error is a failure, not a refusal).
  - C(wrong_password_rejected) the user with a wrong password is refused.
  - C(write_read) a probe node C(:MlstackCheck) with a random token is created, read back and deleted.
  - No password ever appears in a record; server error texts are masked.
  - The task fails when any record is not ok, unless O(fail_on_error=false).
author: mlstack maintainers (@aiops)
requirements:
  - neo4j (the official Python driver) >= 5.0 on the host that runs the module
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details:
      - The checks run in check mode too; the only write is the probe node, deleted at once. The
        module never reports C(changed).
  diff_mode:
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  unit:
    description: Unit name written into every evidence record.
    type: str
    required: true
  host:
    description: Host name or IP address of the Neo4j server.
    type: str
    default: localhost
  port:
    description: Bolt port.
    type: int
    default: 7687
  user:
    description: User to authenticate as.
    type: str
    default: neo4j
  password:
    description: Password of O(user).
    type: str
    required: true
  timeout:
    description: Connection timeout in seconds.
    type: float
    default: 10.0
  fail_on_error:
    description: Fail the task when any record is not ok. With V(false) the task succeeds and RV(ok) tells.
    type: bool
    default: true
seealso:
  - module: aiops.mlstack.postgres_check
"""

EXAMPLES = r"""
- name: Prove Neo4j version, authentication and a write and read
  aiops.mlstack.neo4j_check:
    unit: neo4j
    host: 172.18.0.5
    password: "{{ __neo4j_secrets.secrets.neo4j }}"
  register: __neo4j_check
"""

RETURN = r"""
ok:
  description: True when every record is ok.
  returned: always
  type: bool
  sample: true
evidence:
  description:
    - One record per check in the order C(connect), C(auth_required), C(wrong_password_rejected), C(write_read).
    - The schema is the collection's evidence record (see docs/evidence.md).
  returned: always
  type: list
  elements: dict
  sample:
    - {"schema": 1, "unit": "neo4j", "check": "connect", "ok": true, "message": "Bolt 5.8 to Neo4j/5.26.0",
       "observed": {"bolt_protocol": "5.8", "neo4j_version": "5.26.0", "edition": "community"}}
msg:
  description: Summary; on failure names the failed checks.
  returned: always
  type: str
  sample: "neo4j: 4 of 4 checks ok"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import finish
from ansible_collections.aiops.mlstack.plugins.module_utils._neo4j import HAS_NEO4J, NEO4J_IMPORT_ERROR, check_neo4j


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "host": {"type": "str", "default": "localhost"},
            "port": {"type": "int", "default": 7687},
            "user": {"type": "str", "default": "neo4j"},
            "password": {"type": "str", "required": True, "no_log": True},
            "timeout": {"type": "float", "default": 10.0},
            "fail_on_error": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    if not HAS_NEO4J:
        module.fail_json(msg=missing_required_lib("neo4j"), exception=NEO4J_IMPORT_ERROR)
    p = module.params
    if not 0 < p["port"] < 65536:
        module.fail_json(msg=f"port={p['port']} is not a TCP port: give 1-65535")
    uri = f"bolt://{p['host']}:{p['port']}"
    finish(module, p["unit"], check_neo4j(p["unit"], uri, p["user"], p["password"], p["timeout"]), p["fail_on_error"])


if __name__ == "__main__":
    main()
