#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Read the NVIDIA driver, CUDA version and every GPU's state from NVML
version_added: 0.1.0
description:
  - Reads NVML through nvidia-ml-py (C(pynvml)), which loads C(libnvidia-ml.so.1) from the driver.
  - Returns the driver version and branch, the CUDA version the driver supports, and for each device
    its index, name, UUID, compute capability, memory total/used/free (MiB), GPU and memory utilisation,
    temperature, power draw and limit, persistence mode and the compute processes using it.
  - A host without a driver (or without nvidia-ml-py) is not a failure. The module returns
    RV(gpu_count=0) and RV(reason) says why, so that the stack can run on the CPU and the
    evidence says so, unless O(require_gpu=true).
  - Values a board does not report (NVML "Not Supported") are null; they do not fail the read.
  - Returns one evidence record C(gpu_state) (see docs/evidence.md) and the facts as
    C(ansible_facts.mlstack_gpu).
author: mlstack maintainers (@aiops)
requirements:
  - nvidia-ml-py on the host that runs the module (pinned in the collection's requirements.txt)
  - the NVIDIA driver (C(libnvidia-ml.so.1)) for any GPU to be seen
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reading NVML changes nothing, so the module reads in check mode too and never reports C(changed).
  diff_mode:
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  unit:
    description: Name written into the evidence record, usually the Docker host's inventory name.
    type: str
    default: gpu_host
  check:
    description:
      - Check name of the evidence record. The quality stream's C(gpu_state) is what the verdict looks for;
        a read before the deployment can use another name (C(gpu_facts)) so that it is not counted twice.
    type: str
    default: gpu_state
  sample_seconds:
    description:
      - After the read, keep reading NVML every O(sample_interval) seconds for this long and return each GPU's
        load over the window in RV(load) (and in the evidence record). Run the task with C(async) and C(poll=0)
        to measure while other tasks put load on the GPUs. Without a GPU it returns at once. V(0) takes no samples.
    type: float
    default: 0
  sample_interval:
    description: Seconds between two reads while sampling.
    type: float
    default: 1.0
  require_gpu:
    description:
      - Fail when no GPU is seen. Used after the driver install (role C(gpu_host)) to prove that the
        driver works; the default only reports.
    type: bool
    default: false
  evidence_fake:
    description:
      - Names the stand-in NVML the module reads (for example a fake C(libnvidia-ml.so.1) in a test), so
        that the evidence record never passes a fake off as a real GPU. Empty on a real host.
    type: str
    default: ""
notes:
  - Inside a container the devices the container was given are seen, not the host's.
seealso:
  - module: aiops.mlstack.record
"""

EXAMPLES = r"""
- name: Read the GPU facts of the Docker host
  aiops.mlstack.gpu_facts:
    unit: "{{ inventory_hostname }}"
  register: __gpu_facts

- name: Prove that the freshly installed driver sees the GPUs
  aiops.mlstack.gpu_facts:
    unit: "{{ inventory_hostname }}"
    require_gpu: true
  register: __gpu_host_facts
"""

RETURN = r"""
available:
  description: True when NVML answered and at least one device was read.
  returned: always
  type: bool
  sample: true
reason:
  description: Why no (or not every) GPU was read; empty when all went well.
  returned: always
  type: str
  sample: "no NVIDIA driver: libnvidia-ml.so.1 (NVML) was not found on this host"
driver_version:
  description: NVIDIA driver version, null without a driver.
  returned: always
  type: str
  sample: "580.95.05"
driver_branch:
  description: Major number of the driver version (its branch), null without a driver.
  returned: always
  type: int
  sample: 580
cuda_driver_version:
  description: Newest CUDA version the driver supports, null without a driver.
  returned: always
  type: str
  sample: "13.0"
gpu_count:
  description: Number of devices read.
  returned: always
  type: int
  sample: 3
devices:
  description: One entry per device, in NVML index order.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: NVML index.
      type: int
    name:
      description: Product name.
      type: str
      sample: NVIDIA TITAN X (Pascal)
    uuid:
      description: Device UUID, stable across reboots and index reorderings.
      type: str
      sample: GPU-3c1a7d2e-0000-4000-8000-000000000000
    compute_capability:
      description: CUDA compute capability, major.minor; null when not reported.
      type: str
      sample: "6.1"
    memory_total_mb:
      description: Memory in MiB.
      type: int
    memory_used_mb:
      description: Memory used in MiB.
      type: int
    memory_free_mb:
      description: Memory free in MiB.
      type: int
    utilization_gpu_pct:
      description: GPU utilisation over the last sample period, percent; null when not supported.
      type: int
    utilization_memory_pct:
      description: Memory controller utilisation, percent; null when not supported.
      type: int
    temperature_c:
      description: GPU temperature in degrees Celsius; null when not supported.
      type: int
    power_w:
      description: Power draw in watts; null when not supported.
      type: float
    power_limit_w:
      description: Enforced power limit in watts; null when not supported.
      type: float
    persistence_mode:
      description: Whether persistence mode is on; null when not supported.
      type: bool
    processes:
      description: Compute processes on the device, each C(pid) and C(used_memory_mb).
      type: list
      elements: dict
load:
  description:
    - Per device over the O(sample_seconds) window - C(index), C(uuid), C(samples), C(utilization_gpu_pct_mean),
      C(utilization_gpu_pct_max), C(memory_used_mb_max). Empty without sampling or without a GPU.
  returned: always
  type: list
  elements: dict
collected_at:
  description: UTC time of the read.
  returned: always
  type: str
ansible_facts:
  description: The same facts under C(mlstack_gpu), for later plays.
  returned: always
  type: dict
  contains:
    mlstack_gpu:
      description: Every key above except RV(evidence).
      type: dict
evidence:
  description: One record, check O(check), C(ok) unless O(require_gpu) and no GPU was seen.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record
from ansible_collections.aiops.mlstack.plugins.module_utils._nvml import (
    collect,
    empty,
    evidence_observed,
    load_pynvml,
    sample,
    summary,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "default": "gpu_host"},
            "check": {"type": "str", "default": "gpu_state"},
            "require_gpu": {"type": "bool", "default": False},
            "evidence_fake": {"type": "str", "default": ""},
            "sample_seconds": {"type": "float", "default": 0.0},
            "sample_interval": {"type": "float", "default": 1.0},
        },
        supports_check_mode=True,
    )
    nvml, missing = load_pynvml()
    facts = collect(nvml) if nvml is not None else empty(missing)
    load = sample(nvml, module.params["sample_seconds"], module.params["sample_interval"]) \
        if nvml is not None and module.params["sample_seconds"] > 0 and facts["gpu_count"] else []
    message = summary(facts)
    if load:
        message += f"; load over {module.params['sample_seconds']:g} s: " + ", ".join(
            f"GPU {d['index']} {d['utilization_gpu_pct_mean']}% mean / {d['utilization_gpu_pct_max']}% max, "
            f"{d['memory_used_mb_max']} MiB max" for d in load)
    ok = bool(facts["gpu_count"]) or not module.params["require_gpu"]
    observed = dict(evidence_observed(facts), load=load)
    evidence = [record(module.params["unit"], module.params["check"], ok, observed, message,
                       fake=module.params["evidence_fake"] or None)]
    result = dict(facts, load=load, changed=False, evidence=evidence, msg=message,
                  ansible_facts={"mlstack_gpu": facts})
    if not ok:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
