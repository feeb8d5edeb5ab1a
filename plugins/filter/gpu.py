# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU placement of the catalog's units onto a Docker host's GPUs (rules in module_utils/_gpu_placement.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.aiops.mlstack.plugins.module_utils._gpu_host import driver_errors
from ansible_collections.aiops.mlstack.plugins.module_utils._gpu_placement import (
    FIELDS,
    PlacementError,
    place,
    units_on,
)


def gpu_placement(hostvars: Mapping[str, Any], units: list[str], docker_host: str,
                  facts: Mapping[str, Any] | None, reserve_mb: int = 0) -> dict[str, Any]:
    """Assignment of the ``units`` that run on ``docker_host`` to its GPUs (``facts``: its gpu_facts).

    ``hostvars | aiops.mlstack.gpu_placement(groups['mlstack_units'], inventory_hostname, mlstack_gpu)``
    """
    catalog = {name: {field: hostvars[name].get(field) for field in FIELDS} for name in units}
    try:
        return place(units_on(catalog, docker_host), docker_host, facts, int(reserve_mb))
    except PlacementError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"gpu_placement": gpu_placement, "gpu_driver_errors": driver_errors}
