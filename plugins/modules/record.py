#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: record
short_description: Add one evidence record built from the play's own facts
version_added: 0.1.0
description:
  - Returns one evidence record (the schema of docs/evidence.md) in RV(evidence), which the
    C(aiops.mlstack.evidence) callback collects like any check module's record.
  - For facts a play already holds, such as the GPU state of a host or a unit's catalog entry.
  - This is an action plugin that runs on the controller and changes nothing.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
  - aiops.mlstack.controller
options:
  unit:
    description: Unit the record is about.
    type: str
    required: true
  check:
    description: Name of the check.
    type: str
    required: true
  ok:
    description: Whether the check passed.
    type: bool
    required: true
  observed:
    description: Observed values. Keys that look like secrets are refused.
    type: dict
    default: {}
  message:
    description: What a person should read.
    type: str
    default: ""
  fake:
    description: Name of the stand-in the check ran against, if any.
    type: str
  fail_on_error:
    description: Fail the task when O(ok) is false.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Say honestly that this host has no GPU
  aiops.mlstack.record:
    unit: "{{ inventory_hostname }}"
    check: gpu_state
    ok: true
    observed: {gpu_count: 0}
    message: no NVIDIA driver on this host; the stack runs on the CPU
"""

RETURN = r"""
evidence:
  description: The evidence record.
  returned: always
  type: dict
"""
