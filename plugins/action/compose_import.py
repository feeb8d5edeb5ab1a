# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: the compose file, the catalog it becomes and the secrets store are all here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.plugin_utils._action import validated
from ansible_collections.aiops.mlstack.plugins.plugin_utils._compose_import import build_catalog, normalised, write
from ansible_collections.aiops.mlstack.plugins.plugin_utils._compose_map import ImportFailure
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import SecretError

ARGUMENT_SPEC = {
    "src": {"type": "path", "required": True},
    "dest": {"type": "path", "required": True},
    "project_directory": {"type": "path"},
    "allow_bind": {"type": "list", "elements": "path", "default": []},
    "profiles": {"type": "list", "elements": "str", "default": []},
    "secrets_dir": {"type": "path", "required": True},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        params, error = validated(self._task.args, ARGUMENT_SPEC)
        if error:
            return {**result, "failed": True, "msg": error}
        project_dir = Path(params["project_directory"]) if params["project_directory"] else None
        try:
            project = normalised(Path(params["src"]), project_dir, tuple(params["profiles"]))
            catalog = build_catalog(project, tuple(params["allow_bind"]))
            outcome = write(catalog, Path(params["dest"]), Path(params["secrets_dir"]),
                            check_mode=bool(self._task.check_mode))
        except (ImportFailure, SecretError) as exc:
            return {**result, "failed": True, "msg": f"import failed, nothing written: {exc}"}
        for line in outcome["report"]:
            if line["detail"].startswith("WARNING"):
                self._display.warning(f"{line['service']}: {line['key']}: {line['detail'].removeprefix('WARNING: ')}")
        return {**result, **outcome}
