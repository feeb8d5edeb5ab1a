"""docs/grafana/mlstack.json is what scripts/grafana_dashboard.py renders from the one panel definition."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1].parent
_spec = importlib.util.spec_from_file_location("grafana_dashboard", ROOT / "scripts" / "grafana_dashboard.py")
assert _spec is not None and _spec.loader is not None
grafana_dashboard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(grafana_dashboard)


def test_the_checked_in_dashboard_is_up_to_date() -> None:
    assert grafana_dashboard.main(["--check"]) == 0, "run scripts/grafana_dashboard.py after editing the panels"


def test_check_fails_on_a_stale_file(tmp_path, monkeypatch) -> None:
    stale = tmp_path / "mlstack.json"
    stale.write_text(json.dumps({"panels": []}))
    monkeypatch.setattr(grafana_dashboard, "TARGET", stale)
    monkeypatch.setattr(grafana_dashboard, "ROOT", tmp_path)
    assert grafana_dashboard.main(["--check"]) == 1


def test_every_panel_queries_the_exporter_metrics() -> None:
    board = json.loads((ROOT / "docs" / "grafana" / "mlstack.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    for metric in ("mlstack_container_cpu_seconds_total", "mlstack_container_memory_bytes",
                   "mlstack_gpu_utilization_ratio", "mlstack_gpu_memory_used_bytes"):
        assert any(metric in e for e in exprs), metric
