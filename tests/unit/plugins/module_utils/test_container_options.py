"""A container option added end to end: mlstack_shm_size -> resolved unit -> spec field -> SDK argument."""

from __future__ import annotations

import json

from ansible_collections.aiops.mlstack.plugins.module_utils import _container as ctr
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import resolve

SPEC = {"image": "img:1", "env": {"A": "1"}, "networks": [{"name": "backend", "aliases": ["chat"]}],
        "read_only": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"],
        "log_options": {"max-size": "10m", "max-file": "3"}, "memory": "1g", "cpus": 1.0}
# The hash this spec had before shm_size existed (the collection at 4d4ec7d): deployed containers
# that do not set the option keep their hash, so adding it recreates none of them.
HASH_BEFORE = "751f3bfdaa21bdfcb94a15e70626e91851847f4240e569dd069cf785e8d0e403"


def test_shm_size_goes_from_the_inventory_to_the_sdk() -> None:
    unit = resolve("llm", {"mlstack_unit_kind": "service", "mlstack_shm_size": "1g"}, {}, home="/h")
    spec = ctr.normalize_spec({**SPEC, "shm_size": unit.shm_size})
    assert ctr.create_kwargs("n", spec, {})["shm_size"] == "1g"


def test_an_unset_shm_size_is_not_sent_and_changes_no_hash() -> None:
    unit = resolve("llm", {"mlstack_unit_kind": "service"}, {}, home="/h")
    spec = ctr.normalize_spec({**SPEC, "shm_size": unit.shm_size})
    assert unit.shm_size is None and "shm_size" not in ctr.create_kwargs("n", spec, {})
    assert ctr.spec_hash(spec, "sha256:aaa") == HASH_BEFORE


def test_setting_shm_size_recreates_with_the_field_named() -> None:
    before = ctr.normalize_spec(SPEC)
    after = ctr.normalize_spec({**SPEC, "shm_size": "1g"})
    current = {"Config": {"Labels": {ctr.LABEL_HASH: ctr.spec_hash(before, "sha256:aaa"),
                                     ctr.LABEL_SPEC: json.dumps(ctr.redacted_spec(before))}},
               "State": {"Running": True}}
    step = ctr.plan(current, after, ctr.spec_hash(after, "sha256:aaa"), "if_changed")
    assert (step.action, step.changed_fields) == ("recreate", ["shm_size"])
