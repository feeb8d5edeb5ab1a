# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""execute_module: a community.docker module reaches a TLS engine with the files as its own options."""

from __future__ import annotations

from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._engine_url import with_tls
from ansible_collections.aiops.mlstack.plugins.plugin_utils._action import execute_module

TLS = {"ca_path": "/tls/ca.pem", "cert_path": "/tls/cert.pem", "key_path": "/tls/key.pem"}


class RecordingAction:
    """Stands in for an ActionBase: records what would run on the target."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _execute_module(self, module_name: str, module_args: dict[str, Any],
                        task_vars: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((module_name, module_args))
        return {"changed": False}


def test_community_docker_modules_get_the_tls_options_and_the_url_without_its_query() -> None:
    action = RecordingAction()
    url = with_tls("tcp://10.0.0.11:2376", TLS)
    assert execute_module(action, "community.docker.docker_container_info", {"name": "c", "docker_host": url},
                          {}) == {"changed": False}
    assert action.calls == [("community.docker.docker_container_info", {
        "name": "c", "docker_host": "tcp://10.0.0.11:2376", "tls": True, "validate_certs": True,
        "ca_path": "/tls/ca.pem", "client_cert": "/tls/cert.pem", "client_key": "/tls/key.pem"})]


def test_the_collections_own_modules_read_the_url_themselves() -> None:
    action = RecordingAction()
    url = with_tls("tcp://10.0.0.11:2376", TLS)
    execute_module(action, "aiops.mlstack.container", {"name": "c", "docker_host": url}, {})
    assert action.calls == [("aiops.mlstack.container", {"name": "c", "docker_host": url})]
