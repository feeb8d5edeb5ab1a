#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: network
short_description: A Docker network present as declared, answered in the controller's process when it is
version_added: 0.2.0
description:
  - Makes sure a bridge network exists, internal or not, with the given labels - as
    M(community.docker.docker_network) with C(state=present) does, and through it whenever there is
    anything to do.
  - This is an action plugin. When the task's connection is local it inspects the network from the
    controller's own process and, when the network already matches, returns at once with C(changed=false)
    (no module start). A network that is absent or differs, or any other connection, is handed to
    M(community.docker.docker_network) with the same options, whose result it returns.
  - Labels not given here (for example the ones Docker Compose puts on a project's network) are left alone.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.docker
attributes:
  check_mode:
    support: full
    details: A matching network is reported unchanged; anything else is M(community.docker.docker_network)'s check mode.
  diff_mode:
    support: full
    details: M(community.docker.docker_network)'s diff when it runs; none when nothing changes.
options:
  name:
    description: Network name.
    type: str
    required: true
  internal:
    description: Whether the network is internal (no route out of the host).
    type: bool
    default: false
  labels:
    description: Labels the network must carry.
    type: dict
    default: {}
seealso:
  - module: community.docker.docker_network
"""

EXAMPLES = r"""
- name: Create the internal backend network
  aiops.mlstack.network:
    name: mlstack_backend
    internal: true
    labels:
      io.mlstack.managed: "true"
"""

RETURN = r"""
network:
  description: The network's inspect output, as M(community.docker.docker_network) returns it.
  returned: success
  type: dict
"""
