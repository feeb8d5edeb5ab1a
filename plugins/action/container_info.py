# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker inspect of one container, in the controller's process when the unit's tasks run locally.

The quality stream asks this of every unit at once; as a module that is one Python start
and one import of a Docker client per unit, which on 2 cores took 34 task-seconds of a
21 s no-op run (1.4 s in-process). Elsewhere community.docker.docker_container_info runs
as usual, with the same result keys (exists, container).
"""

from __future__ import annotations

from typing import Any

from ansible_collections.aiops.mlstack.plugins.action.container import InspectAction
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import DockerEngine


class ActionModule(InspectAction):
    FALLBACK = "community.docker.docker_container_info"

    def answer(self, engine: DockerEngine, name: str) -> dict[str, Any]:
        inspect = engine.inspect(name)
        return {"exists": inspect is not None, "container": inspect}
