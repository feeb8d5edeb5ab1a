# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One unit as the collection resolves it (rules in module_utils/_unit.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.aiops.mlstack.plugins.module_utils._unit import docker_host_of, resolve, resolve_settings

DOCUMENTATION = r"""
name: unit
short_description: One unit of the catalog with every fallback applied and every name derived
version_added: 0.2.0
description:
  - Reads the unit's entry (its host vars), the collection-wide settings visible to it and the
    entries of the units it names in C(mlstack_depends_on) and C(mlstack_optional), and returns
    the resolved unit. Roles, verify, the playbooks and the wiring filter read a unit's names and
    settings only from here.
  - The companion filter C(aiops.mlstack.unit_settings) returns the collection-wide settings alone,
    for plays on Docker hosts.
options:
  _input:
    description: The unit's name (its inventory host name), usually C(inventory_hostname).
    type: str
    required: true
  hostvars:
    description: C(hostvars), from which the entries are read.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Remove a unit's containers
  aiops.mlstack.container:
    name: "{{ __unit.container }}"
    unit: "{{ __unit.name }}"
    state: absent
    docker_host: "{{ __unit.docker_url }}"
  vars:
    __unit: "{{ inventory_hostname | aiops.mlstack.unit(hostvars) }}"

- name: The engine URL of a Docker host's plays
  ansible.builtin.debug:
    msg: "{{ (inventory_hostname | aiops.mlstack.unit_settings(hostvars)).docker_url }}"
"""

RETURN = r"""
_value:
  description:
    - The resolved unit. Names - C(container), C(candidate), C(previous), C(replaced), C(holder);
      C(data_volume) (a database's own, a service's C(mlstack_data_volume) or none), C(runtime_dir),
      C(secrets_dir), C(docker_host), C(docker_url); C(networks) in attach order; C(depends_on), each
      dependency's C(unit), C(container), C(host), C(port), C(awaited), C(secret_file) and C(secret)
      (the secret's unit and name); C(awaited), the containers waited for; C(critical),
      C(update_order), C(recreate), C(image_source), C(hardening) (the baseline every container runs
      with), C(gpu) (C(mode), C(memory_mb), C(device)), C(port), C(host_port), C(port_holder),
      C(shm_size) and the remaining settings (module_utils/_unit.py, C(ResolvedUnit)).
  type: dict
"""


def _vars_of(hostvars: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    try:
        return hostvars[name]
    except KeyError as exc:
        raise AnsibleFilterError(f"aiops.mlstack.unit: {name!r} is not an inventory host") from exc


def _home() -> str:
    # The controller's home, as lookup('env', 'HOME') read it (the secrets live on the controller).
    return os.environ.get("HOME") or str(Path.home())


def _remote_clients(name: str, host: str, hostvars: Mapping[str, Any]) -> tuple[str, ...]:
    """The units on other Docker hosts whose entries name ``name`` as a dependency."""
    clients = []
    for other in hostvars:
        entry = hostvars[other]
        if other == name or not entry.get("mlstack_unit_kind"):
            continue
        named = list(entry.get("mlstack_depends_on") or []) + list(entry.get("mlstack_optional") or [])
        if name in named and docker_host_of(entry) != host:
            clients.append(str(other))
    return tuple(sorted(clients))


def unit(name: str, hostvars: Mapping[str, Any]) -> dict[str, Any]:
    """``inventory_hostname | aiops.mlstack.unit(hostvars)``: the resolved unit as plain data."""
    entry = _vars_of(hostvars, name)
    named = list(entry.get("mlstack_depends_on") or []) + list(entry.get("mlstack_optional") or [])
    # Only units are peers: an optional unit outside the catalog is not wired.
    peers = {dep: hostvars[dep] for dep in named if dep in hostvars and hostvars[dep].get("mlstack_unit_kind")}
    host = docker_host_of(entry)
    hosts = {h: hostvars[h] for h in {host, *(docker_host_of(p) for p in peers.values())} if h in hostvars}
    # Only a database serves other hosts' units (preflight refuses any other cross-host dependency).
    clients = _remote_clients(name, host, hostvars) if entry.get("mlstack_unit_kind") == "database" else ()
    try:
        return resolve(name, entry, entry, peers=peers, home=_home(), hosts=hosts, remote_clients=clients).as_dict()
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"aiops.mlstack.unit: unit {name}: {exc}") from exc


def unit_settings(name: str, hostvars: Mapping[str, Any]) -> dict[str, Any]:
    """``inventory_hostname | aiops.mlstack.unit_settings(hostvars)``: the collection-wide settings."""
    return resolve_settings(_vars_of(hostvars, name), _home()).as_dict()


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"unit": unit, "unit_settings": unit_settings}
