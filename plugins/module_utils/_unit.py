# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One unit's names and baselines, declared once.

Every container name the collection derives from a unit (the serving container, the
candidate, the kept previous one, the port holder) and the hardening baseline every unit
and port holder runs with are defined here and nowhere else. Stdlib only: modules on the
target and plugins on the controller both import it.
"""

from __future__ import annotations

from typing import Any

UPDATE_ORDERS = ("start-first", "stop-first")

# What every container the collection runs is locked down with (the units, the port
# holder); verify's hardening check reads the same baseline.
HARDENING: dict[str, Any] = {
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "log_options": {"max-size": "10m", "max-file": "3"},
}


def container_name(unit: str) -> str:
    """The serving container of a unit."""
    return f"mlstack-{unit}"


def previous_name(name: str) -> str:
    """Where the last good container is kept, stopped, after it was replaced (rollback target)."""
    return f"{name}_previous"


def side_name(name: str) -> str:
    """Where the serving container waits, stopped, while its replacement proves its health."""
    return f"{name}_replaced"


def holder_name(name: str) -> str:
    """The port holder that binds a unit's host ports when it has one (``port_holder_image``)."""
    return f"{name}_port"


def next_name(name: str) -> str:
    """The candidate that proves a new spec beside the serving container (update_order start-first)."""
    return f"{name}_next"
