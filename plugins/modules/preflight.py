#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: preflight
short_description: Validate the whole unit catalog before anything changes
version_added: 0.1.0
description:
  - Reads each unit's catalog entry (C(mlstack_unit_kind), C(mlstack_port), C(mlstack_host_port),
    C(mlstack_docker_host), C(mlstack_depends_on)) from the inventory and fails, listing every
    problem with the unit, the field and the fix, when a unit name is invalid, a dependency is
    unknown, self-referencing or cyclic, two units publish one host port on one Docker host, a
    unit points at a machine outside C(docker_hosts), or a unit's C(mlstack_redis_acl) (the Redis
    commands it may run) is not a profile or a list of Redis 7.0 commands and categories, grants
    C(@all), C(@admin), C(@dangerous) or C(@scripting) or a command in them, or is set on a unit
    that depends on no Redis unit.
  - It reads each Docker host's own vars too (C(mlstack_docker_url), C(mlstack_docker_tls),
    C(mlstack_host_address), C(mlstack_host_address_any)) and fails, naming the unit or the host,
    the field and the fix, when a unit depends (C(mlstack_depends_on) or C(mlstack_optional)) on a
    unit of another Docker host whose role does not cross hosts in this release (only
    C(postgresql) and C(redis) do), or whose host has no C(mlstack_host_address) (or a loopback
    one); when a host's C(mlstack_host_address) is C(0.0.0.0) or C(::) without
    C(mlstack_host_address_any=true); when an engine URL is C(tcp://) without C(mlstack_docker_tls)
    (a plain TCP engine is root for anyone who reaches its port), when C(mlstack_docker_tls) is not a
    mapping of absolute C(ca_path), C(cert_path), C(key_path) (and C(verify)) or is set on a
    C(unix://) or C(ssh://) engine; and when an C(ssh://) engine URL is set
    but the controller cannot import paramiko.
  - This is an action plugin that runs on the controller and changes nothing.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.controller
options:
  units:
    description: Inventory host names of the units to validate.
    type: list
    elements: str
    required: true
  docker_hosts:
    description:
      - Inventory host names of the Docker machines.
      - Their vars (engine URL, TLS files, address) are read from C(hostvars).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Validate the unit catalog
  aiops.mlstack.preflight:
    units: "{{ groups['mlstack_units'] }}"
    docker_hosts: "{{ groups['docker_hosts'] }}"
  run_once: true
"""

RETURN = r"""
units:
  description: The catalog entries that were validated.
  returned: always
  type: dict
evidence:
  description: One C(catalog) evidence record per unit (critical, kind, role, port, dependencies).
  returned: always
  type: list
  elements: dict
errors:
  description: Every problem found, each naming the unit, the field and the fix.
  returned: always
  type: list
  elements: str
"""
