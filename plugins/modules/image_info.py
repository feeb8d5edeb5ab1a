#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_info
short_description: Inspect one image, in the controller's process when the tasks run locally
version_added: 0.1.0
description:
  - Returns the image's inspect output in a list (empty when absent), with the key of
    M(community.docker.docker_image_info).
  - This is an action plugin. When the task's connection is local it asks the engine from the
    controller's own process; otherwise it runs M(community.docker.docker_image_info) on the target.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.docker
options:
  name:
    description: Image reference.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Look for the recipe image
  aiops.mlstack.image_info:
    name: mlstack/redis:0123abcd
  register: __image
"""

RETURN = r"""
images:
  description: The image's inspect output, or nothing when it is absent.
  returned: always
  type: list
  elements: dict
"""
