#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgres_check
short_description: Prove that PostgreSQL answers, accepts only SCRAM and keeps each service in its own database
version_added: 0.1.0
description:
  - Probes a PostgreSQL server over TCP and returns one evidence record per check, see RV(evidence).
  - C(connect) the admin role connects to O(admin_database); latency and C(server_version) are observed.
  - C(scram_only) C(password_encryption) is C(scram-sha-256), the admin role's stored password is a
    C(SCRAM-SHA-256$) verifier, no role has another kind of stored password, and no rule of
    C(pg_hba_file_rules) uses C(trust), C(password) or C(md5) (the offending lines are observed).
  - C(auth_required) connecting as the admin role without a password is refused.
  - C(wrong_password_rejected) connecting as the admin role with a wrong password is refused.
  - For each of O(users), C(own_database_access) the role connects to its own database and
    creates, writes, reads and drops a table C(mlstack_check) inside a transaction that is rolled
    back; C(foreign_database_denied) connecting to the next user's database is refused (CONNECT
    revoked from PUBLIC, or a C(pg_hba.conf) rule); with a single user there is no other service
    database and the record says it was skipped (C(observed.skipped=true));
    C(not_superuser) the role has none of C(rolsuper), C(rolcreaterole), C(rolcreatedb).
    The records carry C(observed.user).
  - No password ever appears in a record; every password given is masked in error texts.
  - The task fails when any record is not ok, unless O(fail_on_error=false).
author: mlstack maintainers (@aiops)
requirements:
  - psycopg >= 3.1 (C(psycopg[binary]) or a system libpq) on the host that runs the module
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details:
      - The checks run in check mode too. They change nothing on the server - the table of
        C(own_database_access) is created and dropped in a transaction that is rolled back. The
        module never reports C(changed).
  diff_mode:
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  unit:
    description: Unit name written into every evidence record (the inventory host of the PostgreSQL unit).
    type: str
    required: true
  host:
    description: Host name or IP address of the server (always TCP, never the local socket).
    type: str
    default: localhost
  port:
    description: TCP port of the server.
    type: int
    default: 5432
  admin_user:
    description:
      - Superuser role used for C(connect), C(scram_only) (it reads C(pg_authid) and
        C(pg_hba_file_rules)) and C(not_superuser).
    type: str
    default: postgres
  admin_password:
    description: Password of O(admin_user).
    type: str
    required: true
  admin_database:
    description: Database the admin role connects to.
    type: str
    default: postgres
  users:
    description: Service roles whose isolation is proven.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Role name; lower-case letters, digits and underscore.
        type: str
        required: true
      password:
        description: The role's password.
        type: str
        required: true
      database:
        description: The role's own database. Defaults to O(users[].name).
        type: str
  timeout:
    description: Connect timeout of each connection, in seconds (libpq rounds it to whole seconds, at least 1).
    type: float
    default: 5.0
  fail_on_error:
    description: Fail the task when any record is not ok. With V(false) the task succeeds and RV(ok) tells.
    type: bool
    default: true
notes:
  - C(PGPASSWORD) and C(~/.pgpass) are never used, so C(auth_required) cannot be fooled by them.
seealso:
  - module: aiops.mlstack.postgres_provision
  - module: aiops.mlstack.redis_check
"""

EXAMPLES = r"""
- name: Prove PostgreSQL authentication and per-service isolation
  aiops.mlstack.postgres_check:
    unit: postgresql
    host: 172.18.0.3
    admin_password: "{{ __postgresql_secrets.secrets.admin }}"
    users:
      - name: learning
        password: "{{ __postgresql_secrets.secrets.learning }}"
      - name: sequential_thinking
        password: "{{ __postgresql_secrets.secrets.sequential_thinking }}"
        database: thoughts
  register: __postgresql_check
"""

RETURN = r"""
ok:
  description: True when every record is ok.
  returned: always
  type: bool
  sample: true
evidence:
  description:
    - One record per check in the order C(connect), C(scram_only), C(auth_required),
      C(wrong_password_rejected), then C(own_database_access), C(foreign_database_denied) and
      C(not_superuser) per user.
    - The schema is the collection's evidence record (see docs/evidence.md).
  returned: always
  type: list
  elements: dict
  contains:
    schema:
      description: Version of the record schema.
      type: int
      sample: 1
    unit:
      description: The O(unit) given.
      type: str
      sample: postgresql
    check:
      description: Name of the check.
      type: str
      sample: scram_only
    ok:
      description: Whether the check passed.
      type: bool
    observed:
      description:
        - What was measured. C(connect) has C(user), C(database), C(host), C(port), C(latency_ms),
          C(server_version); C(scram_only) C(verifier_setting) (the value of
          C(password_encryption)), C(admin_verifier), C(non_scram_roles), C(hba_methods),
          C(weak_hba_rules); C(auth_required) and C(wrong_password_rejected) C(user), C(refused);
          C(own_database_access) C(user), C(database), C(read_back), C(dropped);
          C(foreign_database_denied) C(user), C(foreign_database), C(denied), C(denied_by)
          (C(privilege) or C(pg_hba)) or C(skipped); C(not_superuser) C(user), C(rolsuper),
          C(rolcreaterole), C(rolcreatedb).
      type: dict
      sample: {"user": "learning", "foreign_database": "thoughts", "denied": true, "denied_by": "privilege"}
    message:
      description: What happened, with the server's error text (passwords masked).
      type: str
    timestamp:
      description: ISO 8601 UTC time of the record.
      type: str
msg:
  description: Summary; on failure names the failed checks.
  returned: always
  type: str
  sample: "postgresql: 10 of 10 checks ok"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import finish
from ansible_collections.aiops.mlstack.plugins.module_utils._postgres import (
    HAS_PSYCOPG,
    PSYCOPG_IMPORT_ERROR,
    services_from_params,
    validate_services,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._postgres_checks import check_postgres


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "host": {"type": "str", "default": "localhost"},
            "port": {"type": "int", "default": 5432},
            "admin_user": {"type": "str", "default": "postgres"},
            "admin_password": {"type": "str", "required": True, "no_log": True},
            "admin_database": {"type": "str", "default": "postgres"},
            "users": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "password": {"type": "str", "required": True, "no_log": True},
                    "database": {"type": "str"},
                },
            },
            "timeout": {"type": "float", "default": 5.0},
            "fail_on_error": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    if not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib("psycopg"), exception=PSYCOPG_IMPORT_ERROR)
    p = module.params
    errors = validate_services(p["users"], "users")
    if errors:
        module.fail_json(msg="; ".join(errors))
    evidence = check_postgres(
        p["unit"],
        p["host"],
        p["port"],
        p["admin_user"],
        p["admin_password"],
        p["admin_database"],
        services_from_params(p["users"]),
        p["timeout"],
    )
    finish(module, p["unit"], evidence, p["fail_on_error"])


if __name__ == "__main__":
    main()
