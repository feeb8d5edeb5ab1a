#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: daemon_config
short_description: Merge settings into Docker's daemon.json without touching keys it does not own
version_added: 0.1.0
description:
  - Deep-merges O(settings) into the Docker daemon configuration file and writes it back atomically
    with sorted keys and an indent of 2.
  - Keys of the file that O(settings) does not name are kept. Nested objects such as C(runtimes) and
    C(log-opts) are merged key by key; any other value named in O(settings), lists included, replaces
    the current value as a whole. No key is ever removed.
  - A file that is not a JSON object is never overwritten; the module fails and names the file and the
    JSON error.
  - A missing file is not created when the merged configuration would be empty.
  - With O(unit_files), fails before writing when the merged configuration sets C(hosts) while the
    effective systemd C(ExecStart) of Docker passes C(-H) or C(--host) (dockerd would refuse to start).
  - The module does not restart Docker; act on its C(changed) result, for example with a handler.
author:
  - mlstack maintainers (@aiops)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
options:
  path:
    description:
      - Path of the daemon configuration file. Its directory is created (mode 0755) when missing.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - The settings this play owns, as they appear in daemon.json.
    type: dict
    required: true
  backup:
    description:
      - Keep a timestamped copy of the previous file next to it before changing it.
    type: bool
    default: true
  unit_files:
    description:
      - Systemd unit files of the Docker service in the order systemd reads them (the unit, then its
        drop-ins). Shell globs are expanded and sorted; paths that do not exist are skipped.
      - Used only to detect a C(hosts) setting that clashes with C(-H) in C(ExecStart). Empty skips the check.
    type: list
    elements: path
    default: []
notes:
  - The file is written with mode 0644.
seealso:
  - name: Docker daemon configuration file
    description: The keys daemon.json accepts.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
"""

EXAMPLES = r"""
- name: Register the NVIDIA runtime without dropping anyone else's settings
  aiops.mlstack.daemon_config:
    settings:
      runtimes:
        nvidia:
          path: nvidia-container-runtime
          runtimeArgs: []
      log-driver: json-file
      log-opts:
        max-size: 10m
    unit_files:
      - /lib/systemd/system/docker.service
      - /etc/systemd/system/docker.service
      - /etc/systemd/system/docker.service.d/*.conf
  register: daemon_json
  notify: Restart docker

- name: Try a merge on a scratch copy
  aiops.mlstack.daemon_config:
    path: /tmp/daemon.json
    settings:
      features:
        buildkit: true
    backup: false
  register: scratch
"""

RETURN = r"""
changed_keys:
  description: Dotted paths of the keys whose value the merge added or changed, sorted.
  returned: always
  type: list
  elements: str
  sample: ["log-opts.max-size", "runtimes.nvidia"]
config:
  description: The merged configuration, as written (or as it would be written in check mode).
  returned: always
  type: dict
  sample: {"log-driver": "json-file", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
path:
  description: The path of the daemon configuration file.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
backup_file:
  description: The copy of the previous file made before changing it.
  returned: when changed, O(backup) is true, the file existed and not in check mode
  type: str
  sample: /etc/docker/daemon.json.12345.2024-01-01@00:00:00~
diff:
  description: The file text before and after, for C(--diff).
  returned: always
  type: dict
  contains:
    before:
      description: The previous text of the file, empty when it did not exist.
      type: str
      returned: always
    after:
      description: The text written (or that would be written).
      type: str
      returned: always
  sample: {"before": "{}\n", "after": "{\n  \"debug\": true\n}\n"}
"""

import glob
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiops.mlstack.plugins.module_utils._daemon_json import hosts_conflict, plan


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _unit_texts(patterns: list[str]) -> list[str]:
    texts = []
    for pattern in patterns:
        for unit in sorted(glob.glob(pattern)):
            text = _read(unit)
            if text is not None:
                texts.append(text)
    return texts


def _write(module: AnsibleModule, path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
    fd, tmp = tempfile.mkstemp(prefix=".daemon.json.", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    module.atomic_move(tmp, path)
    os.chmod(path, 0o644)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/docker/daemon.json"},
            "settings": {"type": "dict", "required": True},
            "backup": {"type": "bool", "default": True},
            "unit_files": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        current_text = _read(path)
        result = plan(current_text, module.params["settings"], path)
    except (OSError, ValueError) as exc:
        module.fail_json(msg=str(exc), path=path)

    clash = hosts_conflict(result["config"], _unit_texts(module.params["unit_files"]))
    if clash:
        module.fail_json(msg=f"{path}: {clash}", path=path)

    response = {
        "changed": result["changed"],
        "changed_keys": result["changed_keys"],
        "config": result["config"],
        "path": path,
        "diff": {"before": result["before"], "after": result["after"]},
    }
    if result["changed"] and not module.check_mode:
        if module.params["backup"] and current_text is not None:
            response["backup_file"] = module.backup_local(path)
        try:
            _write(module, path, result["write"])
        except OSError as exc:
            module.fail_json(msg=f"could not write {path}: {exc}", path=path)
    module.exit_json(**response)


if __name__ == "__main__":
    main()
