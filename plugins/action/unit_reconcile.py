# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One reconcile step per unit: its images, files, secrets, JWT keys and container in one task.

A unit's deploy was about ten tasks, each with its own templating, worker and, for the file
tasks, a module start: on two cores that overhead, not Docker, was most of a no-op phase5
(docs/performance.md). The steps are the same code the single-purpose plugins run: the image
supply (plugin_utils/_image_supply.py), the secret store, the JWT key set and the container
task (module_utils/_container_task.py); on a local connection all of it runs in this process,
elsewhere the files and the container go through their actions and module on the target.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.action.container import runs_here
from ansible_collections.aiops.mlstack.plugins.action.image import ARGUMENT_SPEC as IMAGE_SPEC
from ansible_collections.aiops.mlstack.plugins.action.image import TargetHost
from ansible_collections.aiops.mlstack.plugins.module_utils import _unit_files as files
from ansible_collections.aiops.mlstack.plugins.module_utils._container_task import (
    ARGUMENT_SPEC as CONTAINER_SPEC,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._container_task import (
    REQUIRED_IF,
    task_result,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import DockerEngine, DockerException
from ansible_collections.aiops.mlstack.plugins.plugin_utils._action import (
    arguments,
    execute_module,
    run_action,
    validated,
)
from ansible_collections.aiops.mlstack.plugins.plugin_utils._image_supply import Request, SupplyError, supply
from ansible_collections.aiops.mlstack.plugins.plugin_utils._jwt import present_bundle
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError, unit_secret_files
from ansible_collections.aiops.mlstack.plugins.plugin_utils._vault import vault_of

# The images a unit may name, and where each one's reference goes in the container task.
IMAGES = ("image", "port_holder_image")
IMAGE_REQUEST = {"source": IMAGE_SPEC["source"], "pull_ref": IMAGE_SPEC["pull_ref"], "recipe": IMAGE_SPEC["recipe"]}
PATH_SPEC = {"path": {"type": "str", "required": True}, "owner": {"type": "raw", "required": True},
             "group": {"type": "raw"}, "mode": {"type": "str"}}

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "unit": {"type": "str", "required": True},
    "docker_host": IMAGE_SPEC["docker_host"],
    "images": {"type": "dict", "default": {}, "options": {
        name: {"type": "dict", "options": IMAGE_REQUEST} for name in IMAGES}},
    "image_settings": {"type": "dict", "default": {}, "options": {
        key: IMAGE_SPEC[key] for key in ("recipes_dir", "base_image", "build_dir", "host_ca", "build_timeout")}},
    "directories": {"type": "list", "elements": "dict", "default": [], "options": PATH_SPEC},
    "files": {"type": "list", "elements": "dict", "default": [], "no_log": True, "options": {
        **PATH_SPEC, "content": {"type": "str", "default": ""}, "secret": {"type": "bool", "default": False}}},
    "secret_files": {"type": "dict", "options": {
        "dir": {"type": "str", "required": True}, "secrets_dir": {"type": "path", "required": True},
        "entries": {"type": "dict", "default": {}},
        "rotation_files": {"type": "list", "elements": "str", "default": []},
        "owner": {"type": "raw", "required": True}, "group": {"type": "raw"},
        "mode": {"type": "str", "default": "0400"}}},
    "jwt_public_key": {"type": "dict", "options": {
        "dest": {"type": "str", "required": True}, "secrets_dir": {"type": "path", "required": True},
        "vault_password_file": {"type": "path"},
        "owner": {"type": "raw", "required": True}, "group": {"type": "raw"},
        "mode": {"type": "str", "default": "0444"}}},
    # Without it, the images and files only: the publish step of the rotation playbooks.
    "container": {"type": "dict"},
    "prune": {"type": "dict", "options": {
        "dir": {"type": "str", "required": True}, "pattern": {"type": "str", "default": "config-*"},
        "containers": {"type": "list", "elements": "str", "required": True},
        "keep": {"type": "list", "elements": "str", "default": []}}},
}


class Failed(Exception):
    """A step failed; nothing after it ran."""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        params, failure = arguments(self, result, ARGUMENT_SPEC)
        if failure:
            return failure
        task_vars = task_vars or {}
        steps: dict[str, Any] = {}
        try:
            images = self._images(params, task_vars)
            steps["images"] = images
            changes = self._files(params, task_vars)
            steps["files"] = [change.path for change in changes]
            container = self._container(params, images, task_vars) if params["container"] else {}
            if not container.get("failed"):
                steps["pruned"] = self._prune(params, task_vars)
        except Failed as exc:
            return {**result, "failed": True, "msg": f"unit {params['unit']}: {exc}", "steps": steps}
        except DockerException as exc:
            return {**result, "failed": True, "msg": f"unit {params['unit']}: prune: {exc}", "steps": steps}
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        changed = (bool(container.get("changed")) or bool(changes) or bool(steps.get("pruned"))
                   or any(i["changed"] for i in images.values()))
        if params["container"]:
            steps["container"] = {"changed": bool(container.get("changed")), "reason": container.get("reason")}
        outcome = {**result, **container, "changed": changed, "steps": steps}
        if self._play_context.diff and changes:
            outcome["diff"] = files.diff_of(changes) + _as_list(container.get("diff"))
        return outcome

    def _images(self, params: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Each named image present on the Docker host, by its content hash when built."""
        if not any(params["images"].values()):
            return {}
        settings = {**{k: IMAGE_SPEC[k]["default"] for k in params["image_settings"]},
                    **{k: v for k, v in params["image_settings"].items() if v is not None},
                    "docker_host": params["docker_host"]}
        host = TargetHost(self, settings, task_vars)
        supplied = {}
        for name, want in params["images"].items():
            if not want:
                continue
            request = Request(unit=params["unit"], source=want["source"], pull_ref=want["pull_ref"],
                              recipe=want["recipe"], recipes_dir=settings["recipes_dir"],
                              build_dir=settings["build_dir"], build_timeout=float(settings["build_timeout"]))
            try:
                done = supply(request, host, bool(self._task.check_mode))
            except (SupplyError, ValueError, DockerException) as exc:
                raise Failed(f"{name}: {exc}") from exc
            supplied[name] = {"ref": done.ref, "image_id": done.image_id, "operation": done.operation,
                              "changed": done.changed}
        return supplied

    def _files(self, params: dict[str, Any], task_vars: dict[str, Any]) -> list[files.Change]:
        """The unit's directories, its given files, its secret files and its JWT public keys."""
        check = bool(self._task.check_mode)
        try:
            wants = files.wants_of(params["directories"], params["files"])
            wants += self._secret_wants(params["secret_files"], check)
            wants += self._jwt_wants(params["jwt_public_key"], check)
            if runs_here(self):
                return files.apply_local(wants, check)
            done = execute_module(self, "aiops.mlstack.unit_files", files.as_args(wants), task_vars)
            if done.get("failed"):
                raise files.FilesError(str(done.get("msg") or "unit_files failed"))
            return [files.change_of(entry) for entry in done.get("changes") or []]
        except (files.FilesError, SecretError, OSError) as exc:
            raise Failed(f"files: {exc}") from exc

    @staticmethod
    def _secret_wants(spec: dict[str, Any] | None, check: bool) -> list[files.Want]:
        if not spec:
            return []
        contents = unit_secret_files(Path(spec["secrets_dir"]), spec["entries"], spec["rotation_files"], check)
        return files.wants_of([], [{"path": f"{spec['dir']}/{key}", "content": content, "owner": spec["owner"],
                                    "group": spec["group"] or spec["owner"], "mode": spec["mode"], "secret": True}
                                   for key, content in contents.items()])

    @staticmethod
    def _jwt_wants(spec: dict[str, Any] | None, check: bool) -> list[files.Want]:
        if not spec:
            return []
        public = present_bundle(Path(spec["secrets_dir"]), check, vault_of(spec["vault_password_file"]))
        return files.wants_of([], [{"path": spec["dest"], "content": public, "owner": spec["owner"],
                                    "group": spec["group"] or spec["owner"], "mode": spec["mode"]}])

    def _container(self, params: dict[str, Any], images: dict[str, dict[str, Any]],
                   task_vars: dict[str, Any]) -> dict[str, Any]:
        """The container task with the supplied images' references filled in."""
        args = {**params["container"], "unit": params["unit"], "docker_host": params["docker_host"]}
        if "image" in images:
            args["spec"] = {**args.get("spec", {}), "image": images["image"]["ref"]}
        if "port_holder_image" in images:
            args["port_holder_image"] = images["port_holder_image"]["ref"]
        if not runs_here(self):
            return self._execute_module(module_name="aiops.mlstack.container", module_args=args, task_vars=task_vars)
        container, error = validated(args, CONTAINER_SPEC, required_if=REQUIRED_IF)
        if error:
            raise Failed(f"container: {error}")
        outcome = task_result(lambda: DockerEngine(container["docker_host"]), container,
                              bool(self._play_context.check_mode), bool(self._play_context.diff), (DockerException,))
        for warning in outcome.pop("warnings", []):
            self._display.warning(warning)
        return outcome

    def _prune(self, params: dict[str, Any], task_vars: dict[str, Any]) -> list[str]:
        """Remove the content-addressed directories that neither the serving container nor its
        kept predecessor mounts (a rollback starts the latter on the directory it was healthy with)."""
        spec = params["prune"]
        if not spec:
            return []
        if runs_here(self):
            engine = DockerEngine(params["docker_host"])
            mounted = [mount.get("Source", "") for name in spec["containers"]
                       for mount in (engine.inspect(name) or {}).get("Mounts") or []]
            doomed = files.stale(files.local_dirs(spec["dir"], spec["pattern"]), mounted, spec["keep"])
            if not self._task.check_mode:
                for path in doomed:
                    shutil.rmtree(path)
            return doomed
        mounted = []
        for name in spec["containers"]:
            info = self._module("community.docker.docker_container_info",
                                {"name": name, "docker_host": params["docker_host"]}, task_vars)
            mounted += [mount.get("Source", "") for mount in (info.get("container") or {}).get("Mounts") or []]
        found = self._module("ansible.legacy.find", {"paths": spec["dir"], "patterns": spec["pattern"],
                                                     "file_type": "directory"}, task_vars)
        doomed = files.stale([entry["path"] for entry in found.get("files", [])], mounted, spec["keep"])
        for path in doomed:
            done = run_action(self, "ansible.legacy.file", {"path": path, "state": "absent"}, task_vars)
            if done.get("failed"):
                raise Failed(f"prune: {path}: {done.get('msg') or 'failed'}")
        return doomed

    def _module(self, name: str, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        done = execute_module(self, name, args, task_vars)
        if done.get("failed"):
            raise Failed(f"prune: {name}: {done.get('msg') or 'failed'}")
        return done


def _as_list(diff: Any) -> list[Any]:
    if not diff:
        return []
    return diff if isinstance(diff, list) else [diff]
