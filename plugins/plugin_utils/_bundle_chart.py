# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Line charts as standalone SVG, for the utilization pictures and the HTML dashboard.

No external assets: every picture is one ``<svg>`` element with its own style, so it can be
saved as a file or inlined in ``dashboard.html`` as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_svg import nice_step
from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_text import xml_text

_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
# Distinguishable on white and in grey print; cycled when there are more series, each
# further cycle dashed (a stack of 18 units would otherwise draw two red lines alike).
PALETTE = ("#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#3949ab",
           "#c0ca33", "#d81b60", "#546e7a", "#00acc1", "#7cb342", "#5e35b1", "#f4511e", "#039be5")
_STYLE = (f"<style>text{{font-family:{_FONT};fill:#263238}}.t{{font-size:14px;font-weight:bold}}"
          ".a{font-size:10.5px;fill:#546e7a}.l{font-size:11px}.g{stroke:#e0e6ea;stroke-width:1}"
          ".f{fill:none;stroke:#b0bec5}.d{fill:#e3f2fd}.s{fill:none;stroke-width:1.6}</style>")


def stroke(index: int) -> str:
    """The attributes that draw series ``index``: its colour, and a dash after the first cycle."""
    colour = PALETTE[index % len(PALETTE)]
    dash = ' stroke-dasharray="5 3"' if (index // len(PALETTE)) % 2 else ""
    return f'stroke="{colour}"{dash}'


def esc(text: Any) -> str:
    return (xml_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def format_value(value: float | None, unit: str) -> str:
    """A figure as a person reads it: ``12.5 %``, ``301 MiB``, ``1.2 GiB``; ``-`` for none."""
    if value is None:
        return "-"
    if unit == "percent":
        return f"{value:.1f} %"
    if unit == "bytes":
        for step, name in ((1024 ** 3, "GiB"), (1024 ** 2, "MiB"), (1024, "KiB")):
            if abs(value) >= step:
                return f"{value / step:.1f} {name}"
        return f"{value:.0f} B"
    return f"{value:.3g}"


def _y_axis(top: float, unit: str) -> tuple[float, float]:
    """(axis maximum, tick step) for values up to ``top``: percent at least 10, bytes in round MiB or GiB."""
    if unit == "bytes":
        size = 1024.0 ** 3 if top >= 2 * 1024 ** 3 else 1024.0 ** 2
        top_in = max(top / size, 1.0)
        step = nice_step(top_in, 4)
        return step * math.ceil(top_in / step - 1e-9) * size, step * size
    top = max(top, 10.0 if unit == "percent" else 1.0)
    step = nice_step(top, 4)
    return step * math.ceil(top / step - 1e-9), step


def line_chart(title: str, series: Mapping[str, Sequence[tuple[float, float]]], unit: str,
               window: tuple[float | None, float | None], span: float, width: int = 560,
               plot_height: int = 150) -> str:
    """One panel: a line per series over seconds since the run started; the deploy window shaded.

    ``series`` maps a name to (seconds, value) points; gaps (no value) are simply not drawn.
    The legend wraps onto as many rows as the series need, so the picture grows downwards.
    """
    left, right, top = 64, 12, 30
    pw, ph = width - left - right, plot_height
    legend, legend_rows = _legend(list(series), left, top + ph + 36, pw)
    height = top + ph + 24 + 16 * legend_rows + 8
    span = max(span, 1.0)
    peak = max((v for pts in series.values() for _t, v in pts), default=0.0)
    y_max, y_step = _y_axis(peak, unit)
    x_step = nice_step(span, 6)
    x_ticks = max(math.ceil(span / x_step - 1e-9), 1)
    x_scale = pw / (x_step * x_ticks)

    def xy(t: float, v: float) -> str:
        return f"{left + t * x_scale:.1f},{top + ph - v / y_max * ph:.1f}"

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">', _STYLE,
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="{left}" y="18" class="t">{esc(title)}</text>']
    start, end = window
    if start is not None and end is not None and end > start:
        out.append(f'<rect x="{left + start * x_scale:.1f}" y="{top}" width="{(end - start) * x_scale:.1f}" '
                   f'height="{ph}" class="d"><title>deploy</title></rect>')
    for i in range(int(round(y_max / y_step)) + 1):
        y = top + ph - i * y_step / y_max * ph
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" class="g"/>')
        out.append(f'<text x="{left - 6}" y="{y + 3.5:.1f}" text-anchor="end" class="a">'
                   f"{esc(format_value(i * y_step, unit))}</text>")
    for i in range(x_ticks + 1):
        x = left + i * x_step * x_scale
        out.append(f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle" class="a">{i * x_step:g} s</text>')
    for index, (name, points) in enumerate(series.items()):
        if points:
            path = " ".join(xy(t, v) for t, v in points)
            out.append(f'<polyline points="{path}" {stroke(index)} class="s"><title>{esc(name)}</title></polyline>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="f"/>')
    out += legend
    if not any(series.values()):
        out.append(f'<text x="{left + 10}" y="{top + 20}" class="l">no samples</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _legend(names: Sequence[str], x0: float, y0: float, width: float) -> tuple[list[str], int]:
    """The legend's elements and its number of rows (items wrap at ``width``)."""
    out: list[str] = []
    x, y, rows = x0, y0, 1 if names else 0
    for index, name in enumerate(names):
        label = name if len(name) <= 24 else name[:23] + "…"
        room = 24 + 6.6 * len(label)
        if x + room > x0 + width and x > x0:
            x, y, rows = x0, y + 16, rows + 1
        out.append(f'<line x1="{x:.1f}" y1="{y - 6}" x2="{x + 12:.1f}" y2="{y - 6}" {stroke(index)} stroke-width="3"/>')
        out.append(f'<text x="{x + 16:.1f}" y="{y - 2}" class="l">{esc(label)}</text>')
        x += room
    return out, rows
