# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus' scrape configuration and the GPU reservation rules, from the inventory (module_utils/_monitoring.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.aiops.mlstack.plugins.filter.unit import unit as resolved_unit
from ansible_collections.aiops.mlstack.plugins.module_utils import _monitoring


def _units(hostvars: Mapping[str, Any], units: list[str]) -> list[dict[str, Any]]:
    return [resolved_unit(name, hostvars) for name in units]


def _addresses(hostvars: Mapping[str, Any], units: list[dict[str, Any]]) -> dict[str, str]:
    # A Docker host's address as the inventory gives it (ansible_host), else its name.
    hosts = {u["docker_host"] for u in units}
    return {h: str(hostvars[h].get("ansible_host") or h) if h in hostvars else h for h in hosts}


def prometheus_config(hostvars: Mapping[str, Any], units: list[str], prometheus: str,
                      settings: Mapping[str, Any]) -> dict[str, Any]:
    """prometheus.yml for unit ``prometheus``: a scrape job per unit of ``units`` that serves metrics."""
    try:
        resolved = _units(hostvars, units)
        own = resolved_unit(prometheus, hostvars)
        jobs, skipped = _monitoring.scrape_jobs(resolved, own["docker_host"], _addresses(hostvars, resolved))
        if skipped and settings.get("strict", True):
            raise ValueError("; ".join(skipped))
        alertmanagers = [_monitoring.target(resolved_unit(name, hostvars), own["docker_host"], {})
                         for name in settings.get("alertmanagers") or []]
        return _monitoring.prometheus_config(
            jobs, scrape_interval=str(settings["scrape_interval"]),
            evaluation_interval=str(settings["evaluation_interval"]),
            alertmanagers=[a for a in alertmanagers if a], rule_files=list(settings.get("rule_files") or []))
    except (KeyError, ValueError) as exc:
        raise AnsibleFilterError(f"aiops.mlstack.prometheus_config: {exc}") from exc


def gpu_reservation_rules(hostvars: Mapping[str, Any], units: list[str], for_duration: str = "5m") -> dict[str, Any]:
    """The rule group that alerts when a unit's GPU memory exceeds its catalog reservation."""
    return _monitoring.gpu_reservation_rules(_units(hostvars, units), for_duration)


def alertmanager_config(webhook_url: str, group_wait: str = "10s", group_interval: str = "1m",
                        repeat_interval: str = "4h") -> dict[str, Any]:
    """alertmanager.yml: every alert to one webhook receiver (none: the API and UI only)."""
    return _monitoring.alertmanager_config(webhook_url or "", group_wait=group_wait, group_interval=group_interval,
                                           repeat_interval=repeat_interval)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"prometheus_config": prometheus_config, "gpu_reservation_rules": gpu_reservation_rules,
                "alertmanager_config": alertmanager_config}
