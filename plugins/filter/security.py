# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Judgements of the security stream that playbooks need as values."""

from __future__ import annotations

from typing import Any

from ansible_collections.aiops.mlstack.plugins.plugin_utils._security import hardening_findings


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"hardening_findings": hardening_findings}
