# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog filters: who uses which database, and under which identifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._redis_acl import acl_rules
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import db_identifier
from ansible_collections.aiops.mlstack.plugins.plugin_utils._preflight import catalog_of, clients_of


def unit_clients(hostvars: Mapping[str, Any], units: list[str], database: str) -> list[dict[str, Any]]:
    """Service units among ``units`` that depend on ``database``, with their identifiers.

    Each gets a user ``name``, a Redis key ``prefix`` and a PostgreSQL ``database`` of its own,
    ``redis_acl``, its catalog's ``mlstack_redis_acl`` (None: the default profile), and
    ``member_of``, its catalog's ``mlstack_postgres_roles`` (predefined roles such as pg_monitor).
    """
    catalog = catalog_of(hostvars, units)
    return [{"unit": name, "name": db_identifier(name), "prefix": f"{name}:", "database": db_identifier(name),
             "redis_acl": catalog[name].get("mlstack_redis_acl"),
             "member_of": list(catalog[name].get("mlstack_postgres_roles") or [])}
            for name in clients_of(catalog, database)]


def redis_acl_rules(client: Mapping[str, Any]) -> str:
    """The command rules of a Redis service user's ACL line (see module_utils/_redis_acl.py)."""
    return acl_rules(client.get("redis_acl"), str(client.get("unit") or client.get("name") or ""))


def credentials(clients: list[dict[str, str]], secrets: Mapping[str, str], fields: list[str]) -> list[dict[str, str]]:
    """Clients with their passwords, keeping only ``fields`` besides name and password."""
    missing = [c["name"] for c in clients if c["name"] not in secrets]
    if missing:
        raise ValueError(f"no secret generated for client(s) {missing}")
    return [{"name": c["name"], "password": secrets[c["name"]], **{f: c[f] for f in fields}} for c in clients]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"unit_clients": unit_clients, "db_identifier": db_identifier, "credentials": credentials,
                "redis_acl_rules": redis_acl_rules}
