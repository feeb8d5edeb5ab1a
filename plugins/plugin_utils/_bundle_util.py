# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bundle's utilization files, from the deploy sampler's samples and the run's summary.

``utilization.json`` (samples, table, the sampler's own cost), ``utilization.md`` (the table),
``utilization/<unit>.svg`` (CPU and memory of one unit, or utilization and memory of one GPU)
and ``dashboard.html`` (every panel of ``_dashboard.PANELS`` and the table). Times are seconds
since the run started, the same origin as ``timeline.svg``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible_collections.aiops.mlstack.plugins.plugin_utils import _sampler
from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_chart import esc, format_value, line_chart
from ansible_collections.aiops.mlstack.plugins.plugin_utils._dashboard import render_html

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def _epoch(iso_time: str | None) -> float | None:
    return None if not iso_time else datetime.datetime.fromisoformat(iso_time).timestamp()


def build_utilization(samples: Sequence[Mapping[str, Any]], overhead: Mapping[str, Any],
                      summary: Mapping[str, Any], steady_s: float = _sampler.STEADY_WINDOW_S) -> dict[str, Any]:
    """What ``utilization.json`` holds: samples on the run's clock, the deploy window and the table."""
    run = summary["run"]
    t0 = _epoch(run["start"]) or (samples[0]["t"] if samples else 0.0)
    relative = [{**s, "t": round(s["t"] - t0, 3)} for s in samples]
    figure = summary["parallelism"]
    deploy = {"start_s": figure["start_s"], "end_s": figure["end_s"]}
    span = max([run["wall_s"] or 0.0] + [s["t"] for s in relative])
    return {
        "deploy": deploy,
        "span_s": round(span, 3),
        "steady_window_s": steady_s,
        "table": _sampler.utilization_table(relative, deploy["start_s"], deploy["end_s"], steady_s),
        "overhead": dict(overhead),
        "samples": relative,
    }


def render_markdown(util: Mapping[str, Any]) -> str:
    """``utilization.md``: the table, one row per unit and per GPU."""
    lines = ["# Utilization during the deploy", "",
             f"Deploy: {util['deploy']['start_s']}–{util['deploy']['end_s']} s after the run started; steady state: "
             f"mean of the last {util['steady_window_s']:.0f} s sampled after it. Sampler: "
             f"{util['overhead'].get('samples', 0)} samples every {util['overhead'].get('interval_s', '?')} s, "
             f"{util['overhead'].get('errors', 0)} failed reads.", "",
             "| unit | CPU peak | CPU mean | CPU steady | memory peak | memory mean | memory steady |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for scope, first in (("units", "cpu_pct"), ("gpus", "util_pct")):
        for row in util["table"][scope]:
            name = row["name"] if scope == "units" else f"GPU {row['name']} (utilization)"
            cells = [format_value(row[first][k], "percent") for k in ("peak", "mean", "steady")]
            cells += [format_value(row["mem_bytes"][k], "bytes") for k in ("peak", "mean", "steady")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if not util["table"]["units"] and not util["table"]["gpus"]:
        lines.append("| (no samples) | - | - | - | - | - | - |")
    return "\n".join(lines) + "\n"


def unit_svg(util: Mapping[str, Any], scope: str, name: str) -> str:
    """One unit's (or GPU's) picture: its CPU or GPU utilization beside its memory, deploy shaded."""
    first, title = ("cpu_pct", "CPU (% of one core)") if scope == "units" else ("util_pct", "GPU utilization")
    label = name if scope == "units" else f"GPU {name}"
    window = (util["deploy"]["start_s"], util["deploy"]["end_s"])
    charts = []
    for key, chart_title, unit in ((first, f"{label}: {title}", "percent"), ("mem_bytes", f"{label}: memory", "bytes")):
        points = [(s["t"], float(v)) for s in util["samples"]
                  for v in [((s.get(scope) or {}).get(name) or {}).get(key)] if v is not None]
        charts.append(line_chart(chart_title, {label: points}, unit, window, util["span_s"]))
    height = max(int(c.split('height="', 1)[1].split('"', 1)[0]) for c in charts)
    # Nested <svg> elements side by side: each chart stays a valid picture of its own.
    inner = "".join(c.replace("<svg ", f'<svg x="{560 * i}" y="0" ', 1) for i, c in enumerate(charts))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="1120" height="{height}" viewBox="0 0 1120 {height}" '
            f'role="img" aria-label="utilization of {esc(label)}">{inner}</svg>\n')


def write_files(bundle: Path, util: Mapping[str, Any], title: str, write: Any) -> list[Path]:
    """Write every utilization file of a bundle with ``write(path, text)``; returns the paths."""
    import json  # noqa: PLC0415 - only here

    pictures = bundle / "utilization"
    pictures.mkdir(exist_ok=True)
    written = [bundle / "utilization.json", bundle / "utilization.md", bundle / "dashboard.html"]
    write(written[0], json.dumps(util, indent=1, ensure_ascii=False))
    write(written[1], render_markdown(util))
    write(written[2], render_html(util, title))
    for scope in ("units", "gpus"):
        for row in util["table"][scope]:
            stem = _SAFE_NAME.sub("_", row["name"] if scope == "units" else f"gpu{row['name']}")
            path = pictures / f"{stem}.svg"
            write(path, unit_svg(util, scope, row["name"]))
            written.append(path)
    return written
