# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evidence bundle's console table, printed by the callback at the end of the run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def render_console(summary: Mapping[str, Any]) -> list[str]:
    """The short table the callback prints at the end of the run."""
    units = summary["units"]
    width = max([len(u["name"]) for u in units] + [4])
    figure = summary["parallelism"]["value"]
    lines = [f"{'unit':<{width}}  {'state':<10}  {'checks':>6}  {'busy s':>7}"]
    for u in units:
        checks = f"{u['checks']['ok']}/{u['checks']['total']}"
        busy = f"{u['busy_s']:.1f}" if u["host"] else "-"
        lines.append(f"{u['name']:<{width}}  {u['state']:<10}  {checks:>6}  {busy:>7}")
    lines.append(f"verdict: {summary['verdict']} · parallelism {'-' if figure is None else f'{figure:.2f}'}"
                 f" · wall {summary['run']['wall_s']:.1f} s · run {summary['run']['status']}")
    return lines
