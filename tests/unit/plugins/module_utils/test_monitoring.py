"""Prometheus' and Alertmanager's configuration from the resolved units (module_utils/_monitoring.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _monitoring as m
from ansible_collections.aiops.mlstack.plugins.module_utils import _unit as u


def _unit(name: str, **entry: Any) -> dict[str, Any]:
    base = {"mlstack_unit_kind": "service", "mlstack_unit_role": "ml_service", "mlstack_port": 8000}
    return u.resolve(name, {**base, **entry}, {}, home="/home/op").as_dict()


@pytest.mark.parametrize(("entry", "expected"), [
    ({}, "/metrics"),  # an ml service serves /metrics unless its entry says otherwise
    ({"mlstack_metrics_path": ""}, None),
    ({"mlstack_metrics_path": False}, None),
    ({"mlstack_metrics_path": "/custom"}, "/custom"),
    ({"mlstack_unit_role": "redis"}, None),  # a database serves none
    ({"mlstack_unit_role": "monitoring", "mlstack_metrics_path": "/metrics"}, "/metrics"),
    # Part B's resource exporter: any role, any unit, scraped once its entry names the path.
    ({"mlstack_unit_role": "resource_exporter", "mlstack_metrics_path": "/metrics"}, "/metrics"),
])
def test_metrics_path_is_a_resolved_field(entry: dict[str, Any], expected: str | None) -> None:
    assert _unit("x", **entry)["metrics_path"] == expected


def test_every_unit_with_metrics_is_one_job_labelled_for_the_rules() -> None:
    units = [_unit("chat", mlstack_critical=True, mlstack_port=8007, mlstack_host_port=8007),
             _unit("memory", mlstack_port=8001),
             _unit("redis", mlstack_unit_kind="database", mlstack_unit_role="redis", mlstack_port=6379),
             _unit("llm", mlstack_port=8080, mlstack_metrics_path=""),
             _unit("resource-exporter", mlstack_unit_role="other", mlstack_port=9400, mlstack_metrics_path="/metrics"),
             _unit("undeployed", mlstack_unit_role=None)]
    jobs, skipped = m.scrape_jobs(units, "localhost")
    assert skipped == []
    assert [j["job_name"] for j in jobs] == ["chat", "memory", "resource-exporter"]
    chat = jobs[0]
    assert chat["metrics_path"] == "/metrics"
    # By unit name on the backend network, the container port: never the host port.
    assert chat["static_configs"] == [{"targets": ["chat:8007"],
                                       "labels": {"unit": "chat", "critical": "true", "docker_host": "localhost"}}]
    assert jobs[1]["static_configs"][0]["labels"]["critical"] == "false"
    assert all("honor_labels" not in j for j in jobs)


def test_an_exporter_of_other_units_keeps_their_unit_label() -> None:
    exporter = _unit("resource-exporter", mlstack_unit_role="monitoring", mlstack_port=9108,
                     mlstack_metrics_path="/metrics", mlstack_metrics_honor_labels=True)
    assert exporter["metrics_honor_labels"] is True
    (job,), skipped = m.scrape_jobs([exporter], "localhost")
    assert skipped == []
    assert job["honor_labels"] is True
    assert job["static_configs"][0]["labels"]["unit"] == "resource-exporter"


def test_a_unit_on_another_docker_host_is_scraped_on_its_host_port_or_named() -> None:
    far = _unit("node-exporter-b", mlstack_docker_host="b", mlstack_port=9100, mlstack_host_port=19100,
                mlstack_metrics_path="/metrics")
    hidden = _unit("node-exporter-c", mlstack_docker_host="c", mlstack_port=9100, mlstack_metrics_path="/metrics")
    jobs, skipped = m.scrape_jobs([far, hidden], "a", {"b": "10.0.0.2"})
    assert jobs[0]["static_configs"][0]["targets"] == ["10.0.0.2:19100"]
    assert len(skipped) == 1 and "node-exporter-c" in skipped[0] and "mlstack_host_port" in skipped[0]


def test_prometheus_config_has_intervals_alerting_and_rules() -> None:
    config = m.prometheus_config([], scrape_interval="5s", evaluation_interval="5s",
                                 alertmanagers=["alertmanager:9093"], rule_files=["/etc/prometheus/rules/*.yml"])
    # A scrape timeout above a short interval is refused by Prometheus.
    assert config["global"]["scrape_timeout"] == "5s"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    production = m.prometheus_config([], scrape_interval="1m", evaluation_interval="1m", alertmanagers=[],
                                     rule_files=[])
    assert production["global"]["scrape_timeout"] == "10s" and "alerting" not in production


@pytest.mark.parametrize(("text", "seconds"), [("15s", 15), ("1m", 60), ("500ms", 0.5), ("2h", 7200)])
def test_durations(text: str, seconds: float) -> None:
    assert m.seconds(text) == seconds


@pytest.mark.parametrize("text", ["15", "1m30s", "fast", ""])
def test_durations_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Prometheus duration"):
        m.seconds(text)


def test_gpu_reservation_rules_one_per_unit_that_reserved() -> None:
    units = [_unit("llm", mlstack_gpu="preferred", mlstack_gpu_memory_mb=1024),
             _unit("perception"),
             _unit("voice", mlstack_gpu="required")]  # no memory reserved: nothing to compare with
    group = m.gpu_reservation_rules(units)["groups"][0]
    assert [r["labels"]["unit"] for r in group["rules"]] == ["llm"]
    assert group["rules"][0]["expr"] == 'mlstack_container_gpu_memory_bytes{unit="llm"} > 1073741824'


def test_alertmanager_routes_everything_to_the_webhook() -> None:
    config = m.alertmanager_config("http://hooks.example.com/a")
    assert config["route"]["receiver"] == "webhook"
    assert config["receivers"] == [{"name": "webhook", "webhook_configs": [
        {"url": "http://hooks.example.com/a", "send_resolved": True}]}]
    assert m.alertmanager_config("")["receivers"] == [{"name": "webhook"}]
