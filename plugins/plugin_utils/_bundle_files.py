# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the evidence callback writes: bundle names, atomic files, the ``latest`` link, pruning."""

from __future__ import annotations

import datetime
import os
import re
import shutil
from pathlib import Path

BUNDLE_NAME = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")


def utc_stamp(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def point_latest(output_dir: Path, bundle: Path) -> None:
    link = output_dir / "latest"
    tmp = output_dir / f".latest.{bundle.name}"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(bundle.name, tmp)
    os.replace(tmp, link)


def prune(output_dir: Path, keep: int, current: Path) -> None:
    """Remove the oldest bundles so that ``keep`` remain (names sort by time)."""
    if keep <= 0:
        return
    bundles = sorted(p for p in output_dir.iterdir()
                     if p.is_dir() and not p.is_symlink() and BUNDLE_NAME.match(p.name))
    for old in bundles[: max(len(bundles) - keep, 0)]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)
