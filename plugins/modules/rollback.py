#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollback
short_description: List a unit's restorable states, or put its previous good container back
version_added: 0.1.0
description:
  - Every successful recreate by M(aiops.mlstack.container) keeps the replaced container,
    stopped, as C(<name>_previous). That container is the unit's previous good state, with its
    image (which Docker keeps while the container exists), its settings and its spec hash.
  - With O(list_only=true) the module reports the states that exist and changes nothing.
  - Otherwise it puts the previous container back under the unit's name once it is healthy. A
    previous container that binds no host port is started beside the serving one, which stops
    only then (no gap); one that binds a host port can only start after the serving one stopped.
    The replaced container becomes the new C(<name>_previous), so a second rollback rolls
    forward again. If the restored container does not become healthy, the replaced one is put
    back (or was never stopped) and the task fails. Data volumes are never touched.
  - The next deploy of the unit (playbooks/phase5.yml) brings it back to the declared spec;
    pin the previous image or settings in the inventory to keep the rollback.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.docker
options:
  name:
    description: The unit's container name.
    type: str
    required: true
  unit:
    description: Catalog unit, recorded in the evidence.
    type: str
    required: true
  list_only:
    description: Only report the current and previous states.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the restored container's health.
    type: float
    default: 120
"""

EXAMPLES = r"""
- name: List what can be restored
  aiops.mlstack.rollback:
    name: mlstack-chat
    unit: chat
    list_only: true
  register: __states

- name: Put chat back on its previous good container
  aiops.mlstack.rollback:
    name: mlstack-chat
    unit: chat
"""

RETURN = r"""
states:
  description: The states on the Docker host, each with slot (current or previous), container, image, image_id,
    spec_hash, created and state.
  returned: always
  type: list
  elements: dict
restored:
  description: The state that now serves.
  returned: when a rollback was done
  type: dict
replaced:
  description: The state that served before, now kept as the previous one.
  returned: when a rollback was done
  type: dict
not_serving_s:
  description:
    - Seconds from stopping the serving container until the restored one was healthy.
    - 0 when the kept container binds no host port; it is then started, and found healthy, while the
      serving one still serves (RV(switched)).
  returned: when a rollback was done
  type: float
switched:
  description: C(restored beside the serving container) when the kept container started before the serving one
    stopped.
  returned: when a rollback was done that way
  type: str
evidence:
  description: One evidence record (check C(rollback) or C(rollback_states)).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aiops.mlstack.plugins.module_utils import _container as ctr  # noqa: E402
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import (  # noqa: E402
    DOCKER_HOST_ARG,
    DockerException,
    engine_for,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "unit": {"type": "str", "required": True},
            "list_only": {"type": "bool", "default": False},
            "timeout": {"type": "float", "default": 120},
            **DOCKER_HOST_ARG,
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        engine = engine_for(module)
        states = ctr.states(engine, p["name"])
        if p["list_only"]:
            observed = {"states": states, "restorable": any(s["slot"] == "previous" for s in states)}
            module.exit_json(changed=False, states=states,
                             evidence=record(p["unit"], "rollback_states", True, observed,
                                             f"{len(states)} state(s) on the Docker host"))
        result = ctr.restore_previous(engine, p["name"], unit=p["unit"], timeout=p["timeout"],
                                      check_mode=module.check_mode)
    except ctr.RolledBack as exc:
        observed = {k: exc.result.get(k) for k in ("restored", "replaced", "not_serving_s", "switched", "failure")}
        module.fail_json(msg=f"unit {p['unit']}: the previous container did not become healthy ({exc}); "
                             "the replaced container serves again", **exc.result,
                         evidence=record(p["unit"], "rollback", False, observed, str(exc)))
    except (ctr.SpecError, ctr.HealthError, DockerException) as exc:
        module.fail_json(msg=f"unit {p['unit']}: {exc}")
    result["states"] = ctr.states(engine, p["name"])
    observed = {k: result.get(k) for k in ("restored", "replaced", "not_serving_s", "switched")}
    observed["health"] = (result.get("health") or {}).get("state")
    message = "would restore the previous container" if module.check_mode else "previous container restored"
    result["evidence"] = record(p["unit"], "rollback", True, observed, message)
    if module._diff:
        result["diff"] = {"before": result["replaced"] or {}, "after": result["restored"]}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
