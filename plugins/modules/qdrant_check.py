#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_check
short_description: Prove that Qdrant answers, enforces its API key and stores and finds vectors
version_added: 0.1.0
description:
  - Probes a Qdrant server over its REST API and returns one evidence record per check, see RV(evidence).
  - C(health) C(GET /healthz) answers 200; the latency is observed.
  - C(version) C(GET /) with the key answers with the server's version.
  - C(api_key_required) C(GET /collections) without an C(api-key) header is refused (401 or 403).
  - C(wrong_api_key_rejected) the same with a wrong key is refused.
  - C(collection_round_trip) a collection C(mlstack-check-<random>) is created, two points are
    upserted, a search returns the probe point first, and the collection is deleted (also after a
    failed step).
  - The API key never appears in a record.
  - The task fails when any record is not ok, unless O(fail_on_error=false).
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details:
      - The checks run in check mode too; the only write is the probe collection, deleted at once.
        The module never reports C(changed).
  diff_mode:
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  unit:
    description: Unit name written into every evidence record.
    type: str
    required: true
  url:
    description: Base URL of the REST API, for example C(http://172.18.0.6:6333).
    type: str
    required: true
  api_key:
    description: The server's API key.
    type: str
    required: true
  timeout:
    description: Timeout of each request in seconds.
    type: float
    default: 10.0
  fail_on_error:
    description: Fail the task when any record is not ok. With V(false) the task succeeds and RV(ok) tells.
    type: bool
    default: true
seealso:
  - module: aiops.mlstack.neo4j_check
"""

EXAMPLES = r"""
- name: Prove Qdrant health, version, API key and a collection round trip
  aiops.mlstack.qdrant_check:
    unit: qdrant
    url: http://172.18.0.6:6333
    api_key: "{{ __qdrant_secrets.secrets.api_key }}"
"""

RETURN = r"""
ok:
  description: True when every record is ok.
  returned: always
  type: bool
  sample: true
evidence:
  description:
    - One record per check in the order C(health), C(version), C(api_key_required), C(wrong_api_key_rejected),
      C(collection_round_trip). The schema is the collection's evidence record (see docs/evidence.md).
  returned: always
  type: list
  elements: dict
  sample:
    - {"schema": 1, "unit": "qdrant", "check": "version", "ok": true, "observed": {"qdrant_version": "1.12.4"}}
msg:
  description: Summary; on failure names the failed checks.
  returned: always
  type: str
  sample: "qdrant: 5 of 5 checks ok"
"""

from urllib.parse import urlparse

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import finish
from ansible_collections.aiops.mlstack.plugins.module_utils._qdrant import check_qdrant


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "url": {"type": "str", "required": True},
            "api_key": {"type": "str", "required": True, "no_log": True},
            "timeout": {"type": "float", "default": 10.0},
            "fail_on_error": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    parsed = urlparse(p["url"])
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        module.fail_json(msg=f"url={p['url']!r} is not an http(s) URL: give for example http://qdrant:6333")
    finish(module, p["unit"], check_qdrant(p["unit"], p["url"], p["api_key"], p["timeout"]), p["fail_on_error"])


if __name__ == "__main__":
    main()
