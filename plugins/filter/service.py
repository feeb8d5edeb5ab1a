# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a service unit's container is given, derived from the catalog (docs/service-contract.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.aiops.mlstack.plugins.plugin_utils._preflight import catalog_of, db_identifier


def service_wiring(hostvars: Mapping[str, Any], unit: str, units: list[str]) -> dict[str, Any]:
    """Environment and secret files of ``unit``: one block per dependency it declares.

    Returns ``env`` (non-secret), ``secrets`` (file name in /run/secrets -> [secret unit,
    secret name] on the controller) and ``depends_on`` (container names to wait for).
    """
    catalog = catalog_of(hostvars, units)
    entry = catalog[unit]
    ident = db_identifier(unit)
    env: dict[str, str] = {"MLSTACK_UNIT": unit, "PORT": str(entry["mlstack_port"]), "JWT_AUDIENCE": unit,
                           "JWT_PUBLIC_KEY_FILE": "/run/secrets/jwt_public.pem"}
    secrets: dict[str, list[str]] = {}
    # Optional units (chat's reasoning) are wired when they are in the catalog, never awaited.
    optional = [u for u in entry.get("mlstack_optional") or [] if u in catalog]
    for dep in list(entry.get("mlstack_depends_on") or []) + optional:
        role = catalog.get(dep, {}).get("mlstack_unit_role")
        port = str(catalog.get(dep, {}).get("mlstack_port"))
        if role == "redis":
            env.update(REDIS_HOST=dep, REDIS_PORT=port, REDIS_USER=ident, REDIS_PREFIX=f"{unit}:",
                       REDIS_PASSWORD_FILE="/run/secrets/redis_password")
            secrets["redis_password"] = [dep, ident]
        elif role == "postgresql":
            env.update(POSTGRES_HOST=dep, POSTGRES_PORT=port, POSTGRES_USER=ident, POSTGRES_DB=ident,
                       POSTGRES_PASSWORD_FILE="/run/secrets/postgres_password")
            secrets["postgres_password"] = [dep, ident]
        elif role == "neo4j":
            # Community edition has one user: every client shares the neo4j user's password.
            env.update(NEO4J_URI=f"bolt://{dep}:{port}", NEO4J_USER="neo4j",
                       NEO4J_PASSWORD_FILE="/run/secrets/neo4j_password")
            secrets["neo4j_password"] = [dep, "neo4j"]
        elif role == "qdrant":
            # One API key per Qdrant unit (a read-write key; Qdrant has no per-client keys).
            env.update(QDRANT_URL=f"http://{dep}:{port}", QDRANT_API_KEY_FILE="/run/secrets/qdrant_api_key")
            secrets["qdrant_api_key"] = [dep, "api_key"]
        else:
            # Another service: reachable by its unit name on the backend network.
            env[f"{db_identifier(dep).upper()}_URL"] = f"http://{dep}:{port}"
    awaited = [f"mlstack-{dep}" for dep in entry.get("mlstack_depends_on") or []]
    return {"env": env, "secrets": secrets, "depends_on": awaited}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"service_wiring": service_wiring}
