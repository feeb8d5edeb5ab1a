# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The units that serve TLS, and what their containers need of it (plugin_utils/_tls.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible_collections.aiops.mlstack.plugins.filter.unit import unit as resolved
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import TLS_CERT_FILE


def tls_servers(units: list[str], hostvars: Mapping[str, Any]) -> dict[str, Any]:
    """``groups['mlstack_units'] | aiops.mlstack.tls_servers(hostvars)``: the secrets directory and
    each unit that serves TLS with the names its certificate must carry."""
    servers, secrets_dir = [], ""
    for name in units:
        unit = resolved(name, hostvars)
        if unit["tls"]:
            servers.append({"unit": name, "names": unit["tls"]["names"]})
            secrets_dir = unit["secrets_dir"]
    return {"secrets_dir": secrets_dir, "servers": servers}


def tls_fingerprint(unit: Mapping[str, Any]) -> str:
    """SHA-256 of the unit's certificate ('' without one): a label that changes with the
    certificate, so that a server restarts onto a renewed one."""
    if not unit.get("tls"):
        return ""
    path = Path(str(unit["secrets_dir"])).expanduser() / str(unit["name"]) / TLS_CERT_FILE
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        # Not made yet (a check-mode run before the first): the next run labels it.
        return ""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"tls_servers": tls_servers, "tls_fingerprint": tls_fingerprint}
