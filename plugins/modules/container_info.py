#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_info
short_description: Inspect one container, in the controller's process when the tasks run locally
version_added: 0.1.0
description:
  - Returns whether the container exists and Docker's inspect output, with the keys of
    M(community.docker.docker_container_info).
  - This is an action plugin. When the task's connection is local it asks the engine from the
    controller's own process (no module start per unit); otherwise it runs
    M(community.docker.docker_container_info) on the target.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.docker
options:
  name:
    description: Container name or id.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Find the unit's container
  aiops.mlstack.container_info:
    name: mlstack-redis
  register: __info
"""

RETURN = r"""
exists:
  description: Whether the container exists.
  returned: always
  type: bool
container:
  description: Docker's inspect output, or null.
  returned: always
  type: dict
"""
