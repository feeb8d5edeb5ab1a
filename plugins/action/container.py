# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the container task in the controller's own process when the unit's tasks run locally.

A module costs a Python start and its packaging per unit and task, about 0.3 s on 2 cores,
more when every unit starts at once under strategy free; the controller already has the
Docker SDK and reaches a local engine (or a remote one through the Docker API's ssh://
transport) itself. Any other connection runs the module on the target as usual. Both paths
run the same code (module_utils/_container_task.py).
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.module_utils._container_task import (
    ARGUMENT_SPEC,
    REQUIRED_IF,
    task_result,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import (
    HAS_DOCKER,
    DockerEngine,
    DockerException,
)
from ansible_collections.aiops.mlstack.plugins.plugin_utils._action import execute_module, validated


def runs_here(action: ActionBase) -> bool:
    """In-process only where the module itself would run on this machine, with the SDK at hand."""
    return HAS_DOCKER and action._connection.transport in ("local", "ansible.builtin.local")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        if not runs_here(self):
            return {**result, **self._execute_module(module_name="aiops.mlstack.container",
                                                     module_args=self._task.args, task_vars=task_vars)}
        params, error = validated(self._task.args, ARGUMENT_SPEC, required_if=REQUIRED_IF)
        if error:
            return {**result, "failed": True, "msg": error}
        outcome = task_result(lambda: DockerEngine(params["docker_host"]), params, bool(self._play_context.check_mode),
                              bool(self._play_context.diff), (DockerException,))
        for warning in outcome.pop("warnings", []):
            self._display.warning(warning)
        return {**result, **outcome}


class InspectAction(ActionBase):
    """An info task answered from the controller's process when local, by ``FALLBACK`` elsewhere."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("name", "docker_host"))
    FALLBACK = ""

    def answer(self, engine: DockerEngine, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        if not self._task.args.get("name"):
            return {**result, "failed": True, "msg": f"{self._task.action}: 'name' is required"}
        if not runs_here(self):
            return {**result, **execute_module(self, self.FALLBACK, self._task.args, task_vars)}
        try:
            engine = DockerEngine(str(self._task.args.get("docker_host") or "unix:///var/run/docker.sock"))
            return {**result, "changed": False, **self.answer(engine, str(self._task.args["name"]))}
        except DockerException as exc:
            return {**result, "failed": True, "msg": f"{self._task.action}: {exc}"}
