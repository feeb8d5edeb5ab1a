# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate the whole unit catalog before anything changes.

Every message names the unit, the field and the fix, because the person reading it is
looking at an inventory file, not at this code.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ansible_collections.aiops.mlstack.plugins.module_utils._engine_url import (
    EngineUrlError,
    client_args,
    tls_errors,
    with_tls,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._gpu_placement import request_errors
from ansible_collections.aiops.mlstack.plugins.module_utils._postgres import MEMBERSHIPS
from ansible_collections.aiops.mlstack.plugins.module_utils._redis_acl import FIELD as REDIS_ACL_FIELD
from ansible_collections.aiops.mlstack.plugins.module_utils._redis_acl import permission_errors
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import (
    CROSS_HOST_ROLES,
    DEFAULT_DOCKER_URL,
    UPDATE_ORDERS,
    database_volume,
)
from ansible_collections.aiops.mlstack.plugins.plugin_utils._security import HARDENING_RULES

# The fields of a unit's catalog entry (its host vars) that the collection reads.
CATALOG_FIELDS = ("mlstack_unit_kind", "mlstack_unit_role", "mlstack_port", "mlstack_host_port", "mlstack_docker_host",
                  "mlstack_depends_on", "mlstack_optional", "mlstack_critical", "mlstack_update_order",
                  "mlstack_security_exceptions", "mlstack_privileged", "mlstack_gpu", "mlstack_gpu_memory_mb",
                  "mlstack_gpu_device", "mlstack_data_volume", "mlstack_latency_bound_ms",
                  "mlstack_redis_acl", "mlstack_ports", "mlstack_postgres_roles")
# What a unit may declare it does without (a reason is required); all else is enforced and checked.
# The hardening rules are the ones the verify role judges, so the two lists cannot drift apart.
SECURITY_RULES = ("jwt", *HARDENING_RULES)
UNIT_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
KINDS = ("database", "service", "app")
# The vars of a Docker host (a docker_hosts host) that preflight reads.
DOCKER_HOST_FIELDS = ("mlstack_docker_url", "mlstack_docker_tls", "mlstack_host_address", "mlstack_host_address_any")
DOCKER_URL_SCHEMES = ("unix", "ssh", "tcp")


def _int_port(unit: str, field: str, value: Any, errors: list[str]) -> int | None:
    if value is None:
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        errors.append(f"unit {unit}: {field}={value!r} is not a port number: set an integer 1-65535")
        return None
    if not 1 <= port <= 65535:
        errors.append(f"unit {unit}: {field}={port} is out of range: set an integer 1-65535")
        return None
    return port


def _check_unit(name: str, entry: dict[str, Any], units: dict[str, Any], docker_hosts: set[str],
                errors: list[str], roles: set[str] | None) -> None:
    if not UNIT_NAME_RE.match(name):
        errors.append(f"unit {name!r}: inventory host name is not a valid unit name: use 2-40 lower-case letters, "
                      "digits and '-', starting with a letter (it names containers, volumes and database users)")
    if entry.get("mlstack_unit_kind") not in KINDS:
        errors.append(f"unit {name}: mlstack_unit_kind={entry.get('mlstack_unit_kind')!r}: set one of {list(KINDS)}")
    role = entry.get("mlstack_unit_role")
    if role is not None and roles is not None and role not in roles:
        errors.append(f"unit {name}: mlstack_unit_role={role!r} is not a role of this collection: "
                      f"use one of {sorted(roles)}, or remove it to keep the unit in the catalog undeployed")
    _int_port(name, "mlstack_port", entry.get("mlstack_port"), errors)
    # The GPU request's shape; whether it fits is decided on the Docker host's GPU facts (playbooks/gpu.yml).
    errors.extend(request_errors(name, entry))
    # An app (an imported compose service) may publish nothing and listen on no known port.
    if entry.get("mlstack_port") is None and entry.get("mlstack_unit_kind") != "app":
        errors.append(f"unit {name}: mlstack_port is missing: set the port the unit listens on in its container")
    host = entry.get("mlstack_docker_host")
    if host not in docker_hosts:
        errors.append(f"unit {name}: mlstack_docker_host={host!r} is not in group docker_hosts "
                      f"({sorted(docker_hosts)}): add that machine to docker_hosts or point the unit at one of them")
    deps = entry.get("mlstack_depends_on") or []
    if not isinstance(deps, list):
        errors.append(f"unit {name}: mlstack_depends_on must be a list of unit names")
        return
    for dep in deps:
        if dep == name:
            errors.append(f"unit {name}: mlstack_depends_on names the unit itself: remove {dep!r}")
        elif dep not in units:
            errors.append(f"unit {name}: mlstack_depends_on names unknown unit {dep!r}: "
                          f"add {dep!r} to the inventory or remove it (known units: {sorted(units)})")
        elif _critical(entry) and not _critical(units[dep]):
            # A critical unit that waits for a non-critical one would fail whenever that one degrades.
            errors.append(f"unit {name}: is critical but mlstack_depends_on names non-critical unit {dep!r}: "
                          f"move {dep!r} to mlstack_optional (wired, never awaited) or set mlstack_critical: true "
                          f"on {dep!r}")
    _check_security(name, entry, errors)
    _check_postgres_roles(name, entry, units, errors)
    _check_latency_bound(name, entry.get("mlstack_latency_bound_ms"), errors)
    order = entry.get("mlstack_update_order")
    if order is not None and order not in UPDATE_ORDERS:
        errors.append(f"unit {name}: mlstack_update_order={order!r}: set one of {list(UPDATE_ORDERS)} "
                      "(stop-first for a unit whose data volume one process must own)")


def _check_postgres_roles(name: str, entry: dict[str, Any], units: dict[str, Any], errors: list[str]) -> None:
    # A predefined role given to a service's PostgreSQL role: only the read-only statistics one.
    value = entry.get("mlstack_postgres_roles")
    if value is None:
        return
    if not isinstance(value, list) or any(r not in MEMBERSHIPS for r in value):
        errors.append(f"unit {name}: mlstack_postgres_roles={value!r}: list only {list(MEMBERSHIPS)} "
                      "(read-only statistics for an exporter), or remove it")
    elif not any((units.get(d) or {}).get("mlstack_unit_role") == "postgresql"
                 for d in entry.get("mlstack_depends_on") or []):
        errors.append(f"unit {name}: mlstack_postgres_roles is set but mlstack_depends_on names no PostgreSQL unit: "
                      "add the PostgreSQL unit to mlstack_depends_on or remove mlstack_postgres_roles")


def _check_latency_bound(name: str, value: Any, errors: list[str]) -> None:
    if value is None:
        return
    try:
        bound = float(value)
    except (TypeError, ValueError):
        bound = -1.0
    if isinstance(value, bool) or not bound > 0:
        errors.append(f"unit {name}: mlstack_latency_bound_ms={value!r} is not a latency: set a number of "
                      "milliseconds above 0 (the p95 its liveness probes must stay under), or remove it")


def _check_security(name: str, entry: dict[str, Any], errors: list[str]) -> None:
    if str(entry.get("mlstack_privileged")).lower() in ("true", "yes", "1"):
        errors.append(f"unit {name}: mlstack_privileged=true is refused: a privileged container can take the host; "
                      "remove it and give the unit only what it needs (a device, a capability, a volume)")
    exceptions = entry.get("mlstack_security_exceptions") or {}
    if not isinstance(exceptions, dict):
        errors.append(f"unit {name}: mlstack_security_exceptions must map a rule to the reason it is waived, "
                      f"e.g. {{jwt: 'internal only'}}; rules: {list(SECURITY_RULES)}")
        return
    for rule, reason in sorted(exceptions.items()):
        if rule not in SECURITY_RULES:
            errors.append(f"unit {name}: mlstack_security_exceptions names unknown rule {rule!r}: "
                          f"use one of {list(SECURITY_RULES)}")
        elif not str(reason or "").strip():
            errors.append(f"unit {name}: mlstack_security_exceptions.{rule} has no reason: say why the unit "
                          "needs it (the reason goes into the evidence)")
    if "jwt" in exceptions and entry.get("mlstack_host_port") is not None:
        errors.append(f"unit {name}: waives jwt but publishes mlstack_host_port={entry.get('mlstack_host_port')}: "
                      "a unit without authentication must stay on the internal network - remove one of them")


def _critical(entry: dict[str, Any]) -> bool:
    return str(entry.get("mlstack_critical")).lower() in ("true", "yes", "1")


def _check_ports(units: dict[str, dict[str, Any]], errors: list[str]) -> None:
    taken: dict[tuple[str, int], str] = {}
    for name in sorted(units):
        entry = units[name]
        ports = [("mlstack_host_port", _int_port(name, "mlstack_host_port", entry.get("mlstack_host_port"), []))]
        ports += [("mlstack_ports", _int_port(name, "mlstack_ports", p.get("published"), errors))
                  for p in entry.get("mlstack_ports") or []]
        for field, port in dict.fromkeys((f, p) for f, p in ports if p is not None):
            key = (str(entry.get("mlstack_docker_host")), port)
            if key in taken:
                errors.append(f"unit {name}: {field}={port} is already published by unit {taken[key]} on "
                              f"{key[0]}: give one of them another host port")
            else:
                taken[key] = name


def _check_volumes(units: dict[str, dict[str, Any]], errors: list[str]) -> None:
    """A service's data volume: a Docker volume name, its own (one owner per Docker host), replaced stop-first."""
    owners: dict[tuple[str, str], str] = {
        (str(entry.get("mlstack_docker_host")), database_volume(name)): name
        for name, entry in units.items() if entry.get("mlstack_unit_kind") == "database"}
    for name in sorted(units):
        volume = units[name].get("mlstack_data_volume")
        if not volume:
            continue
        if not isinstance(volume, str) or not VOLUME_NAME_RE.match(volume):
            errors.append(f"unit {name}: mlstack_data_volume={volume!r} is not a Docker volume name: use letters, "
                          "digits, '_', '.' and '-', starting with a letter or digit (e.g. mlstack-<unit>-data)")
            continue
        key = (str(units[name].get("mlstack_docker_host")), volume)
        if key in owners and owners[key] != name:
            errors.append(f"unit {name}: mlstack_data_volume={volume!r} is already the data volume of unit "
                          f"{owners[key]} on {key[0]}: give each unit its own volume")
        else:
            owners[key] = name
        if (units[name].get("mlstack_update_order") or "start-first") != "stop-first":
            errors.append(f"unit {name}: has mlstack_data_volume={volume!r} but is replaced start-first, which runs "
                          "two containers on the volume during an update: set mlstack_update_order: stop-first")


def _check_cycles(units: dict[str, dict[str, Any]], errors: list[str]) -> None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in units.get(node, {}).get("mlstack_depends_on") or []:
            if dep not in units or dep == node:
                continue
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [node, dep]
                errors.append(f"unit {node}: mlstack_depends_on forms a cycle {' -> '.join(cycle)}: "
                              "remove one of these dependencies")
            elif state.get(dep) is None:
                visit(dep, path + [dep])
        state[node] = 2

    for name in sorted(units):
        if state.get(name) is None:
            visit(name, [name])


def _check_redis_acl(units: dict[str, dict[str, Any]], errors: list[str]) -> None:
    # A Redis role renders the ACL file for its clients only: a permission on any other unit
    # would be silently ignored, and a bad one would fail ACL LOAD after the run has begun.
    redis_units = {name for name, entry in units.items() if entry.get("mlstack_unit_role") == "redis"}
    for name in sorted(units):
        value = units[name].get(REDIS_ACL_FIELD)
        if value is None:
            continue
        if not redis_units & set(units[name].get("mlstack_depends_on") or []):
            errors.append(f"unit {name}: {REDIS_ACL_FIELD} is set but mlstack_depends_on names no Redis unit: "
                          f"add the Redis unit to mlstack_depends_on or remove {REDIS_ACL_FIELD}")
            continue
        errors.extend(permission_errors(name, value))


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - any failure to import means the transport cannot be used
        return False
    return True


def _hosts_of(docker_hosts: Mapping[str, Mapping[str, Any] | None] | Iterable[str]) -> dict[str, dict[str, Any]]:
    """Docker host name -> its vars; a bare list of names means hosts that set nothing."""
    if isinstance(docker_hosts, Mapping):
        return {str(name): dict(hostvars or {}) for name, hostvars in docker_hosts.items()}
    return {str(name): {} for name in docker_hosts}


def _flag(value: Any) -> bool:
    return str(value).lower() in ("true", "yes", "1", "on")


def _address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(value).strip().strip("[]"))
    except ValueError:
        return None


def _check_docker_host(host: str, hostvars: Mapping[str, Any], errors: list[str],
                       importable: Callable[[str], bool]) -> None:
    """A Docker host's engine URL, its TLS client files and the address it publishes on."""
    address = hostvars.get("mlstack_host_address")
    if address is not None and not isinstance(address, str):
        errors.append(f"docker host {host}: mlstack_host_address={address!r} is not an address: set the host's "
                      "private IP address or name (e.g. 10.0.0.21), or remove it")
    elif address is not None and not address.strip():
        errors.append(f"docker host {host}: mlstack_host_address is empty: set the host's private IP address or "
                      "name (e.g. 10.0.0.21), or remove it")
    elif address is not None:
        ip = _address(address)
        if ip is not None and ip.is_unspecified and not _flag(hostvars.get("mlstack_host_address_any")):
            errors.append(f"docker host {host}: mlstack_host_address={address!r} would publish the ports of its "
                          "units on every interface of the host, public ones included: set the host's private "
                          "address (e.g. 10.0.0.21), or set mlstack_host_address_any: true to publish on all "
                          "interfaces on purpose")
    errors.extend(f"docker host {host}: {error}" for error in _engine_errors(hostvars, importable))


def _engine_errors(hostvars: Mapping[str, Any], importable: Callable[[str], bool]) -> list[str]:
    """A Docker host's ``mlstack_docker_url`` and ``mlstack_docker_tls``: an engine this collection reaches."""
    url = hostvars.get("mlstack_docker_url")
    url = DEFAULT_DOCKER_URL if url is None or url == "" else url
    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    tls = hostvars.get("mlstack_docker_tls")
    if scheme not in DOCKER_URL_SCHEMES:
        return [f"mlstack_docker_url={url!r} is not an engine URL this collection speaks: use "
                "unix:///var/run/docker.sock (the default: the host's own socket, reached through Ansible's SSH "
                "connection), ssh://user@host, or tcp://host:2376 with mlstack_docker_tls"]
    errors = tls_errors(tls, url)
    if scheme == "tcp" and not tls and not urlsplit(url).query:
        # A plain tcp:// engine is root for anyone who reaches its port.
        errors.append(f"mlstack_docker_url={url!r} is a tcp:// engine without TLS: set mlstack_docker_tls "
                      "{ca_path, cert_path, key_path} (the engine's CA, a client certificate and its key, as "
                      "files on the host's Ansible connection) for an engine run with --tlsverify, or use the "
                      "default unix:///var/run/docker.sock, reached over Ansible's SSH connection")
    elif scheme == "tcp" and not errors:
        try:
            client_args(with_tls(url, tls))
        except EngineUrlError as exc:
            errors.append(f"mlstack_docker_url={url!r}: {exc}")
    if scheme == "ssh" and not importable("paramiko"):
        errors.append(f"mlstack_docker_url={url!r} needs paramiko on the controller (the Docker SDK's ssh:// "
                      "transport), which cannot be imported: pip install paramiko (it is in requirements.txt), or "
                      "use the default unix:///var/run/docker.sock, which the units' tasks reach on their Docker "
                      "host over Ansible's SSH connection")
    return errors


def _check_cross_host(units: dict[str, dict[str, Any]], hosts: dict[str, dict[str, Any]],
                      errors: list[str]) -> None:
    """A dependency on a unit of another Docker host: a role that crosses hosts, an address to reach it on."""
    for name in sorted(units):
        entry = units[name]
        here = entry.get("mlstack_docker_host")
        for field in ("mlstack_depends_on", "mlstack_optional"):
            deps = entry.get(field) or []
            if not isinstance(deps, list):
                continue
            for dep in dict.fromkeys(deps):
                there = (units.get(dep) or {}).get("mlstack_docker_host")
                # Unknown units and hosts are reported by the unit checks.
                if dep == name or dep not in units or here not in hosts or there not in hosts or here == there:
                    continue
                role = units[dep].get("mlstack_unit_role")
                if role not in CROSS_HOST_ROLES:
                    what = f"role {role}" if role else "no mlstack_unit_role"
                    errors.append(f"unit {name}: {field} names {dep} ({what}) on Docker host {there}, but {name} "
                                  f"runs on {here} and only {' and '.join(CROSS_HOST_ROLES)} units are reached "
                                  f"across Docker hosts in this release: place {name} and {dep} on one host "
                                  f"(mlstack_docker_host: {there} on {name}, or {here} on {dep})")
                    continue
                address = hosts[there].get("mlstack_host_address")
                if address is None or not str(address).strip():
                    errors.append(f"unit {name}: {field} names {dep} on Docker host {there}, which has no "
                                  f"mlstack_host_address: set mlstack_host_address on {there} to its private "
                                  f"address, or place {name} on {there}")
                    continue
                ip = _address(address)
                if ip is not None and ip.is_loopback:
                    errors.append(f"unit {name}: {field} names {dep} on Docker host {there}, whose "
                                  f"mlstack_host_address={address!r} is a loopback address {here} cannot reach: "
                                  f"set mlstack_host_address on {there} to its private address, or place {name} "
                                  f"on {there}")


def validate(units: dict[str, dict[str, Any]],
             docker_hosts: Mapping[str, Mapping[str, Any] | None] | Iterable[str],
             roles: set[str] | None = None, *,
             importable: Callable[[str], bool] = _importable) -> list[str]:
    """All problems of the catalog, in a stable order; an empty list means go.

    ``docker_hosts``: each Docker host's vars (:data:`DOCKER_HOST_FIELDS`) by name, or only
    the names (hosts that set none of them). ``roles``: the unit roles that exist; None skips
    that check. ``importable``: whether the controller can import a module (paramiko).
    """
    hosts = _hosts_of(docker_hosts)
    errors: list[str] = []
    if not units:
        errors.append("the inventory has no units: add hosts to groups mlstack_databases / mlstack_services")
    for name in sorted(units):
        _check_unit(name, units[name], units, set(hosts), errors, roles)
    _check_ports(units, errors)
    _check_volumes(units, errors)
    _check_cycles(units, errors)
    _check_redis_acl(units, errors)
    for host in sorted(hosts):
        _check_docker_host(host, hosts[host], errors, importable)
    _check_cross_host(units, hosts, errors)
    return errors


def catalog_of(hostvars: Mapping[str, Any], names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each named unit's catalog entry, read from hostvars (templated on access)."""
    return {name: {field: hostvars[name].get(field) for field in CATALOG_FIELDS} for name in names}


def docker_hosts_of(hostvars: Mapping[str, Any], names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each named Docker host's vars that preflight reads, from hostvars (templated on access)."""
    return {name: {field: hostvars[name].get(field) if name in hostvars else None for field in DOCKER_HOST_FIELDS}
            for name in names}


def clients_of(units: dict[str, dict[str, Any]], database: str) -> list[str]:
    """Service units that declare a dependency on ``database``: each gets its own credentials."""
    return sorted(name for name, entry in units.items()
                  if entry.get("mlstack_unit_kind") == "service"
                  and database in (entry.get("mlstack_depends_on") or []))
