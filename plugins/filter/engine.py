# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An engine URL as community.docker's modules take it (module_utils/_engine_url.py)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.aiops.mlstack.plugins.module_utils._engine_url import (
    EngineUrlError,
    community_docker_options,
)


def docker_api(url: str) -> dict[str, Any]:
    """``unit.docker_url | aiops.mlstack.docker_api``: docker_host, tls, validate_certs, ca_path, client_cert,
    client_key (the last four None for an engine without TLS)."""
    try:
        options = community_docker_options(str(url))
    except EngineUrlError as exc:
        raise AnsibleFilterError(f"aiops.mlstack.docker_api: {exc}") from exc
    return {"tls": False, "validate_certs": False, "ca_path": None, "client_cert": None, "client_key": None,
            **options}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"docker_api": docker_api}
