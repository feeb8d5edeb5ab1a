#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgres_provision
short_description: Ensure one least-privileged role and one private database per client service in PostgreSQL
version_added: 0.1.0
description:
  - Connects as the admin role over TCP and reconciles, for each of O(clients), a role and a database.
  - The role exists with C(LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS).
  - Its password is stored as a C(SCRAM-SHA-256) verifier made on the client by libpq
    (C(PQencryptPasswordConn) through psycopg, with SASLprep, a random salt and the server's
    iteration count, 4096 by default), so the plain text password never reaches the server or its logs.
    The stored verifier is read from C(pg_authid), recomputed with its own salt and iteration
    count for the desired password, and replaced only when it differs (or is C(md5), or absent).
  - The database exists and is owned by the role; C(CONNECT) and C(TEMPORARY) are revoked from
    C(PUBLIC) and C(CONNECT) is granted to the role, so no other service can connect to it.
  - Roles and databases that are not listed are never touched or dropped.
  - Identifiers are quoted by psycopg; names are restricted to lower-case letters, digits and
    underscore, and a bad name fails the task naming the field.
author: mlstack maintainers (@aiops)
requirements:
  - psycopg >= 3.1 (C(psycopg[binary]) or a system libpq) on the host that runs the module
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details: In check mode the state is read and RV(changes) planned; no statement is executed.
  diff_mode:
    support: full
    details:
      - The diff lists the managed roles (attributes, kind of stored verifier, whether it matches) and
        databases (owner, PUBLIC privileges); never a password or verifier.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  host:
    description: Host name or IP address of the server (always TCP).
    type: str
    default: localhost
  port:
    description: TCP port of the server.
    type: int
    default: 5432
  admin_user:
    description: Superuser role to connect as (it reads C(pg_authid) and creates roles and databases).
    type: str
    default: postgres
  admin_password:
    description: Password of O(admin_user).
    type: str
    required: true
  admin_password_previous:
    description:
      - The former password of O(admin_user) while it is rotated (C(playbooks/rotate_passwords.yml)). The
        admin connects with whichever of the two the server accepts, then its password is set to
        O(admin_password) (a SCRAM-SHA-256 verifier made on the client by libpq, so the plain text never
        reaches the server). Open sessions are not cut.
    type: str
  admin_database:
    description: Database the admin role connects to.
    type: str
    default: postgres
  clients:
    description: One entry per client service.
    type: list
    elements: dict
    required: true
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
        description: The role's own database; lower-case letters, digits and underscore. Defaults to O(clients[].name).
        type: str
      member_of:
        description:
          - Predefined roles the role is granted; only C(pg_monitor) (read-only statistics and settings,
            for the PostgreSQL exporter). A grant is never revoked by this module.
        type: list
        elements: str
        default: []
  timeout:
    description: Connect timeout in seconds (libpq rounds it to whole seconds, at least 1).
    type: float
    default: 5.0
notes:
  - Statements run in autocommit mode, one by one (C(CREATE DATABASE) cannot run in a
    transaction). A failure stops at the failing statement and names it; running the task
    again completes what is left.
seealso:
  - module: aiops.mlstack.postgres_check
"""

EXAMPLES = r"""
- name: Ensure a role and a database per service
  aiops.mlstack.postgres_provision:
    host: 172.18.0.3
    admin_password: "{{ __postgresql_secrets.secrets.admin }}"
    clients:
      - name: learning
        password: "{{ __postgresql_secrets.secrets.learning }}"
      - name: sequential_thinking
        password: "{{ __postgresql_secrets.secrets.sequential_thinking }}"
        database: thoughts
  register: __postgresql_provision
"""

RETURN = r"""
changes:
  description:
    - What was changed (or would be, in check mode), one sentence per statement; no secret.
    - On failure, the statements that had run before the failing one.
  returned: always
  type: list
  elements: str
  sample:
    - create role learning (LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS, SCRAM-SHA-256 password)
    - create database learning owned by learning
    - revoke CONNECT, TEMPORARY on database learning from PUBLIC
    - grant CONNECT on database learning to learning
diff:
  description: Managed roles and databases before and after; returned in diff mode.
  returned: when diff mode is on
  type: dict
  contains:
    before:
      description: C(roles) (C(name), C(attributes), C(verifier), C(verifier_matches)), C(databases)
        (C(name), C(owner), C(public_connect), C(public_temporary), C(owner_connect)) as found; with
        O(admin_password_previous) also C(admin) (C(name), C(verifier_matches)).
      type: dict
    after:
      description: The same, as the module leaves them.
      type: dict
  sample:
    before: {"roles": [], "databases": []}
    after:
      roles:
        - {"name": "learning", "attributes": "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
           "verifier": "scram-sha-256", "verifier_matches": true}
      databases:
        - {"name": "learning", "owner": "learning", "public_connect": false, "public_temporary": false,
           "owner_connect": true}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.aiops.mlstack.plugins.module_utils._postgres import (
    HAS_PSYCOPG,
    PSYCOPG_IMPORT_ERROR,
    services_from_params,
    validate_services,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._postgres_provision import ProvisionError, provision


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "localhost"},
            "port": {"type": "int", "default": 5432},
            "admin_user": {"type": "str", "default": "postgres"},
            "admin_password": {"type": "str", "required": True, "no_log": True},
            "admin_password_previous": {"type": "str", "no_log": True},
            "admin_database": {"type": "str", "default": "postgres"},
            "clients": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "password": {"type": "str", "required": True, "no_log": True},
                    "database": {"type": "str"},
                    "member_of": {"type": "list", "elements": "str", "default": []},
                },
            },
            "timeout": {"type": "float", "default": 5.0},
        },
        supports_check_mode=True,
    )
    if not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib("psycopg"), exception=PSYCOPG_IMPORT_ERROR)
    p = module.params
    errors = validate_services(p["clients"], "clients")
    if errors:
        module.fail_json(msg="; ".join(errors))
    try:
        result = provision(
            p["host"],
            p["port"],
            p["admin_user"],
            p["admin_password"],
            p["admin_database"],
            services_from_params(p["clients"]),
            p["timeout"],
            check_mode=module.check_mode,
            admin_password_previous=p["admin_password_previous"],
        )
    except ProvisionError as exc:
        module.fail_json(msg=str(exc), changed=bool(exc.changes), changes=exc.changes)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
