# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Docker network present as declared: answered from the controller's process when it already is.

Every phase5 run asks for the stack's networks; as community.docker.docker_network each ask is
a module start (0.6-0.7 s on two cores) that finds the network as it should be. Locally this
action inspects the network in-process and stops there when it matches; a network to create or
change, or any other connection, goes to community.docker.docker_network with the same
arguments, so its behaviour (creation, check mode, diff, recreation) is the module's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.action.container import runs_here
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import DockerEngine, DockerException
from ansible_collections.aiops.mlstack.plugins.plugin_utils._action import arguments, execute_module

MODULE = "community.docker.docker_network"
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "internal": {"type": "bool", "default": False},
    "labels": {"type": "dict", "default": {}},
    "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"},
}


def matches(inspect: Mapping[str, Any] | None, internal: bool, labels: Mapping[str, Any]) -> bool:
    """Whether the network exists as the module would leave it: a bridge, internal or not as
    asked, with every asked label (others, such as Compose's, are left alone)."""
    if not inspect:
        return False
    present = inspect.get("Labels") or {}
    return (inspect.get("Driver") == "bridge" and bool(inspect.get("Internal")) == internal
            and all(present.get(key) == str(value) for key, value in labels.items()))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        params, failure = arguments(self, result, ARGUMENT_SPEC)
        if failure:
            return failure
        if runs_here(self):
            try:
                inspect = DockerEngine(params["docker_host"]).api.inspect_network(params["name"])
            except DockerException:
                inspect = None  # absent (NotFound) or unreadable: the module says which
            if matches(inspect, params["internal"], params["labels"]):
                return {**result, "changed": False, "network": inspect}
        args = {key: value for key, value in self._task.args.items() if value is not None}
        return {**result, **execute_module(self, MODULE, args, task_vars)}
