# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a reconciliation result shows beyond the task: its evidence record, a summary, addresses.

The keys chosen here are read by verify, the evidence callback and the molecule tests:
renaming one breaks them.
"""

from __future__ import annotations

from typing import Any


def addresses(inspect: dict[str, Any] | None) -> dict[str, str]:
    """The container's IP address on each network: checks reach internal networks through them."""
    networks = ((inspect or {}).get("NetworkSettings") or {}).get("Networks") or {}
    return {name: conf.get("IPAddress", "") for name, conf in networks.items() if conf.get("IPAddress")}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """A secondary container's result in a few entries (the port holder's, inside the unit's)."""
    return {"action": result["action"], "reason": result["reason"],
            "health": (result.get("health") or {}).get("state"), "not_serving_s": result.get("not_serving_s")}


def evidence_observed(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a reconciliation result that belongs in the evidence record."""
    observed = {key: result.get(key) for key in ("action", "reason", "changed_fields", "rolled_back",
                                                 "update_order", "not_serving_s", "switched", "switch_s",
                                                 "last_good", "port_holder")}
    observed["degraded"] = bool(result.get("degraded"))
    health = result.get("health") or {}
    observed["health"] = health.get("state")
    observed["health_wait_s"] = health.get("waited_s")
    observed["dependencies"] = sorted(result.get("dependencies") or {})
    if result.get("failure"):
        observed["failure"] = failure_observed(result["failure"])
    return observed


def failure_observed(detail: dict[str, Any]) -> dict[str, Any]:
    """What Docker said about a failed health gate, without the (possibly long) log tail."""
    return {key: detail.get(key) for key in ("state", "waited_s", "health_log", "exit_code", "dependency",
                                             "message", "rollback_error", "kept") if key in detail}
