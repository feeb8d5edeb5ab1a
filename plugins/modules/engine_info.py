#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: engine_info
short_description: Whether a Docker engine answers, and what it says of itself, in the controller's process when local
version_added: 0.2.0
description:
  - Asks the Docker engine for C(docker info) and returns it as C(host_info), with the keys of
    M(community.docker.docker_host_info); an engine that does not answer fails the task with a message
    that says where it was asked.
  - This is an action plugin. When the task's connection is local (and the Docker SDK for Python is
    importable) it asks the engine from the controller's own process; otherwise it runs
    M(community.docker.docker_host_info) on the target.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.docker
  - aiops.mlstack.controller
options:
  timeout:
    description: Seconds to wait for the engine's answer.
    type: int
    default: 60
seealso:
  - module: community.docker.docker_host_info
"""

EXAMPLES = r"""
- name: Ask the Docker engine whether it answers
  aiops.mlstack.engine_info:
    timeout: 10
  register: __probe
  failed_when: false
"""

RETURN = r"""
can_talk_to_docker:
  description: Whether the engine answered.
  returned: always
  type: bool
host_info:
  description: The engine's C(docker info).
  returned: when the engine answered
  type: dict
"""
