#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_check
short_description: Prove that Redis answers, requires authentication and keeps each service user in its key prefix
version_added: 0.1.0
description:
  - Probes a Redis server and returns one evidence record per check, see RV(evidence).
  - C(connect) the admin user authenticates and C(PING) is answered; the connect latency and
    C(redis_version) (from C(INFO server)) are observed.
  - C(auth_required) a connection without credentials is refused (C(NOAUTH)).
  - C(wrong_password_rejected) the admin user with a wrong password gets C(WRONGPASS).
  - C(persistence) C(INFO persistence) read as the admin user reports C(aof_enabled=1)
    (C(CONFIG GET) is not used, an ACL may forbid it).
  - For each of O(users), C(own_prefix_access) C(SET), C(GET) and C(DEL) of
    C(<prefix>mlstack-check) work (a user whose O(users[].redis_acl) grants not all three, such
    as chat's C(conversations), is probed with C(EXISTS) of the key instead, which every service
    user may run), and C(foreign_prefix_denied) C(EXISTS) and C(SET) of the same
    key under the next user's prefix (a prefix that is nobody's, C(mlstack-foreign:), when
    there is only one user) are refused with C(NOPERM). C(risky_commands_denied) a script
    (C(EVAL "return 1" 0)), a blocking command (C(BLPOP) of its own probe key, 10 ms) and a
    subscription (C(SUBSCRIBE) to its own probe channel) are refused with C(NOPERM) for the
    command, except C(BLPOP) and C(SUBSCRIBE) where the user's O(users[].redis_acl) grants
    them (by name, or C(@blocking) / C(@pubsub)). The records carry C(observed.user).
  - No password ever appears in a record. Records hold no password field, and every password
    given is masked in the error texts that come back from the server.
  - The task fails when any record is not ok, unless O(fail_on_error=false).
author: mlstack maintainers (@aiops)
requirements:
  - redis (redis-py) >= 5.0 on the host that runs the module
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details:
      - The checks run in check mode too. They are read-only except for the probe key
        C(<prefix>mlstack-check) of each service user, which is written with a 60 s expiry and
        deleted at once; a foreign write that should have been refused but was not is deleted
        too. A script wrongly allowed only returns 1. The module never reports C(changed).
  diff_mode:
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  unit:
    description: Unit name written into every evidence record (the inventory host of the Redis unit).
    type: str
    required: true
  host:
    description: Host name or IP address of the Redis server.
    type: str
    default: localhost
  port:
    description: TCP port of the Redis server.
    type: int
    default: 6379
  admin_user:
    description: ACL user with C(+@all) used for C(connect), C(wrong_password_rejected) and C(persistence).
    type: str
    default: admin
  admin_password:
    description: Password of O(admin_user).
    type: str
    required: true
  users:
    description: Service users whose key-prefix isolation is proven.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: ACL user name; lower-case letters, digits and underscore.
        type: str
        required: true
      password:
        description: The user's password.
        type: str
        required: true
      prefix:
        description: Key prefix the user owns (its ACL C(~<prefix>*)). Defaults to C(<name>:).
        type: str
      redis_acl:
        description:
          - The service's C(mlstack_redis_acl), a profile name or a list of Redis commands and
            C(@categories) (unset, the C(keyvalue) profile). Decides whether C(BLPOP) and
            C(SUBSCRIBE) must be refused; C(EVAL) always must.
        type: raw
  timeout:
    description: Connect and read timeout of each connection, in seconds.
    type: float
    default: 5.0
  fail_on_error:
    description: Fail the task when any record is not ok. With V(false) the task succeeds and RV(ok) tells.
    type: bool
    default: true
notes:
  - Run it where the Redis port is reachable, for example on the Docker host of the Redis
    container (C(delegate_to)), with the container's address on the backend network.
seealso:
  - module: aiops.mlstack.postgres_check
"""

EXAMPLES = r"""
- name: Prove Redis authentication and per-service ACLs
  aiops.mlstack.redis_check:
    unit: redis
    host: 172.18.0.2
    admin_password: "{{ __redis_secrets.secrets.admin }}"
    users:
      - name: chat
        password: "{{ __redis_secrets.secrets.chat }}"
        prefix: "chat:"
        redis_acl: conversations
      - name: voice_interaction
        password: "{{ __redis_secrets.secrets.voice_interaction }}"
        redis_acl: [ping, exists, get, set]
  register: __redis_check

- name: Collect the evidence without failing the play
  aiops.mlstack.redis_check:
    unit: redis
    admin_password: "{{ redis_admin_password }}"
    fail_on_error: false
  register: __redis_probe
"""

RETURN = r"""
ok:
  description: True when every record is ok.
  returned: always
  type: bool
  sample: true
evidence:
  description:
    - One record per check in the order C(connect), C(auth_required), C(wrong_password_rejected),
      C(persistence), then C(own_prefix_access), C(foreign_prefix_denied) and
      C(risky_commands_denied) per user.
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
      sample: redis
    check:
      description: Name of the check.
      type: str
      sample: own_prefix_access
    ok:
      description: Whether the check passed.
      type: bool
    observed:
      description:
        - What was measured. C(connect) has C(user), C(host), C(port), C(latency_ms),
          C(redis_version); C(auth_required) C(refused); C(wrong_password_rejected) C(user),
          C(rejected); C(persistence) C(aof_enabled), C(aof_last_write_status);
          C(own_prefix_access) C(user), C(key), C(set), C(get_matches), C(deleted) (or C(exists));
          C(foreign_prefix_denied) C(user), C(foreign_prefix), C(read_denied), C(write_denied);
          C(risky_commands_denied) C(user), C(must_deny) (of C(script), C(blocking), C(pubsub)),
          C(script_denied), C(blocking_denied), C(pubsub_denied).
      type: dict
      sample: {"user": "chat", "key": "chat:mlstack-check", "set": true, "get_matches": true, "deleted": true}
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
  sample: "redis: 10 of 10 checks ok"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import finish
from ansible_collections.aiops.mlstack.plugins.module_utils._redis import (
    HAS_REDIS,
    REDIS_IMPORT_ERROR,
    users_from_params,
    validate_users,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._redis_checks import check_redis


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "host": {"type": "str", "default": "localhost"},
            "port": {"type": "int", "default": 6379},
            "admin_user": {"type": "str", "default": "admin"},
            "admin_password": {"type": "str", "required": True, "no_log": True},
            "users": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "password": {"type": "str", "required": True, "no_log": True},
                    "prefix": {"type": "str"},
                    "redis_acl": {"type": "raw"},
                },
            },
            "timeout": {"type": "float", "default": 5.0},
            "fail_on_error": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    if not HAS_REDIS:
        module.fail_json(msg=missing_required_lib("redis"), exception=REDIS_IMPORT_ERROR)
    p = module.params
    errors = validate_users(p["users"])
    if errors:
        module.fail_json(msg="; ".join(errors))
    evidence = check_redis(
        p["unit"],
        p["host"],
        p["port"],
        p["admin_user"],
        p["admin_password"],
        users_from_params(p["users"]),
        p["timeout"],
    )
    finish(module, p["unit"], evidence, p["fail_on_error"])


if __name__ == "__main__":
    main()
