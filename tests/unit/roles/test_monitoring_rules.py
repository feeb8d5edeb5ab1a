"""The alert rules and the monitoring configuration, checked by Prometheus' and Alertmanager's own tools.

promtool and amtool are Debian's (prometheus, prometheus-alertmanager; scripts/test installs
them): each check is skipped where they are absent, and the rules' cases cover every alert.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.aiops.mlstack.plugins.module_utils import _monitoring

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "roles/monitoring/files/rules/mlstack.rules.yml"
CASES = Path(__file__).resolve().parent / "monitoring/rules_test.yml"
# The units of the rule cases: llm reserved 1024 MiB of GPU memory, perception runs on the CPU.
UNITS: list[dict[str, Any]] = [
    {"name": "llm", "role": "ml_service", "gpu": {"mode": "preferred", "memory_mb": 1024}},
    {"name": "perception", "role": "ml_service", "gpu": {"mode": "none", "memory_mb": 0}},
]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian's prometheus, prometheus-alertmanager: scripts/test installs it)")
    return path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _alerts(doc: dict[str, Any]) -> set[str]:
    return {r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_every_alert_has_a_case() -> None:
    cases = yaml.safe_load(CASES.read_text())
    tested = {t["alertname"] for case in cases["tests"] for t in case.get("alert_rule_test", [])}
    rules = _alerts(yaml.safe_load(RULES.read_text())) | _alerts(_monitoring.gpu_reservation_rules(UNITS))
    assert rules <= tested, f"alerts without a promtool case: {sorted(rules - tested)}"


def test_promtool_checks_and_tests_the_rules(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    shutil.copy(RULES, tmp_path / "mlstack.rules.yml")
    shutil.copy(CASES, tmp_path / "rules_test.yml")
    (tmp_path / "gpu-reservations.yml").write_text(yaml.safe_dump(_monitoring.gpu_reservation_rules(UNITS)))
    checked = _run(promtool, "check", "rules", str(tmp_path / "mlstack.rules.yml"),
                   str(tmp_path / "gpu-reservations.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _run(promtool, "test", "rules", str(tmp_path / "rules_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_checks_a_generated_configuration(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    units = [
        {"name": "chat", "role": "ml_service", "port": 8007, "host_port": 8007, "docker_host": "localhost",
         "critical": True, "metrics_path": "/metrics"},
        {"name": "redis-exporter", "role": "monitoring", "port": 9121, "host_port": None, "docker_host": "localhost",
         "critical": False, "metrics_path": "/metrics"},
        {"name": "redis", "role": "redis", "port": 6379, "host_port": None, "docker_host": "localhost",
         "critical": True, "metrics_path": None},
    ]
    jobs, skipped = _monitoring.scrape_jobs(units, "localhost")
    assert skipped == []
    (tmp_path / "rules").mkdir()
    shutil.copy(RULES, tmp_path / "rules/mlstack.rules.yml")
    config = _monitoring.prometheus_config(jobs, scrape_interval="5s", evaluation_interval="5s",
                                           alertmanagers=["alertmanager:9093"],
                                           rule_files=[str(tmp_path / "rules/*.yml")])
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    checked = _run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("url", ["", "http://hooks.example.com/alerts"])
def test_amtool_checks_the_alertmanager_configuration(tmp_path: Path, url: str) -> None:
    amtool = _tool("amtool")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(_monitoring.alertmanager_config(url)))
    checked = _run(amtool, "check-config", str(tmp_path / "alertmanager.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
