# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The utilization pictures' line chart: every series is told apart from every other."""

from __future__ import annotations

import re

from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_chart import PALETTE, line_chart, stroke


def test_a_series_past_the_palette_is_dashed_not_a_twin_of_the_first_cycle() -> None:
    count = len(PALETTE) + 3
    styles = [stroke(i) for i in range(count)]
    assert len(set(styles)) == count
    assert "dasharray" not in styles[1] and "dasharray" in styles[len(PALETTE) + 1]


def test_a_chart_of_eighteen_units_draws_each_line_and_legend_entry_in_its_own_style() -> None:
    series = {f"unit-{i:02d}": [(0.0, float(i)), (10.0, float(i + 1))] for i in range(18)}
    svg = line_chart("Memory per unit", series, "bytes", (0.0, 10.0), 10.0)
    style = r'(stroke="[^"]*"(?: stroke-dasharray="[^"]*")?)'
    lines = re.findall(r'<polyline points="[^"]*" ' + style, svg)
    legend = re.findall(r'<line x1="[^"]*" y1="[^"]*" x2="[^"]*" y2="[^"]*" ' + style, svg)
    assert len(lines) == 18 and len(set(lines)) == 18
    assert legend == lines
