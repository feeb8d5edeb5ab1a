#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: unit_verify
short_description: Verify one unit in one task - container, port holder, hardening, the probes of its kind, its state
version_added: 0.2.0
description:
  - The quality stream of one unit (role C(aiops.mlstack.verify)) in one task, every record in RV(evidence)
    as the role's tasks wrote them before (docs/evidence.md).
  - Inspects the unit's container and its port holder through the Docker API and judges their runtime settings
    (checks C(hardening) and C(port_holder), the rules of the filter C(aiops.mlstack.hardening_findings)).
  - For a running container whose role is in O(checks_available) it runs the probes of the unit's kind at
    once, each in its own thread (a service's C(health) first and alone - its wait absorbs a unit slow to
    answer, its latency is measured without the other probes' load).
  - C(ml_service) - the C(health) and C(ready) probes of M(aiops.mlstack.service_health) (5 retries, 5 latency
    probes, the unit's latency bound on C(health)), the backends C(/ready) reports (check C(backends)) and the
    JWT attacks of M(aiops.mlstack.jwt_check), or the record C(jwt_exception) of a unit that declared one.
    C(monitoring) - the C(health) and C(metrics) probes. C(app) - the check C(app_health), the app's own
    healthcheck, else a TCP connect to its port, else that it runs.
  - Last it records the unit's state (check C(unit_state)) - ok when the unit has a role, its container is
    healthy (an app without a healthcheck - running) and every check passed; the task fails when it is not ok
    and the unit is critical with a role, or in strict mode. A critical (strict mode - any) unit whose deploy
    did not complete (O(deploy_completed=false)) fails after its records too.
  - The checks of other roles (the databases - they read their secrets and clients) are tasks; for them run
    O(stage=inspect), the tasks, then O(stage=state) with their results in O(checks).
  - This is an action plugin that runs on the controller. When the unit's tasks run locally (connection
    C(local)) everything runs in its process; elsewhere the inspection and the probes run as the modules
    C(community.docker.docker_container_info), M(aiops.mlstack.service_health), M(ansible.builtin.uri) and
    M(ansible.builtin.wait_for) on the unit's host, one after the other. It changes nothing.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.controller
options:
  unit:
    description: The resolved unit, as the filter C(aiops.mlstack.unit) returns it.
    type: dict
    required: true
  stage:
    description:
      - V(all) - everything, one task.
      - V(inspect) - the container, the port holder and their hardening; returns RV(container), RV(probe) and
        RV(checks) for the tasks that follow.
      - V(state) - the unit's state from O(container) and O(checks).
    type: str
    choices: [all, inspect, state]
    default: all
  checks_available:
    description: Roles whose units have checks; a unit of another role gets the common records and C(unit_state).
    type: list
    elements: str
    default: [redis, postgresql, neo4j, qdrant, ml_service, app, monitoring]
  probe_timeout:
    description: Seconds one probe (one request, one connect) may take.
    type: float
    default: 10
  deploy_completed:
    description: Whether the unit's deploy completed in this run.
    type: bool
    default: true
  container:
    description:
      - With O(stage=state) - the container's inspect data, RV(container) of the stage inspect; null when absent.
    type: dict
  checks:
    description:
      - With O(stage=state) - the results the unit's state is judged on, each with C(ok) and C(msg) - the
        tasks' checks and RV(checks) of the stage inspect.
    type: list
    elements: dict
    default: []
seealso:
  - module: aiops.mlstack.service_health
  - module: aiops.mlstack.jwt_check
  - module: aiops.mlstack.record
"""

EXAMPLES = r"""
- name: Verify a service in one task
  aiops.mlstack.unit_verify:
    unit: "{{ inventory_hostname | aiops.mlstack.unit(hostvars) }}"
    probe_timeout: 10
  register: __verify

- name: Inspect a database unit for the checks that follow as tasks
  aiops.mlstack.unit_verify:
    unit: "{{ __unit }}"
    stage: inspect
  register: __inspect

- name: Then record its state with the tasks' results
  aiops.mlstack.unit_verify:
    unit: "{{ __unit }}"
    stage: state
    container: "{{ __inspect.container }}"
    checks: "{{ [{'ok': __redis.ok, 'msg': __redis.msg}] + __inspect.checks }}"
"""

RETURN = r"""
evidence:
  description:
    - The evidence records, in the order the role's tasks wrote them - C(port_holder), C(hardening), the kind's
      (C(health), C(ready), C(backends), C(metrics), the C(jwt_*) records or C(jwt_exception), C(app_health)),
      then C(unit_state) (not with O(stage=inspect)).
  returned: always
  type: list
  elements: dict
ok:
  description: Whether the C(unit_state) record is ok.
  returned: when O(stage) is not V(inspect)
  type: bool
container:
  description: The container's inspect data; null when it is absent.
  returned: when O(stage=inspect)
  type: dict
probe:
  description: Whether the unit's checks should run - its role has checks and its container runs.
  returned: when O(stage=inspect)
  type: bool
checks:
  description: The C(hardening) and C(port_holder) results (C(ok), C(msg)) for O(checks) of the stage state.
  returned: when O(stage=inspect)
  type: list
  elements: dict
msg:
  description: The C(unit_state) record in one line, or why the task failed.
  returned: always
  type: str
"""
