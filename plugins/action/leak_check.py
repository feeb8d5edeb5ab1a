# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: the generated secrets and the run's logs and bundles are all on the controller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record
from ansible_collections.aiops.mlstack.plugins.plugin_utils import _security

MAX_BYTES = 20 * 1024 * 1024


def _texts(paths: list[str]) -> dict[str, str]:
    """Every file under the given files and directories (symlinks not followed), up to MAX_BYTES each."""
    out: dict[str, str] = {}
    for raw in paths:
        root = Path(raw).expanduser()
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for path in files:
            with path.open("rb") as handle:
                out[str(path)] = handle.read(MAX_BYTES).decode("utf-8", "replace")
    return out


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "paths", "unit", "fail_on_error", "tokens"))
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        if not args.get("dir") or not args.get("paths"):
            return {**result, "failed": True, "msg": "aiops.mlstack.leak_check: 'dir' and 'paths' are required"}
        secrets = _security.secret_values(Path(str(args["dir"])).expanduser())
        texts = _texts([str(p) for p in args["paths"]])
        tokens = boolean(args.get("tokens", True), strict=False)
        found = _security.leaks(secrets, texts, tokens=tokens)
        ok = not found
        message = (f"none of {len(secrets)} generated secret(s) in {len(texts)} file(s)" if ok
                   else f"generated secrets found in {len(found)} file(s): {found}")
        rec = record(str(args.get("unit") or "security"), "secrets_not_leaked", ok,
                     {"generated_files": len(secrets), "files_searched": len(texts), "found_in": found,
                      "searched": [str(p) for p in args["paths"]], "signed_jwts_searched": tokens}, message)
        return {**result, "changed": False, "evidence": rec, "msg": message,
                "failed": not ok and bool(args.get("fail_on_error", True))}
