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
    listed; of the unused ones the newest ``keep_unused`` per repository stay as well. So does a
    repository's newest image when it is newer than every image of it a container uses (or none
    is used): the image a run supplied for a unit whose container then failed (a first deploy
    that waited in vain on a lost host, a candidate rolled back), which the next run needs again
    - removing it would make that run build it anew, or fail where there is no registry.
    """
    unused: dict[str, list[dict[str, Any]]] = {}
    newest_used: dict[str, int] = {}
    for image in images:
        created = int(image.get("Created") or 0)
        for tag in image.get("RepoTags") or []:
            repository = tag.rpartition(":")[0]
            if not repository.startswith(prefix):
                continue
            if image["Id"] in used_ids:
                newest_used[repository] = max(created, newest_used.get(repository, created))
            else:
                unused.setdefault(repository, []).append(
                    {"tag": tag, "id": image["Id"], "created": created, "size": int(image.get("Size") or 0)})
    doomed = []
    for repository, entries in unused.items():
        entries.sort(key=lambda e: e["created"], reverse=True)
        pending = repository not in newest_used or entries[0]["created"] > newest_used[repository]
        doomed.extend(entries[max(keep_unused, 1 if pending else 0):])
    return sorted(doomed, key=lambda e: (e["created"], e["tag"]))
