# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every controller-side action does first: its arguments against its module's spec."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.aiops.mlstack.plugins.module_utils._engine_url import community_docker_args


def validated(args: dict[str, Any], spec: dict[str, Any], **rules: Any) -> tuple[dict[str, Any], str | None]:
    """(the validated parameters, None), or ({}, the validator's messages joined) on bad input."""
    validation = ArgumentSpecValidator(spec, **rules).validate(args)
    if validation.error_messages:
        return {}, "; ".join(validation.error_messages)
    return validation.validated_parameters, None


def arguments(action: Any, result: dict[str, Any], spec: dict[str, Any],
              **rules: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The task's arguments validated against ``spec``, or the failed result that names the
    action and the field (nothing has run yet)."""
    params, error = validated(action._task.args, spec, **rules)
    if error:
        return {}, {**result, "failed": True, "msg": f"{action._task.action}: {error}"}
    return params, None


def run_action(action: Any, name: str, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
    """Another action (``copy``, ``file``) run from inside ``action``'s task, as the template
    action runs copy: it transfers the controller's content and honours check mode and diff."""
    task = action._task.copy()
    task.args = args
    other = action._shared_loader_obj.action_loader.get(
        name, task=task, connection=action._connection, play_context=action._play_context,
        loader=action._loader, templar=action._templar, shared_loader_obj=action._shared_loader_obj)
    if other is None:
        # A module without an action plugin of its own (``file``): run it on the target directly.
        return dict(action._execute_module(module_name=name, module_args=args, task_vars=task_vars))
    return dict(other.run(task_vars=task_vars))


def execute_module(action: Any, name: str, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
    """``name`` run on the target; a community.docker module gets a TLS engine's files as its own options
    (the resolved unit's ``docker_url`` carries them in its query, which community.docker does not read)."""
    if name.startswith("community.docker."):
        args = community_docker_args(args)
    return dict(action._execute_module(module_name=name, module_args=args, task_vars=task_vars))
