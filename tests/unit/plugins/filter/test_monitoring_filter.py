"""The scrape configuration the local inventory generates (filter aiops.mlstack.prometheus_config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager

from ansible_collections.aiops.mlstack.plugins.filter import monitoring

ROOT = Path(__file__).resolve().parents[4]
SETTINGS = {"scrape_interval": "5s", "evaluation_interval": "5s", "rule_files": ["/etc/prometheus/rules/*.yml"],
            "alertmanagers": ["alertmanager"]}


@pytest.fixture(scope="module")
def local() -> tuple[dict[str, Any], list[str]]:
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(ROOT / "inventories/local")])
    variables = VariableManager(loader=loader, inventory=inventory)
    hostvars = {h.name: variables.get_vars(host=h) for h in inventory.get_hosts()}
    return hostvars, sorted(h.name for h in inventory.get_hosts("mlstack_units"))


def test_local_inventory_scrapes_every_unit_that_serves_metrics(local: tuple[dict[str, Any], list[str]]) -> None:
    hostvars, units = local
    config = monitoring.prometheus_config(hostvars, units, "prometheus", SETTINGS)
    targets = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in config["scrape_configs"]}
    assert targets == {
        "alertmanager": "alertmanager:9093", "chat": "chat:8007", "coordination": "coordination:8000",
        "learning": "learning:8002", "llm": "llm:8080", "memory": "memory:8001",
        "node-exporter": "node-exporter:9100", "perception": "perception:8003",
        "postgres-exporter": "postgres-exporter:9187", "prometheus": "prometheus:9090",
        "reasoning": "reasoning:8005", "redis-exporter": "redis-exporter:9121",
        "resource-exporter": "resource-exporter:9108",
        "sequential-thinking": "sequential-thinking:8004", "voice-interaction": "voice-interaction:8006"}
    # Only the resource exporter's series name another unit.
    assert [j["job_name"] for j in config["scrape_configs"] if j.get("honor_labels")] == ["resource-exporter"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_a_new_unit_with_a_metrics_path_is_scraped_with_no_other_change(
        local: tuple[dict[str, Any], list[str]]) -> None:
    hostvars, units = local
    extra = {**hostvars["node-exporter"], "mlstack_unit_role": "app", "mlstack_port": 9400,
             "mlstack_metrics_path": "/stats"}
    config = monitoring.prometheus_config({**hostvars, "dcgm-exporter": extra}, [*units, "dcgm-exporter"],
                                          "prometheus", SETTINGS)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["dcgm-exporter"]["static_configs"][0]["targets"] == ["dcgm-exporter:9400"]
    assert jobs["dcgm-exporter"]["metrics_path"] == "/stats"


def test_gpu_reservation_rules_of_the_local_inventory(local: tuple[dict[str, Any], list[str]]) -> None:
    hostvars, units = local
    rules = monitoring.gpu_reservation_rules(hostvars, units)["groups"][0]["rules"]
    assert [(r["labels"]["unit"], r["expr"]) for r in rules] == [
        ("llm", 'mlstack_container_gpu_memory_bytes{unit="llm"} > 1073741824')]
