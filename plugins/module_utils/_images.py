# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which recipe images a Docker host no longer needs: decisions only, no I/O."""

from __future__ import annotations

from typing import Any


def superseded(images: list[dict[str, Any]], used_ids: set[str], prefix: str,
               keep_unused: int = 0) -> list[dict[str, Any]]:
    """Tags under ``prefix`` whose image no container uses, in any state, oldest first.

    ``images`` are the Engine API's image list entries (Id, RepoTags, Created, Size). An image
    that a container uses (serving, a kept ``_previous`` or a stopped degraded one) is never
    listed; of the unused ones the newest ``keep_unused`` per repository stay as well.
    """
    unused: dict[str, list[dict[str, Any]]] = {}
    for image in images:
        if image["Id"] in used_ids:
            continue
        for tag in image.get("RepoTags") or []:
            repository = tag.rpartition(":")[0]
            if repository.startswith(prefix):
                unused.setdefault(repository, []).append(
                    {"tag": tag, "id": image["Id"], "created": int(image.get("Created") or 0),
                     "size": int(image.get("Size") or 0)})
    doomed = []
    for entries in unused.values():
        entries.sort(key=lambda e: e["created"], reverse=True)
        doomed.extend(entries[keep_unused:])
    return sorted(doomed, key=lambda e: (e["created"], e["tag"]))
