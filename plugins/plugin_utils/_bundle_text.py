# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text made fit for the evidence bundle's files: on one line, bounded, characters XML accepts.

The Markdown, JUnit and SVG renderers share these; standard library only.
"""

from __future__ import annotations

import re
from typing import Any

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def inline(text: Any, limit: int = 400) -> str:
    """A message on one line, shortened to ``limit`` characters."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def xml_text(value: Any) -> str:
    """``value`` as text, each character XML 1.0 cannot hold replaced by U+FFFD."""
    return _XML_INVALID.sub("\ufffd", "" if value is None else str(value))
