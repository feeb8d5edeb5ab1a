# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a unit's image is present, in the controller's process when the unit's tasks run
locally; elsewhere community.docker.docker_image_info, with the same result key (images)."""

from __future__ import annotations

from typing import Any

from ansible_collections.aiops.mlstack.plugins.action.container import InspectAction
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import DockerEngine


class ActionModule(InspectAction):
    FALLBACK = "community.docker.docker_image_info"

    def answer(self, engine: DockerEngine, name: str) -> dict[str, Any]:
        inspect = engine.image_inspect(name)
        return {"images": [inspect] if inspect is not None else []}
