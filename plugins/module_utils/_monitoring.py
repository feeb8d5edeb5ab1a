# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus' and Alertmanager's configuration, derived from the resolved units.

Nothing here is written by hand per unit: every unit whose resolved ``metrics_path`` is set
(the ml services by default, the exporters, Prometheus and Alertmanager themselves, any unit
that declares ``mlstack_metrics_path``) becomes one scrape job, reached by its unit name on
the backend network when it runs on Prometheus' Docker host, else on its Docker host's
published port. Stdlib only: the filter on the controller and the unit tests import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Prometheus' own default scrape timeout; it may not exceed the scrape interval.
DEFAULT_SCRAPE_TIMEOUT = 10.0


def seconds(duration: str) -> float:
    """A Prometheus duration with one unit (``15s``, ``1m``) in seconds; ValueError otherwise."""
    match = DURATION_RE.match(str(duration).strip())
    if not match:
        raise ValueError(f"{duration!r} is not a Prometheus duration: write it like 15s, 1m or 500ms")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _timeout(scrape_interval: str) -> str:
    # A short interval (the test inventory's) needs a timeout no longer than the interval.
    return scrape_interval if seconds(scrape_interval) < DEFAULT_SCRAPE_TIMEOUT else "10s"


def target(unit: Mapping[str, Any], prometheus_host: str, addresses: Mapping[str, str]) -> str | None:
    """Where Prometheus reaches ``unit``'s metrics; None when it cannot (another host, no host port).

    ``addresses``: each Docker host's address as seen from Prometheus' host (its inventory name
    when absent).
    """
    if unit["docker_host"] == prometheus_host:
        return f"{unit['name']}:{unit['port']}"
    if unit.get("host_port"):
        return f"{addresses.get(unit['docker_host'], unit['docker_host'])}:{unit['host_port']}"
    return None


def scrape_jobs(units: Iterable[Mapping[str, Any]], prometheus_host: str,
                addresses: Mapping[str, str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """One job per deployed unit that serves metrics, sorted by unit; and why a unit is left out.

    A unit without a role is in the catalog but not deployed: nothing to scrape. Each target
    carries the labels the alert rules select on: ``unit``, ``critical`` and ``docker_host``.
    """
    jobs: list[dict[str, Any]] = []
    skipped: list[str] = []
    for unit in sorted(units, key=lambda u: u["name"]):
        if not unit.get("role") or not unit.get("metrics_path"):
            continue
        where = target(unit, prometheus_host, addresses or {})
        if where is None:
            skipped.append(f"unit {unit['name']}: runs on {unit['docker_host']}, not on Prometheus' host "
                           f"{prometheus_host}, and publishes no host port: set its mlstack_host_port to scrape it")
            continue
        labels = {"unit": unit["name"], "critical": "true" if unit.get("critical") else "false",
                  "docker_host": unit["docker_host"]}
        job: dict[str, Any] = {"job_name": unit["name"], "metrics_path": unit["metrics_path"],
                               "static_configs": [{"targets": [where], "labels": labels}]}
        if unit.get("metrics_honor_labels"):
            # The resource exporter's series carry the unit they measure; the target's own
            # labels still fill in where a series has none (its process and GPU series).
            job["honor_labels"] = True
        jobs.append(job)
    return jobs, skipped


def prometheus_config(jobs: list[dict[str, Any]], *, scrape_interval: str, evaluation_interval: str,
                      alertmanagers: list[str], rule_files: list[str]) -> dict[str, Any]:
    """prometheus.yml as data: the global intervals, Alertmanager's targets, the rule files, the jobs."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": _timeout(scrape_interval),
                   "evaluation_interval": evaluation_interval,
                   "external_labels": {"stack": "mlstack"}},
        "rule_files": list(rule_files),
        "scrape_configs": jobs,
    }
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    return config


def gpu_reservation_rules(units: Iterable[Mapping[str, Any]], for_duration: str = "5m") -> dict[str, Any]:
    """A rule group: each unit that reserved GPU memory (``mlstack_gpu_memory_mb``) alerts above it.

    The reservation is the catalog's, so the threshold is written into each rule here rather
    than exported as a metric; ``mlstack_container_gpu_memory_bytes{unit}`` is the resource
    exporter's (part B of issue 22).
    """
    rules = []
    for unit in sorted(units, key=lambda u: u["name"]):
        gpu = unit.get("gpu") or {}
        if not unit.get("role") or gpu.get("mode", "none") == "none" or not gpu.get("memory_mb"):
            continue
        limit = int(gpu["memory_mb"]) * 1024 * 1024
        rules.append({
            "alert": "MlstackUnitGpuMemoryAboveReservation",
            "expr": f'mlstack_container_gpu_memory_bytes{{unit="{unit["name"]}"}} > {limit}',
            "for": for_duration,
            "labels": {"severity": "warning", "unit": unit["name"]},
            "annotations": {
                "summary": f"unit {unit['name']} uses more GPU memory than the {gpu['memory_mb']} MiB it reserved",
                "description": "{{ $value | humanize1024 }}B in use; the placement packed other units beside it "
                               f"on the assumption of {gpu['memory_mb']} MiB (raise mlstack_gpu_memory_mb).",
            },
        })
    return {"groups": [{"name": "mlstack-gpu-reservations", "rules": rules}]}


def alertmanager_config(webhook_url: str, *, group_wait: str = "10s", group_interval: str = "1m",
                        repeat_interval: str = "4h", send_resolved: bool = True) -> dict[str, Any]:
    """alertmanager.yml as data: every alert to one webhook receiver.

    Without a URL the receiver has no webhook: alerts are still grouped and shown in
    Alertmanager's API and UI (what the tests read), just not sent anywhere.
    """
    receiver: dict[str, Any] = {"name": "webhook"}
    if webhook_url:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": send_resolved}]
    return {
        "route": {"receiver": "webhook", "group_by": ["alertname", "unit"], "group_wait": group_wait,
                  "group_interval": group_interval, "repeat_interval": repeat_interval},
        "receivers": [receiver],
        # A critical unit down makes its dependants' alerts noise: they are held back meanwhile.
        "inhibit_rules": [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                           "equal": ["unit"]}],
    }
