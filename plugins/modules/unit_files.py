#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: unit_files
short_description: A unit's runtime directories and files on its Docker host, in one module run
version_added: 0.2.0
description:
  - Creates each directory and writes each file with its owner, group and mode; a file is written
    to a temporary file beside it (owned and moded first) and renamed, so a reader never sees it
    half-written or too open. A path already as wanted is left alone.
  - Run by M(aiops.mlstack.unit_reconcile) when a unit's tasks do not run on the controller; a
    C(file) or C(copy) task per path cost a module start and a transfer each over SSH.
  - The content of a secret file is never returned; its diff shows that it changed, not its content.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  wants:
    description:
      - The paths, directories before the files in them, each with C(path) (absolute), C(owner) and
        C(group) (numeric ids), C(mode) (octal string), C(content) (absent or null for a directory)
        and C(secret).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: str
        required: true
      owner:
        description: Numeric uid.
        type: int
        required: true
      group:
        description: Numeric gid.
        type: int
        required: true
      mode:
        description: Octal mode, such as C(0400).
        type: str
        required: true
      content:
        description: The file's content; null for a directory and for a secret file (see O(secret_contents)).
        type: str
      secret:
        description: Whether the content is a secret, given in O(secret_contents) and hidden from the output
          and the diff.
        type: bool
        default: false
  secret_contents:
    description: The content of each secret file, by its path. Never logged (C(no_log)), on the target either.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: The runtime directory and the password file of a unit
  aiops.mlstack.unit_files:
    wants:
      - {path: /var/lib/mlstack/runtime/chat/secrets, owner: 10001, group: 10001, mode: "0700"}
      - {path: /var/lib/mlstack/runtime/chat/secrets/redis_password, owner: 10001, group: 10001,
         mode: "0400", secret: true}
    secret_contents:
      /var/lib/mlstack/runtime/chat/secrets/redis_password: "{{ chat_redis_password }}"
"""

RETURN = r"""
changes:
  description: Each path that changed (would change, in check mode) - C(path), C(what) (C(created),
    C(content), C(mode 0644 -> 0400), C(owner 0:0 -> 10001:10001)), C(before) and C(after) as diff text
    (a secret's content hidden).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aiops.mlstack.plugins.module_utils import _unit_files as files  # noqa: E402

WANT_SPEC = {
    "path": {"type": "str", "required": True},
    "owner": {"type": "int", "required": True},
    "group": {"type": "int", "required": True},
    "mode": {"type": "str", "required": True},
    "content": {"type": "str"},
    "secret": {"type": "bool", "default": False},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={"wants": {"type": "list", "elements": "dict", "required": True, "options": WANT_SPEC},
                       "secret_contents": {"type": "dict", "default": {}, "no_log": True}},
        supports_check_mode=True,
    )
    try:
        wants = files.from_args(module.params["wants"], module.params["secret_contents"])
        changes = files.apply_local(wants, module.check_mode)
    except (files.FilesError, OSError) as exc:
        module.fail_json(msg=str(exc))
    rows = [{"path": c.path, "what": list(c.what), "before": c.before, "after": c.after} for c in changes]
    result = {"changed": bool(rows), "changes": rows}
    if module._diff and rows:
        result["diff"] = files.diff_of(changes)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
