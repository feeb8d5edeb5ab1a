# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Supplies one unit's image and returns its reference: the decisions in plugin_utils/_image_supply.py.

The recipe's content hash is taken here on the controller, where the recipes are. On the
Docker host, presence is asked from the controller's process when the task runs locally (as
image_info does: the warm run starts no module); pulls, the build lock and builds run as
modules on the target, so a remote Docker host works the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.action.container import runs_here
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import DockerEngine, DockerException
from ansible_collections.aiops.mlstack.plugins.plugin_utils._action import execute_module, run_action, validated
from ansible_collections.aiops.mlstack.plugins.plugin_utils._image_supply import (
    SOURCES,
    Request,
    SupplyError,
    supply,
)

# The collection's own recipes: images/ beside plugins/.
RECIPES_DIR = str(Path(__file__).resolve().parents[2] / "images")

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "source": {"type": "str", "default": "auto", "choices": list(SOURCES)},
    "pull_ref": {"type": "str", "default": ""},
    "recipe": {"type": "str", "default": ""},
    "recipes_dir": {"type": "path", "default": RECIPES_DIR},
    "base_image": {"type": "str", "default": "local/debian:bookworm"},
    "build_dir": {"type": "path", "default": "/var/lib/mlstack/build"},
    "host_ca": {"type": "path", "default": "/etc/ssl/certs/ca-certificates.crt"},
    "build_timeout": {"type": "int", "default": 1800},
    "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"},
}


class TargetHost:
    """The ``Host`` seam of the supply, on the task's target (the Docker host)."""

    def __init__(self, action: ActionModule, params: dict[str, Any], task_vars: dict[str, Any]) -> None:
        self.action = action
        self.params = params
        self.task_vars = task_vars
        self.engine = DockerEngine(params["docker_host"]) if runs_here(action) else None
        self.build_dir_made = False

    def module(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return execute_module(self.action, name, args, self.task_vars)

    def image_id(self, ref: str) -> str | None:
        if self.engine is not None:
            return self.engine.image_id(ref)
        images = self.module("community.docker.docker_image_info",
                             {"name": ref, "docker_host": self.params["docker_host"]}).get("images") or []
        return images[0]["Id"] if images else None

    def pull(self, ref: str) -> str | None:
        done = self.module("community.docker.docker_image_pull",
                           {"name": ref, "pull": "not_present", "docker_host": self.params["docker_host"]})
        return str(done.get("msg") or "unknown error") if done.get("failed") else None

    def claim(self, lock: str) -> bool:
        if not self.build_dir_made:
            self.checked("ansible.legacy.file", {"path": self.params["build_dir"], "state": "directory",
                                                 "mode": "0755"})
            self.build_dir_made = True
        # An atomic mkdir: the file module has no exclusive create.
        return self.module("ansible.legacy.command", {"argv": ["mkdir", lock]}).get("rc") == 0

    def release(self, lock: str) -> None:
        self.checked("ansible.legacy.file", {"path": lock, "state": "absent"})

    def build(self, recipe: str, ref: str) -> None:
        """The recipe plus the Docker host's CA bundle (so pip in a build trusts what the host
        trusts), with a pom.xml's jars fetched by the host's Maven, built on the base image."""
        source, context = f"{self.params['recipes_dir']}/{recipe}", f"{self.params['build_dir']}/{recipe}"
        self.copy({"src": f"{source}/", "dest": f"{context}/", "mode": "preserve", "directory_mode": "0755"})
        if Path(source, "pom.xml").is_file():
            self.checked("ansible.legacy.command", {"argv": [
                "mvn", "-q", "-B", "-f", f"{context}/pom.xml", "dependency:copy-dependencies",
                f"-DoutputDirectory={context}/lib", "-DincludeScope=runtime"]})
        ca = self.params["host_ca"]
        if self.checked("ansible.legacy.stat", {"path": ca}).get("stat", {}).get("exists"):
            self.copy({"src": ca, "remote_src": True, "dest": f"{context}/host-ca.crt", "mode": "0644"})
        else:
            self.copy({"content": "", "dest": f"{context}/host-ca.crt", "mode": "0644"})
        timeout = self.params["build_timeout"]
        # docker_image (legacy builder API), not docker_image_build: that one needs buildx.
        self.checked("community.docker.docker_image", {
            "name": ref, "source": "build", "docker_host": self.params["docker_host"], "timeout": timeout,
            "build": {"path": context, "args": {"BASE_IMAGE": self.params["base_image"]}, "rm": True,
                      "http_timeout": timeout}})

    def notice(self, message: str) -> None:
        self.action._display.display(message)

    def checked(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        done = self.module(name, args)
        if done.get("failed"):
            raise SupplyError(f"{name} {args.get('path') or args.get('name') or args.get('argv')}: "
                              f"{done.get('msg') or done.get('stderr') or 'failed'}")
        return done

    def copy(self, args: dict[str, Any]) -> None:
        """The copy action: it transfers the controller's files."""
        done = run_action(self.action, "ansible.legacy.copy", args, self.task_vars)
        if done.get("failed"):
            raise SupplyError(f"copy to {args['dest']}: {done.get('msg') or 'failed'}")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        params, error = validated(self._task.args, ARGUMENT_SPEC)
        if error:
            return {**result, "failed": True, "msg": error}
        unit = str((task_vars or {}).get("inventory_hostname", "?"))
        try:
            request = Request(unit=unit, source=params["source"], pull_ref=params["pull_ref"], recipe=params["recipe"],
                              recipes_dir=params["recipes_dir"],
                              build_dir=params["build_dir"], build_timeout=float(params["build_timeout"]))
            host = TargetHost(self, params, task_vars or {})
            outcome = supply(request, host, bool(self._task.check_mode))
        except (SupplyError, ValueError, DockerException) as exc:
            return {**result, "failed": True, "msg": f"aiops.mlstack.image: {exc}"}
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return {**result, "changed": outcome.changed, "ref": outcome.ref, "image_id": outcome.image_id,
                "operation": outcome.operation}
