# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Docker SDK behind the ``Engine`` seam of ``_container``: I/O only, no decisions."""

from __future__ import annotations

import os
import socket
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._engine_url import EngineUrlError, client_args

try:
    import docker
    import docker.tls
    from docker.errors import DockerException, ImageNotFound, NotFound  # noqa: F401  # pylint: disable=unused-import
    from docker.models.containers import _create_container_args

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR: Exception | None = None
except ImportError as exc:  # pragma: no cover - depends on the target's interpreter
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = exc
    DockerException = Exception  # type: ignore[assignment,misc]


# The option every module on the docker doc fragment takes (doc_fragments/docker.py).
DOCKER_HOST_ARG = {"docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"}}


def engine_for(module: Any) -> DockerEngine:
    """The engine at the module's ``docker_host``, or the module fails naming the missing SDK."""
    if not HAS_DOCKER:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("docker"), exception=str(DOCKER_IMPORT_ERROR))
    return DockerEngine(module.params["docker_host"])


def tls_config(url: str, tls: dict[str, Any]) -> Any:
    """The SDK's TLSConfig for a ``tcp://`` engine, after checking that each file is there to read."""
    cert, key = tls["client_cert"]
    for field, path in (("ca_path", tls["ca_cert"]), ("cert_path", cert), ("key_path", key)):
        if not os.path.isfile(path):
            raise DockerException(f"engine {url}: mlstack_docker_tls.{field} {path} is not a file on "
                                  f"{socket.gethostname()}, where this task runs (the Docker host's Ansible "
                                  "connection): copy it there or fix the path")
    return docker.tls.TLSConfig(client_cert=(cert, key), ca_cert=tls["ca_cert"], verify=tls["verify"])


class DockerEngine:
    """Reaches one Docker engine (``unix://``, ``ssh://``, or ``tcp://`` with TLS files in the URL's query)."""

    def __init__(self, base_url: str, timeout: int = 60) -> None:
        try:
            url, tls = client_args(base_url)
        except EngineUrlError as exc:
            raise DockerException(str(exc)) from None
        self.client = docker.DockerClient(base_url=url, timeout=timeout,
                                          tls=tls_config(url, tls) if tls else False)
        self.api = self.client.api

    def inspect(self, name: str) -> dict[str, Any] | None:
        try:
            return self.api.inspect_container(name)
        except NotFound:
            return None

    def image_id(self, image: str) -> str | None:
        inspect = self.image_inspect(image)
        return None if inspect is None else inspect["Id"]

    def image_inspect(self, image: str) -> dict[str, Any] | None:
        try:
            return self.api.inspect_image(image)
        except ImageNotFound:
            return None

    def create(self, kwargs: dict[str, Any], extra_networks: list[dict[str, Any]]) -> None:
        kwargs = dict(kwargs)
        if "networking_config" in kwargs:
            kwargs["networking_config"] = {
                net: self.api.create_endpoint_config(aliases=conf.get("Aliases"))
                for net, conf in kwargs["networking_config"].items()
            }
        stop_timeout = kwargs.pop("stop_timeout", None)
        # The SDK's high-level create has no stop_timeout; its argument builder plus the
        # low-level call gives every option one path.
        args = _create_container_args({**kwargs, "version": self.api._version})
        if stop_timeout is not None:
            args["stop_timeout"] = stop_timeout
        container_id = self.api.create_container(**args)["Id"]
        for net in extra_networks:
            self.api.connect_container_to_network(container_id, net["name"], aliases=net["aliases"] or None)

    def start(self, name: str) -> None:
        self.api.start(name)

    def remove(self, name: str) -> None:
        # Anonymous volumes go with the container; named volumes (the data) are never removed here.
        self.api.remove_container(name, force=True, v=False)

    def stop_and_rename(self, name: str, new_name: str) -> None:
        self.api.stop(name)
        self.api.rename(name, new_name)

    def rename(self, name: str, new_name: str) -> None:
        self.api.rename(name, new_name)

    def stop(self, name: str) -> None:
        self.api.stop(name)

    def take_aliases(self, name: str, networks: list[dict[str, Any]]) -> None:
        # The Engine API sets aliases only when it connects: reconnect with them.
        for net in networks:
            self.api.disconnect_container_from_network(name, net["name"])
            self.api.connect_container_to_network(name, net["name"], aliases=net["aliases"])

    def set_restart_policy(self, name: str, policy: dict[str, Any] | None) -> None:
        self.api.update_container(name, restart_policy=policy or {"Name": "no"})

    def images(self) -> list[dict[str, Any]]:
        return self.api.images()

    def used_image_ids(self) -> set[str]:
        return {c["ImageID"] for c in self.api.containers(all=True)}

    def remove_image(self, tag: str) -> None:
        # By tag: the layers another image still needs stay.
        self.api.remove_image(tag)

    def remove_volume(self, name: str) -> bool:
        """Remove a named volume; False when it is gone already."""
        try:
            self.api.remove_volume(name)
        except NotFound:
            return False
        return True

    def logs_tail(self, name: str, lines: int) -> str:
        try:
            raw = self.api.logs(name, tail=lines, stdout=True, stderr=True)
        except NotFound:
            return ""
        return raw.decode("utf-8", "replace")[-4000:]
