"""Write docs/grafana/mlstack.json, the Grafana dashboard of the utilization panels.

The panels are defined once, in plugins/plugin_utils/_dashboard.py; the evidence bundle's
dashboard.html draws the same panels from the deploy sampler. Import the JSON in Grafana and pick
the Prometheus data source that scrapes the resource exporter (docs/utilization.md).

    python scripts/grafana_dashboard.py           rewrite the file
    python scripts/grafana_dashboard.py --check   exit 1 when the file is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "grafana" / "mlstack.json"
# The collection as ansible_collections.aiops.mlstack (scripts/bootstrap links it here).
sys.path.insert(0, str(ROOT / ".ansible" / "collections"))


def rendered() -> str:
    from ansible_collections.aiops.mlstack.plugins.plugin_utils._dashboard import grafana_dashboard  # noqa: PLC0415

    return json.dumps(grafana_dashboard(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = rendered()
    if "--check" in argv:
        if not TARGET.is_file() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run scripts/grafana_dashboard.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
