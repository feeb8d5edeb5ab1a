#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_adopt
short_description: Adopt a unit's container from a running compose project, or say why it cannot be
version_added: 0.2.0
description:
  - Looks for the container Compose made for O(project) and O(service) (its C(com.docker.compose.*) labels).
    When every setting the compose file declares is what O(spec) declares, the container is adopted - renamed
    to O(name), never recreated, its volumes and data untouched - and later runs keep it while it still matches.
  - When it differs, it is stopped and kept as the unit's previous container (O(name)C(_previous), the rollback
    target; its volumes are kept) and the result names the settings that differ, so that
    M(aiops.mlstack.container) creates the unit's own container.
  - The collection's additions (no-new-privileges, log rotation, a port holder) are not compared; an adopted
    container gets them at its next recreate, and verify's hardening check reports their absence until then.
  - Check mode reports what it would do.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.docker
options:
  name:
    description: The unit's container name (C(mlstack-<unit>)).
    type: str
    required: true
  project:
    description: The compose project the unit was imported from.
    type: str
    required: true
  service:
    description: The compose service the unit was imported from.
    type: str
    required: true
  spec:
    description: The unit's container spec, as given to M(aiops.mlstack.container).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Adopt the unit's container from the running compose project
  aiops.mlstack.compose_adopt:
    name: mlstack-web
    project: shop
    service: web
    spec: "{{ __app_spec }}"
  register: __adopt
"""

RETURN = r"""
adopted:
  description: Whether O(name) is now (or still) the compose container, kept as it is.
  returned: always
  type: bool
action:
  description:
    - C(adopted), C(kept) (adopted before, still matching), C(replaced) (differs), or C(none) (nothing to adopt).
  returned: always
  type: str
differs:
  description: The settings in which the compose container is not what the unit declares.
  returned: always
  type: list
  elements: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiops.mlstack.plugins.module_utils._compose_adopt import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    differences,
    is_compose_container,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._container_spec import normalize_spec
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import engine_for
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import previous_name


def adopt(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    engine = engine_for(module)
    spec = normalize_spec(params["spec"])
    image_id = engine.image_id(spec["image"])
    current = engine.inspect(params["name"])
    if current is not None:
        # Adopted on an earlier run (Compose's labels, none of ours) is kept while it matches.
        if not is_compose_container(current, params["project"], params["service"]):
            return {"changed": False, "adopted": False, "action": "none", "differs": []}
        differs = differences(current, spec, image_id)
        return {"changed": False, "adopted": not differs, "action": "kept" if not differs else "replaced",
                "differs": differs}
    found = engine.api.containers(all=True, filters={"label": [f"{PROJECT_LABEL}={params['project']}",
                                                               f"{SERVICE_LABEL}={params['service']}"]})
    if not found:
        return {"changed": False, "adopted": False, "action": "none", "differs": []}
    theirs = engine.inspect(found[0]["Id"])
    differs = differences(theirs, spec, image_id) if theirs["State"].get("Running") else ["not running"]
    if not module.check_mode:
        if differs:
            # Its data stays in its volumes; the container is the rollback target until the next update.
            engine.stop_and_rename(theirs["Id"], previous_name(params["name"]))
        else:
            engine.rename(theirs["Id"], params["name"])
    return {"changed": True, "adopted": not differs, "action": "replaced" if differs else "adopted",
            "differs": differs, "compose_container": theirs["Name"].lstrip("/")}


def main() -> None:
    module = AnsibleModule(
        argument_spec={"name": {"type": "str", "required": True}, "project": {"type": "str", "required": True},
                       "service": {"type": "str", "required": True}, "spec": {"type": "dict", "required": True},
                       "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"}},
        supports_check_mode=True)
    module.exit_json(**adopt(module))


if __name__ == "__main__":
    main()
