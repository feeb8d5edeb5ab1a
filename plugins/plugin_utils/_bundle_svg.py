# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``timeline.svg``: the evidence bundle's Gantt chart of what ran in parallel."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_text import xml_text
from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_verdict import shown_status

# Drawing order of the timeline's legend, and the colours a person expects from Ansible's
# own output (green ok, amber changed, red failed), toned down for a document.
STATUS_COLOURS = {
    "ok": "#43a047",
    "changed": "#f9a825",
    "failed": "#e53935",
    "unreachable": "#8e24aa",
    "rescued": "#fb8c00",
    "ignored": "#ffcc80",
    "skipped": "#b0bec5",
    "unfinished": "#42a5f5",
}

_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_PROMINENT = ("failed", "unreachable", "unfinished")
_STATE_DOT = {"failed": "failed", "unfinished": "unfinished", "skipped": "skipped", "none": "skipped"}
_W = 1200
_ROW_H = 26
_BAR_H = 14
_TOP = 92


def nice_step(span: float, target_ticks: int = 10) -> float:
    """A tick step of 1, 2 or 5 times a power of ten giving about ``target_ticks`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _esc(text: Any) -> str:
    return (xml_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _tick_label(value: float, step: float) -> str:
    return f"{value:.0f} s" if step >= 1 else f"{value:.{max(0, -math.floor(math.log10(step)))}f} s"


def _svg_axis(x0: float, scale: float, step: float, ticks: int, y_top: float, y_bottom: float) -> list[str]:
    out = []
    for i in range(ticks + 1):
        value = i * step
        x = x0 + value * scale
        out.append(f'<line x1="{x:.1f}" y1="{y_top}" x2="{x:.1f}" y2="{y_bottom}" class="grid"/>')
        out.append(f'<line x1="{x:.1f}" y1="{y_bottom}" x2="{x:.1f}" y2="{y_bottom + 5}" class="tick"/>')
        out.append(f'<text x="{x:.1f}" y="{y_bottom + 18}" text-anchor="middle" class="axis">'
                   f"{_esc(_tick_label(value, step))}</text>")
    return out


def _svg_row(unit: Mapping[str, Any], index: int, origin: float, x0: float, scale: float, width: float) -> list[str]:
    y = _TOP + index * _ROW_H
    bar_y = y + (_ROW_H - _BAR_H) / 2
    state_colour = STATUS_COLOURS.get(_STATE_DOT.get(unit["state"], "ok"), "#43a047")
    out = [f'<g class="row" data-unit="{_esc(unit["name"])}">']
    out.append(f'<circle cx="16" cy="{y + _ROW_H / 2}" r="4.5" fill="{state_colour}">'
               f'<title>{_esc(unit["state"])}</title></circle>')
    out.append(f'<text x="28" y="{y + _ROW_H / 2 + 4}" class="label">{_esc(_shorten(unit["name"], x0 - 36))}'
               f'<title>{_esc(unit["name"])}</title></text>')
    # Problems last, and never thinner than 3 px, so that a short failure is not lost among long bars.
    for task in sorted(unit["tasks"], key=lambda t: shown_status(t) in _PROMINENT):
        status = shown_status(task)
        x = x0 + (task["start_s"] - origin) * scale
        w = max((task["end_s"] - task["start_s"]) * scale, 3.0 if status in _PROMINENT else 1.5)
        colour = STATUS_COLOURS.get(status, "#90a4ae")
        tip = f"{task['task']} - {status}, {task['duration_s']:.2f} s"
        out.append(f'<rect x="{x:.2f}" y="{bar_y}" width="{w:.2f}" height="{_BAR_H}" fill="{colour}" class="bar">'
                   f"<title>{_esc(tip)}</title></rect>")
    for rec_time, ok in _record_marks(unit):
        x = x0 + (rec_time - origin) * scale
        fill = "#1b5e20" if ok else "#b71c1c"
        out.append(f'<path d="M{x:.2f},{bar_y - 4} l4,4 l-4,4 l-4,-4 z" fill="{fill}" class="mark"/>')
    busy = f"{unit['busy_s']:.1f} s" if unit["host"] else "no task"
    out.append(f'<text x="{x0 + width + 12}" y="{y + _ROW_H / 2 + 4}" class="busy">{_esc(busy)}</text>')
    out.append("</g>")
    return out


def _shorten(text: str, pixels: float) -> str:
    """``text`` cut with an ellipsis to fit about ``pixels`` at the label font size."""
    limit = max(int(pixels / 7.0), 4)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _record_marks(unit: Mapping[str, Any]) -> list[tuple[float, bool]]:
    """(time, ok) of each evidence check this unit's host returned: when its task ended."""
    return [(r["received_s"], bool(r["ok"])) for r in unit["evidence"] if r.get("host") == unit["name"]]


def _svg_legend(y: float, statuses: Sequence[str]) -> list[str]:
    out = []
    x = 28.0
    for status in statuses:
        out.append(f'<rect x="{x}" y="{y - 10}" width="14" height="12" rx="2" fill="{STATUS_COLOURS[status]}"/>')
        out.append(f'<text x="{x + 20}" y="{y}" class="legend">{_esc(status)}</text>')
        x += 44 + 6.9 * len(status)
    for fill, text in (("#1b5e20", "check passed"), ("#b71c1c", "check failed")):
        out.append(f'<path d="M{x + 6},{y - 10} l5,5 l-5,5 l-5,-5 z" fill="{fill}"/>')
        out.append(f'<text x="{x + 18}" y="{y}" class="legend">{_esc(text)}</text>')
        x += 44 + 6.9 * len(text)
    return out


_SVG_STYLE = (
    "<style>"
    f"text{{font-family:{_FONT};fill:#263238}}"
    ".title{font-size:17px;font-weight:bold}.subtitle{font-size:12.5px;fill:#546e7a}"
    ".label{font-size:12.5px}.busy{font-size:12px;fill:#546e7a}.axis{font-size:11px;fill:#546e7a}"
    ".legend{font-size:12px}.head{font-size:11px;fill:#78909c;font-weight:bold}"
    ".grid{stroke:#e0e6ea;stroke-width:1}.tick{stroke:#90a4ae}.stripe{fill:#f5f7f8}"
    ".bar{stroke:#ffffff;stroke-width:0.6}.frame{fill:none;stroke:#b0bec5}"
    "</style>"
)


def render_timeline(summary: Mapping[str, Any]) -> str:
    """``timeline.svg``: a Gantt chart, one row per unit host, one bar per task, coloured
    by status; the time axis is seconds since the first unit task started."""
    units = [u for u in summary["units"] if u["host"]]
    figure = summary["parallelism"]
    run = summary["run"]
    label_w = min(max([len(u["name"]) for u in units] + [8]) * 7.6 + 40, 260)
    x0, width = label_w, _W - label_w - 90
    origin = figure["start_s"] or 0.0
    span = max(figure["wall_s"] or 0.0, 1e-3)
    step = nice_step(span)
    ticks = max(math.ceil(span / step - 1e-9), 1)
    scale = width / (step * ticks)
    plot_bottom = _TOP + max(len(units), 1) * _ROW_H
    height = plot_bottom + 70
    value = "-" if figure["value"] is None else f"{figure['value']:.2f}"
    started = (run["start"] or "")[:19].replace("T", " ")
    subtitle = (f"run {run['id']} · started {started} UTC · deploy wall {figure['wall_s']:.1f} s · units busy "
                f"{figure['busy_s']:.1f} s · parallelism {value} · verdict {summary['verdict'].upper()}"
                + ("" if run["status"] == "complete" else " · INCOMPLETE RUN"))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" viewBox="0 0 {_W} {height}" '
           f'role="img" aria-label="Deploy timeline">', _SVG_STYLE,
           f'<rect x="0" y="0" width="{_W}" height="{height}" fill="#ffffff"/>',
           f'<text x="16" y="30" class="title">{_esc("Deploy timeline: " + (run["playbook"] or "run"))}</text>',
           f'<text x="16" y="52" class="subtitle">{_esc(subtitle)}</text>',
           f'<text x="28" y="{_TOP - 8}" class="head">UNIT</text>',
           f'<text x="{x0 + width + 12}" y="{_TOP - 8}" class="head">BUSY</text>']
    out += [f'<rect x="0" y="{_TOP + i * _ROW_H}" width="{_W}" height="{_ROW_H}" class="stripe"/>'
            for i in range(1, len(units), 2)]
    out += _svg_axis(x0, scale, step, ticks, _TOP, plot_bottom)
    if not units:
        out.append(f'<text x="{x0 + 10}" y="{_TOP + 17}" class="label">no unit ran a task</text>')
    for index, unit in enumerate(units):
        out += _svg_row(unit, index, origin, x0, scale, width)
    out.append(f'<rect x="{x0}" y="{_TOP}" width="{width}" height="{plot_bottom - _TOP}" class="frame"/>')
    out.append(f'<text x="{x0 + width}" y="{plot_bottom + 34}" text-anchor="end" class="axis">'
               "seconds since the first unit task started</text>")
    present = {shown_status(t) for u in units for t in u["tasks"]}
    legend = [s for s in STATUS_COLOURS if s in present or s in ("ok", "changed", "failed", "skipped")]
    out += _svg_legend(plot_bottom + 58, legend)
    out.append("</svg>")
    return "\n".join(out) + "\n"
