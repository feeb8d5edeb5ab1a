#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container
short_description: Reconcile one mlstack unit's container and wait for its health
version_added: 0.1.0
description:
  - Waits for the health of the containers the unit depends on, then creates, starts or
    recreates the unit's container so that it matches the declared O(spec), then waits
    until Docker reports it C(healthy).
  - Only the fields the unit declares are compared. Their hash is stored in the
    C(io.mlstack.spec-hash) label, so a re-run with the same spec and image never
    recreates, and a changed spec or a new image recreates exactly once.
  - The serving container is the unit's last good state; its image id, spec hash and creation
    time are returned in RV(last_good) before anything changes.
  - With O(update_order=start-first) a recreate first runs the new spec as a candidate
    C(<name>_next) beside the serving container, without host ports or network aliases, so it
    takes no traffic. The serving container is only replaced once the candidate is healthy; a
    candidate that fails is removed and the serving container never stopped (RV(not_serving_s=0)).
  - With O(update_order=stop-first) (units whose data volume one process must own) the
    serving container is stopped first. If the new one does not become healthy it is removed
    and the old one started again, data volumes untouched.
  - After a successful recreate the replaced container is kept, stopped, as C(<name>_previous),
    and M(aiops.mlstack.rollback) puts it back on demand.
  - A failed critical unit fails the task with RV(rolled_back=true) after its rollback. A
    failed non-critical unit (O(critical=false)) keeps its last good container, or with none is
    stopped, and the task returns RV(degraded=true) without failing, so the run goes on.
  - A container without a healthcheck is not healthy; C(unhealthy), exited or restarting
    containers fail at once with the last health-log lines and log tail.
  - In check mode the plan (RV(action), RV(reason), RV(changed_fields) and the diff) is returned
    without waiting for the containers in O(depends_on), so a dry run neither blocks nor fails on another unit.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.docker
options:
  name:
    description: Container name.
    type: str
    required: true
  unit:
    description: Catalog unit the container belongs to, recorded in a label and in the evidence.
    type: str
    required: true
  state:
    description: C(started) reconciles and waits for health; C(absent) removes the container (never its volumes).
    type: str
    choices: [started, absent]
    default: started
  spec:
    description:
      - The managed spec. Keys are C(image) (required), C(command), C(entrypoint), C(env), C(labels),
        C(volumes) (C(volume:/path[:ro]) or C(/host/path:/path[:ro])), C(networks) (names or
        C(name) and C(aliases)), C(ports) (container port to C([host address, host port])), C(healthcheck)
        (C({test, interval, timeout, retries, start_period}) in seconds), C(user), C(read_only),
        C(tmpfs), C(cap_drop), C(cap_add), C(security_opt), C(restart_policy), C(memory), C(cpus),
        C(pids_limit), C(log_options), C(stop_timeout).
      - Unknown keys are refused.
    type: dict
    default: {}
  depends_on:
    description: Containers that must be healthy before this one is touched (the streams' only sync points).
    type: list
    elements: str
    default: []
  remote_depends_on:
    description:
      - Units on other Docker hosts this one depends on (the resolved unit's C(remote_awaited)). Each must
        accept connections on the address and port its host publishes it on, from this unit's host, before
        this one is touched. Bounded by O(dependency_timeout) (else O(timeout)); the failure names the other
        Docker host, so that a lost host is told apart from a failing unit.
    type: list
    elements: dict
    default: []
    version_added: 0.2.0
    suboptions:
      unit:
        description: The dependency's unit name.
        type: str
        required: true
      docker_host:
        description: The Docker host it runs on.
        type: str
        required: true
      address:
        description: That host's address (its C(mlstack_host_address)).
        type: str
        required: true
      port:
        description: The port published there.
        type: int
        required: true
  recreate:
    description:
      - C(if_changed) recreates on a changed spec or image; C(always) forces it.
      - C(never) adopts an existing container and reports drift without correcting it.
    type: str
    choices: [if_changed, always, never]
    default: if_changed
  dependency_timeout:
    description:
      - Seconds to wait for each dependency in O(depends_on) to be created - under strategy free its unit may
        still be building its image. Once it exists, its health is waited for up to O(timeout).
      - Unset, O(timeout) bounds the creation too.
    type: float
    version_added: 0.1.0
  wait:
    description: Wait for the container to become healthy.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each health gate (dependencies, then the container itself).
    type: float
    default: 120
  update_order:
    description:
      - C(start-first) proves a new spec in a candidate beside the serving container before the switch.
        Without a host port the healthy candidate itself takes the unit's network aliases and name, and
        only then does the serving container stop, so the unit is never without a serving container.
        With a host port (one container only can bind it) the final container is created once the
        candidate passed, and the unit does not serve for that container's start (RV(not_serving_s)).
      - C(stop-first) stops the serving container first; for units whose data volume one process must own.
    type: str
    choices: [start-first, stop-first]
    default: stop-first
  critical:
    description:
      - A critical unit's failure fails the task (after the rollback).
      - A non-critical unit's failure marks it RV(degraded) and the task does not fail.
    type: bool
    default: true
  port_holder_image:
    description:
      - An image of the C(port-holder) recipe. With it, a unit whose spec has host ports binds none
        itself; a port holder container C(<name>_port) binds them and forwards each connection to
        the unit by its network alias on its first network. The unit can then be replaced
        start-first with no gap (its healthy candidate answers under the alias before the old
        container stops), which a host port, bound by one container only, does not allow.
      - The holder is hardened like a unit (uid 65534, read-only root, no capabilities, limits,
        healthcheck) and is replaced stop-first, only when its image or the ports change.
    type: str
  purge:
    description: With O(state=absent), also remove the named volumes the unit's containers mounted (its data).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Run the unit's container and wait until it is healthy
  aiops.mlstack.container:
    name: mlstack-redis
    unit: redis
    spec:
      image: mlstack/redis:recipe
      command: [redis-server, /etc/mlstack/redis.conf]
      volumes: ["mlstack-redis-data:/data", "/var/lib/mlstack/redis/config:/etc/mlstack:ro"]
      networks: [{name: mlstack_backend, aliases: [redis]}]
      healthcheck: {test: [CMD, redis-cli, PING], interval: 1, retries: 30}
  register: __redis_container
"""

RETURN = r"""
action:
  description: What was done, C(create), C(recreate), C(start), C(remove) or C(none).
  returned: always
  type: str
reason:
  description: Why, for instance which declared fields changed.
  returned: always
  type: str
changed_fields:
  description: Declared spec fields that differ from the running container's.
  returned: always
  type: list
  elements: str
spec_hash:
  description: Hash of the declared spec and image id, stored in the container's label.
  returned: when state=started
  type: str
health:
  description: Health wait result, C(state) and C(waited_s).
  returned: when waited
  type: dict
dependencies:
  description: Health wait result per dependency (empty in check mode, which does not wait).
  returned: always
  type: dict
addresses:
  description: The container's IP address on each of its networks (empty when there is no container).
  returned: when state=started
  type: dict
rolled_back:
  description: True when a failed recreate put the last good container back (or never stopped it).
  returned: always
  type: bool
degraded:
  description: True when a non-critical unit could not be made healthy and the run goes on without it.
  returned: when critical=false and the unit failed
  type: bool
last_good:
  description: The serving container before a recreate (container, image, image_id, spec_hash, created, state).
  returned: when state=started
  type: dict
not_serving_s:
  description:
    - Seconds between stopping the serving container and a container serving again (0 when a candidate failed).
    - 0 too when a start-first unit without a host port promoted its candidate (O(update_order)).
  returned: after a recreate
  type: float
port_holder:
  description: With O(port_holder_image) and host ports, what happened to C(<name>_port) (action, reason,
    health, not_serving_s).
  returned: when the unit publishes through a port holder
  type: dict
switched:
  description: C(candidate promoted) when the proven candidate took the unit's network aliases and name
    before the serving container stopped (start-first, no host port).
  returned: when a candidate was promoted
  type: str
switch_s:
  description: Seconds from stopping the replaced container to the promoted one holding the unit's name.
  returned: when a candidate was promoted
  type: float
removed_containers:
  description: Containers removed with O(state=absent).
  returned: when state=absent
  type: list
  elements: str
removed_volumes:
  description: Named volumes removed with O(state=absent) and O(purge=true).
  returned: when state=absent
  type: list
  elements: str
failure:
  description: On failure, the health state, health-log lines and log tail Docker gave.
  returned: on failure
  type: dict
evidence:
  description: One evidence record (check C(deploy)) describing the reconciliation and health.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aiops.mlstack.plugins.module_utils._container_task import (  # noqa: E402
    ARGUMENT_SPEC,
    REQUIRED_IF,
    task_result,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._docker_api import (  # noqa: E402
    DockerException,
    engine_for,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    result = task_result(lambda: engine_for(module), module.params, module.check_mode, module._diff, (DockerException,))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
