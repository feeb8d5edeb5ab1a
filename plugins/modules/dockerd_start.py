#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dockerd_start
short_description: Start or restart a detached dockerd on a host without an init system
version_added: 0.1.0
description:
  - For hosts where no init system runs Docker (containers, CI machines). Where systemd is PID 1,
    use M(ansible.builtin.systemd_service) instead.
  - With O(state=started), does nothing when the Docker API answers on O(docker_host). Otherwise starts
    C(dockerd) in its own session, appends its output to O(log_path) and waits until C(GET /_ping)
    answers, failing with the daemon's last log lines when it exits or does not answer in time.
  - With O(state=restarted), stops the dockerd whose pid is in O(pidfile) (only when that process is
    named C(dockerd)) with SIGTERM, waits for it to exit and starts it again. Its containers stop with
    it unless C(live-restore) is set. Run it only when the configuration changed, for example from a handler.
  - Flags that daemon.json already sets (C(hosts), C(storage-driver), C(pidfile)) are not passed on the
    command line, since dockerd refuses a directive given both ways.
author:
  - mlstack maintainers (@aiops)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
options:
  state:
    description:
      - V(started) starts dockerd when its API does not answer; V(restarted) always stops and starts it.
    type: str
    choices: [started, restarted]
    default: started
  docker_host:
    description:
      - The C(unix://) socket dockerd serves and the module probes.
    type: str
    default: unix:///var/run/docker.sock
  storage_driver:
    description:
      - Passed as C(--storage-driver) unless daemon.json sets C(storage-driver). Empty lets dockerd choose.
    type: str
    default: ""
  config_file:
    description:
      - The daemon configuration file dockerd reads; passed as C(--config-file) when not the default.
    type: path
    default: /etc/docker/daemon.json
  pidfile:
    description:
      - Where dockerd writes its pid; the pid of the daemon to stop on restart is read from here.
    type: path
    default: /var/run/docker.pid
  log_path:
    description:
      - File that receives the daemon's output (appended).
    type: path
    default: /var/log/dockerd.log
  timeout:
    description:
      - Seconds to wait for the API to answer after a start, and for the old daemon to exit on restart.
    type: int
    default: 60
  executable:
    description:
      - The dockerd binary; looked up on PATH and in the sbin directories by default.
    type: path
notes:
  - The module never sends SIGKILL; a daemon that does not stop in time is reported and left running.
"""

EXAMPLES = r"""
- name: Start the Docker engine when it is not answering
  aiops.mlstack.dockerd_start:
    storage_driver: overlay2
    timeout: 60
  register: dockerd

- name: Restart the engine because daemon.json changed
  aiops.mlstack.dockerd_start:
    state: restarted
    storage_driver: overlay2
  when: daemon_json is changed
"""

RETURN = r"""
action:
  description: What was done (or would be done in check mode).
  returned: always
  type: str
  choices: [none, start, restart]
  sample: start
pid:
  description: The pid of the running dockerd, when known (not after a predicted start in check mode).
  returned: always
  type: int
  sample: 3482
argv:
  description: The command line used (or that would be used) to start dockerd.
  returned: always
  type: list
  elements: str
  sample: ["/usr/sbin/dockerd", "--storage-driver=overlay2"]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiops.mlstack.plugins.module_utils._daemon_json import load
from ansible_collections.aiops.mlstack.plugins.module_utils._dockerd import (
    SBIN_PATH,
    DockerdError,
    build_argv,
    ensure,
    ping,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["started", "restarted"], "default": "started"},
            "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"},
            "storage_driver": {"type": "str", "default": ""},
            "config_file": {"type": "path", "default": "/etc/docker/daemon.json"},
            "pidfile": {"type": "path", "default": "/var/run/docker.pid"},
            "log_path": {"type": "path", "default": "/var/log/dockerd.log"},
            "timeout": {"type": "int", "default": 60},
            "executable": {"type": "path"},
        },
        supports_check_mode=True,
    )
    params = module.params
    executable = params["executable"] or module.get_bin_path("dockerd", opt_dirs=SBIN_PATH.split(":"))
    if executable is None:
        # An engine reached through its socket from another machine or container (an execution
        # environment's mounted socket): there is no dockerd here, and none to start while it answers.
        if params["state"] == "started" and ping(params["docker_host"]):
            module.exit_json(changed=False, pid=None, argv=[], action="none")
        module.fail_json(msg=f"no dockerd executable here (looked in PATH and {SBIN_PATH}) and the engine "
                             f"does not answer on {params['docker_host']}: install Docker or set executable")
    daemon_json = {}
    if os.path.exists(params["config_file"]):
        try:
            with open(params["config_file"], encoding="utf-8") as handle:
                daemon_json = load(handle.read(), params["config_file"])
        except (OSError, ValueError) as exc:
            module.fail_json(msg=str(exc))
    try:
        argv = build_argv(
            executable,
            host=params["docker_host"],
            storage_driver=params["storage_driver"],
            config_file=params["config_file"],
            pidfile=params["pidfile"],
            daemon_json=daemon_json,
        )
        result = ensure(
            params["state"],
            argv,
            host=params["docker_host"],
            pidfile=params["pidfile"],
            log_path=params["log_path"],
            timeout=params["timeout"],
            check_mode=module.check_mode,
        )
    except DockerdError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
