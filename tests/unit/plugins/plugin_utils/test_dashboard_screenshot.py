# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dashboard.html of a recorded bundle, rendered by headless Chromium (Debian's ``chromium``).

The screenshot must be a real picture: of the expected size, and with the panels drawn (many
non-background pixels inside each panel, and the first series' colour among them). scripts/test
installs chromium and sets MLSTACK_REQUIRE_CHROMIUM=1, so there the test cannot skip.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from ansible_collections.aiops.mlstack.plugins.plugin_utils import _bundle_util
from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_chart import PALETTE

FIXTURES = Path(__file__).parent / "fixtures"
WIDTH, HEIGHT = 1280, 900


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("MLSTACK_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is required here (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/test installs it)")
    return found


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG: standard library only."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def pixels(rows: list[bytes], bpp: int, box: tuple[int, int, int, int]) -> list[tuple[int, int, int]]:
    x0, y0, x1, y1 = box
    return [tuple(rows[y][x * bpp:x * bpp + 3]) for y in range(y0, y1) for x in range(x0, x1)]  # type: ignore[misc]


def test_dashboard_of_a_recorded_bundle_renders_in_chromium(tmp_path):
    browser = chromium()
    util = json.loads((FIXTURES / "utilization_phase5.json").read_text())
    _bundle_util.write_files(tmp_path, util, "Utilization of a recorded phase5", lambda p, t: p.write_text(t))
    shot = tmp_path / "dashboard.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}",
                    (tmp_path / "dashboard.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 30_000  # a blank page of this size compresses to a few KB
    width, height, rows = read_png(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    bpp = len(rows[0]) // width
    background = tuple(rows[2][2 * bpp:2 * bpp + 3])
    first_series = tuple(int(PALETTE[0][i:i + 2], 16) for i in (1, 3, 5))
    # The two unit panels sit side by side under the title (the page's grid, see _dashboard._CSS).
    for box in ((30, 100, 620, 360), (660, 100, 1250, 360)):
        area = pixels(rows, bpp, box)
        drawn = sum(1 for p in area if p != background)
        assert drawn > 0.5 * len(area), f"panel {box} is mostly background"
        assert sum(1 for p in area if all(abs(a - b) < 40 for a, b in zip(p, first_series, strict=True))) > 50, \
            f"panel {box} has no line of the first series"
    # The table below the panels: dark text on white cells.
    table = pixels(rows, bpp, (30, 440, 590, 760))
    assert sum(1 for p in table if max(p) < 90) > 1000
