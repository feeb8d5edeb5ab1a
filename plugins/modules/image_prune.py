#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_prune
short_description: Remove the recipe images that no container uses any more
version_added: 0.1.0
description:
  - Every change of a recipe gives its image a new content-addressed tag (C(mlstack/<recipe>:<hash>)),
    and the old one stays on the Docker host. This module removes, by tag, the images under O(prefix)
    that no container uses, in any state. The serving container's image, the image of the container
    kept for a rollback (C(<name>_previous)) and that of a stopped degraded unit are never touched.
  - Nor is a repository's newest image when it is newer than every image of that repository a
    container uses, or none is used - the image a run supplied for a unit whose container then
    failed (a first deploy that waited in vain on a lost Docker host, a rolled-back candidate).
    The next run needs it again; removing it would make that run build it anew, or fail where
    there is no registry.
  - Images are removed by tag, so layers that another image still needs stay, and so does the
    build cache of the images that remain.
  - Check mode reports what would be removed.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.docker
options:
  prefix:
    description: Only repositories whose name starts with this are considered.
    type: str
    default: mlstack/
  keep_unused:
    description: Of the unused images, the newest this many per repository are kept too.
    type: int
    default: 0
  unit:
    description: Name the evidence record is filed under (the Docker host).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Remove superseded recipe images
  aiops.mlstack.image_prune:
    unit: "{{ inventory_hostname }}"
"""

RETURN = r"""
removed:
  description: The tags removed (or, in check mode, that would be), each with tag, id, created and size.
  returned: always
  type: list
  elements: dict
reclaimed_bytes:
  description: Sum of the removed images' sizes as Docker reports them (shared layers counted in full).
  returned: always
  type: int
evidence:
  description: One evidence record, check C(images_pruned).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import (  # noqa: E402
    DOCKER_HOST_ARG,
    DockerException,
    engine_for,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record  # noqa: E402
from ansible_collections.aiops.mlstack.plugins.module_utils._images import superseded  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "prefix": {"type": "str", "default": "mlstack/"},
            "keep_unused": {"type": "int", "default": 0},
            "unit": {"type": "str", "required": True},
            **DOCKER_HOST_ARG,
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["keep_unused"] < 0:
        module.fail_json(msg=f"keep_unused={p['keep_unused']}: give 0 or more images to keep per repository")
    try:
        engine = engine_for(module)
        doomed = superseded(engine.images(), engine.used_image_ids(), p["prefix"], p["keep_unused"])
        if not module.check_mode:
            for entry in doomed:
                engine.remove_image(entry["tag"])
    except DockerException as exc:
        module.fail_json(msg=f"image clean-up on {p['unit']}: {exc}")
    reclaimed = sum(e["size"] for e in doomed)
    verb = "would remove" if module.check_mode else "removed"
    message = f"{verb} {len(doomed)} image(s) no container uses ({reclaimed / 1e9:.2f} GB)"
    observed = {"removed": [e["tag"] for e in doomed], "reclaimed_bytes": reclaimed, "prefix": p["prefix"]}
    module.exit_json(changed=bool(doomed), removed=doomed, reclaimed_bytes=reclaimed,
                     evidence=record(p["unit"], "images_pruned", True, observed, message))


if __name__ == "__main__":
    main()
