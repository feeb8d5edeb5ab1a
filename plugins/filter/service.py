# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a service unit's container is given, derived from its resolved unit (docs/service-contract.md)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.aiops.mlstack.plugins.module_utils._unit import (
    TLS_CA_FILE,
    TLS_CA_SECRET,
    TLS_CA_UNIT,
    db_identifier,
)


def _dependency_env(client: str, dep: Mapping[str, Any]) -> dict[str, str]:
    """The environment one dependency gives ``client``: where it answers and where its credentials are."""
    host, port, ident = dep["host"], str(dep["port"]), db_identifier(client)
    files = f"/run/secrets/{dep['secret_file']}"
    # Across Docker hosts the server is verified against the stack's CA by its host's address.
    ca = f"/run/secrets/{TLS_CA_SECRET}"
    if dep["role"] == "redis":
        tls = {"REDIS_TLS": "1", "REDIS_TLS_CA_FILE": ca} if dep.get("cross_host") else {}
        return {"REDIS_HOST": host, "REDIS_PORT": port, "REDIS_USER": ident, "REDIS_PREFIX": f"{client}:",
                "REDIS_PASSWORD_FILE": files, **tls}
    if dep["role"] == "postgresql":
        tls = {"POSTGRES_SSLMODE": "verify-full", "POSTGRES_SSLROOTCERT": ca} if dep.get("cross_host") else {}
        return {"POSTGRES_HOST": host, "POSTGRES_PORT": port, "POSTGRES_USER": ident, "POSTGRES_DB": ident,
                "POSTGRES_PASSWORD_FILE": files, **tls}
    if dep["role"] == "neo4j":
        # Community edition has one user: every client shares the neo4j user's password.
        return {"NEO4J_URI": f"bolt://{host}:{port}", "NEO4J_USER": "neo4j", "NEO4J_PASSWORD_FILE": files}
    if dep["role"] == "qdrant":
        # One API key per Qdrant unit (a read-write key; Qdrant has no per-client keys).
        return {"QDRANT_URL": f"http://{host}:{port}", "QDRANT_API_KEY_FILE": files}
    # Another service: reachable by its unit name on the backend network.
    return {f"{db_identifier(dep['unit']).upper()}_URL": f"http://{host}:{port}"}


def service_wiring(unit: Mapping[str, Any]) -> dict[str, Any]:
    """Environment and secret files of a resolved unit (``aiops.mlstack.unit``): one block per dependency.

    Returns ``env`` (non-secret), ``secrets`` (file name in /run/secrets -> [secret unit,
    secret name] on the controller) and ``depends_on`` (container names to wait for).
    """
    name = unit["name"]
    env: dict[str, str] = {"MLSTACK_UNIT": name, "PORT": str(unit["port"]), "JWT_AUDIENCE": name,
                           "JWT_PUBLIC_KEY_FILE": "/run/secrets/jwt_public.pem"}
    secrets: dict[str, list[str]] = {}
    rotation_files: list[str] = []
    for dep in unit["depends_on"]:
        env.update(_dependency_env(name, dep))
        if dep["secret"]:
            secrets[dep["secret_file"]] = list(dep["secret"])
            if dep["role"] == "neo4j":
                rotation_files.append(dep["secret_file"])
        if dep.get("cross_host"):
            secrets[TLS_CA_SECRET] = [TLS_CA_UNIT, TLS_CA_FILE]
    return {"env": env, "secrets": secrets, "rotation_files": rotation_files, "depends_on": list(unit["awaited"])}


def config_paths(files: Mapping[str, str], directory: str, owner: int, dir_mode: str = "0500",
                 file_mode: str = "0400") -> dict[str, list[dict[str, Any]]]:
    """The ``directories`` and ``files`` of aiops.mlstack.unit_reconcile for configuration files
    (relative name -> content) under ``directory``: the directory itself and each
    subdirectory a name holds, parents first; none when there are no files."""
    if not files:
        return {"directories": [], "files": []}
    subdirs = sorted({str(PurePosixPath(name).parent) for name in files} - {"."})
    for name in files:
        if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
            raise AnsibleFilterError(f"config_paths: file name {name!r} must be relative and stay in {directory}")
    return {
        "directories": [{"path": path, "owner": owner, "mode": dir_mode}
                        for path in [directory, *(f"{directory}/{sub}" for sub in subdirs)]],
        "files": [{"path": f"{directory}/{name}", "content": content, "owner": owner, "mode": file_mode}
                  for name, content in files.items()],
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"service_wiring": service_wiring, "config_paths": config_paths}
