# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content hash of a build recipe: the image tag changes exactly when the recipe does."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

_BUILD_LEFTOVERS = ("__pycache__", "build", "dist")


def _ignored(relative: Path, maven: bool = False) -> bool:
    """Caches, local environments, pip's build leftovers and the injected CA are not part of a recipe.

    Neither is a Maven recipe's lib/: the jars are fetched from its pom.xml, which is hashed.
    """
    hidden = any(part.startswith(".") or part in _BUILD_LEFTOVERS or part.endswith(".egg-info")
                 for part in relative.parts)
    fetched = maven and relative.parts[0] == "lib"
    return hidden or fetched or relative.name == "host-ca.crt"


def tree_hash(path: str, length: int = 12) -> str:
    """sha256 over every file's relative path and bytes, in sorted order."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"build recipe directory {path} does not exist")
    maven = (root / "pom.xml").is_file()
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and not _ignored(p.relative_to(root), maven)):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:length]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"tree_hash": tree_hash}
