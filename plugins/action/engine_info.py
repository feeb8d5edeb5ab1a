# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a Docker engine answers, and its ``docker info``, in the controller's process when local.

Every phase5 asks twice (before and after making sure the engine runs); as
community.docker.docker_host_info that is a module start each (about a second on two cores).
Elsewhere that module runs as usual, with the same result keys (host_info, can_talk_to_docker).
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.action.container import runs_here
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import DockerEngine, DockerException
from ansible_collections.aiops.mlstack.plugins.plugin_utils._action import arguments, execute_module

FALLBACK = "community.docker.docker_host_info"
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"},
    "timeout": {"type": "int", "default": 60},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        params, failure = arguments(self, result, ARGUMENT_SPEC)
        if failure:
            return failure
        if not runs_here(self):
            return {**result, **execute_module(self, FALLBACK, self._task.args, task_vars)}
        try:
            info = DockerEngine(params["docker_host"], timeout=params["timeout"]).api.info()
        except DockerException as exc:
            return {**result, "failed": True, "can_talk_to_docker": False,
                    "msg": f"Error connecting to the Docker engine at {params['docker_host']}: {exc}"}
        return {**result, "changed": False, "can_talk_to_docker": True, "host_info": info}
