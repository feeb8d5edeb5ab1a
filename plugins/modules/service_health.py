#!/usr/bin/python
# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_health
short_description: Wait until an HTTP(S) or TCP endpoint is healthy, measure its latency and return evidence
version_added: 0.1.0
description:
  - Probes O(url) (an HTTP or HTTPS request) or O(tcp) (a TCP connect) until the first healthy
    answer, with exponential backoff between attempts, then takes O(probes) more probes back to
    back and reports their latency (min, p50, p95, max). Health checks are the only sync points
    between mlstack units, so a unit's tasks start with this module on the units it depends on.
  - An HTTP answer is healthy when its status is in O(expect_status) and, when O(expect_json) is
    given, the body is JSON and every dotted path in O(expect_json) has the expected value.
    Redirects are not followed, so a redirect is healthy only when its status is listed.
  - After failed attempt N the module sleeps O(delay) times O(backoff) to the power N-1 seconds, at most
    O(max_delay) (with the defaults 0.5, 0.75, 1.125 and so on up to 5). It makes at most O(retries) + 1
    attempts, and stops at O(deadline) when one is given.
    Errors that waiting cannot fix (a certificate that fails verification, an unreadable
    O(ca_path)) end the wait at once.
  - Healthy means the wait succeeded and every latency probe after it was ok as well.
  - The reason of a failure names it (connection refused, timeout, DNS lookup, TLS, HTTP status with
    an excerpt of the body, missing or different JSON field, invalid JSON) and is kept from the last
    attempt.
  - Returns one evidence record, see RV(evidence). The task fails when the endpoint is not healthy,
    unless O(fail_on_error=false).
  - Standard library only on the target (C(urllib), C(socket), C(ssl)); proxies from the environment
    are not used, the probe connects directly.
author: mlstack maintainers (@aiops)
extends_documentation_fragment:
  - aiops.mlstack.attributes
attributes:
  check_mode:
    support: full
    details:
      - Probing is read-only, so the probes run in check mode too and the result is the same.
        The module never reports C(changed).
  diff_mode:
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  unit:
    description: Unit name written into the evidence record (the unit whose endpoint is probed).
    type: str
    required: true
  check:
    description: Name of the check in the evidence record.
    type: str
    default: health
  url:
    description:
      - The C(http://) or C(https://) URL to request. Mutually exclusive with O(tcp); one of them is required.
      - User info in the URL (C(https://user:pass@host/)) is sent as HTTP basic authentication; it is
        removed from the URL in the evidence, where every query value is masked too.
    type: str
  tcp:
    description: A TCP endpoint that is healthy when it accepts a connection. Mutually exclusive with O(url).
    type: dict
    suboptions:
      host:
        description: Host name or IP address.
        type: str
        required: true
      port:
        description: TCP port.
        type: int
        required: true
  method:
    description: HTTP method of the request.
    type: str
    default: GET
  headers:
    description:
      - Extra request headers. The whole option is C(no_log), so every header value is masked as
        C(********) wherever it would appear in the task's output; keep plain headers out of it when
        their values also occur in answers.
    type: dict
  bearer_token:
    description:
      - Sent as the header C(Authorization) with the value C(Bearer <bearer_token>).
      - Cannot be combined with an C(Authorization) header in O(headers) or user info in O(url).
    type: str
  expect_status:
    description: HTTP statuses that count as healthy.
    type: list
    elements: int
    default: [200]
  expect_json:
    description:
      - 'Dotted paths into the JSON body and the value each must have, for example
        C({"status": "ok", "checks.redis": true}). A digit segment indexes a list (C(items.0.name)).'
      - Booleans never equal numbers. Empty means the body is not looked at.
    type: dict
    default: {}
  retries:
    description: Attempts after the first failed one (Ansible's C(until)/C(retries) count); V(0) probes once.
    type: int
    default: 60
  delay:
    description: Seconds to sleep after the first failed attempt.
    type: float
    default: 0.5
  backoff:
    description: Factor by which the sleep grows after each failed attempt; V(1) keeps it constant.
    type: float
    default: 1.5
  max_delay:
    description: Longest sleep between two attempts, in seconds.
    type: float
    default: 5
  deadline:
    description:
      - Longest wait for the first healthy answer, in seconds from the first attempt; unset, only
        O(retries) bounds the wait. A sleep is cut short to end at the deadline and no attempt starts after it.
    type: float
  timeout:
    description: Timeout of each request or connect, in seconds.
    type: float
    default: 3
  probes:
    description:
      - Latency probes taken after the first healthy answer. V(0) reports the latency of that answer alone.
      - A latency probe that times out is slow, not down - it is counted in RV(evidence) (C(probes_slow)) with
        O(timeout) as its latency, and fails the check only through O(latency_bound_ms). A probe that fails
        otherwise (refused, wrong status) fails the check.
    type: int
    default: 5
  latency_bound_ms:
    description:
      - The declared latency bound, in milliseconds - the check fails when the p95 latency of the probes is over it.
      - Unset, latency is evidence only - a slow unit on a busy host is not called down.
    type: float
    version_added: 0.1.0
  validate_certs:
    description: Verify the server certificate and host name of an C(https://) URL.
    type: bool
    default: true
  ca_path:
    description: PEM file of CA certificates to trust instead of the system's.
    type: path
  fail_on_error:
    description: Fail the task when the endpoint is not healthy. With V(false) the task succeeds and RV(ok) tells.
    type: bool
    default: true
notes:
  - Latency percentiles use the nearest-rank method, so they are always measured values; with 5 probes
    p50 is the 3rd fastest and p95 the slowest.
  - A password in O(url) appears in the module arguments sent to the target; prefer O(bearer_token)
    or O(headers), which are C(no_log).
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
- name: Wait until the chat API reports itself and its Redis healthy
  aiops.mlstack.service_health:
    unit: chat
    url: http://127.0.0.1:8080/health
    expect_json:
      status: ok
      checks.redis: true
    bearer_token: "{{ __chat_secrets.secrets.health }}"
  register: __chat_health

- name: Wait until PostgreSQL accepts connections, for at most 60 seconds
  aiops.mlstack.service_health:
    unit: postgresql
    tcp:
      host: 172.18.0.3
      port: 5432
    deadline: 60
    probes: 3
  register: __postgresql_health

- name: Record whether an HTTPS endpoint with a private CA answers, without failing the play
  aiops.mlstack.service_health:
    unit: gateway
    check: tls_health
    url: https://gateway.internal/healthz
    ca_path: /etc/mlstack/ca.pem
    expect_status: [200, 204]
    retries: 3
    fail_on_error: false
  register: __gateway_health
"""

RETURN = r"""
ok:
  description: True when the endpoint became healthy and every latency probe after that was ok.
  returned: always
  type: bool
  sample: true
status:
  description: HTTP status of the last attempt; null for O(tcp) or when no answer came.
  returned: always
  type: int
  sample: 200
attempts:
  description: Attempts made until the first healthy answer (or until the wait gave up).
  returned: always
  type: int
  sample: 3
waited_s:
  description: Seconds from the first attempt to the end of the wait, probes and sleeps included.
  returned: always
  type: float
  sample: 1.27
latency_ms:
  description: Latency of the ok latency probes in milliseconds (nearest-rank percentiles); null values when none.
  returned: always
  type: dict
  contains:
    min:
      description: Fastest probe.
      type: float
      sample: 0.81
    p50:
      description: Median (nearest rank).
      type: float
      sample: 0.93
    p95:
      description: 95th percentile (nearest rank).
      type: float
      sample: 1.4
    max:
      description: Slowest probe.
      type: float
      sample: 1.4
reason:
  description: Why the endpoint is or is not healthy; for a failure the last attempt's error and how the wait ended.
  returned: always
  type: str
  sample: >-
    connection refused by http://127.0.0.1:9/ (nothing listens on that port) (gave up after 4 attempt(s) in 1.9 s)
msg:
  description: One line with the unit, the check, the verdict and the reason.
  returned: always
  type: str
  sample: "chat: health ok: HTTP status 200, 2 JSON field(s) as expected after 3 attempt(s) in 1.3 s"
evidence:
  description:
    - One evidence record, in a list like the other check modules return.
    - The schema is the collection's evidence record (see C(plugins/module_utils/_evidence.py)).
  returned: always
  type: list
  elements: dict
  contains:
    schema:
      description: Version of the record schema.
      type: int
      sample: 1
    unit:
      description: The O(unit) given.
      type: str
      sample: chat
    check:
      description: The O(check) given.
      type: str
      sample: health
    ok:
      description: Same as RV(ok).
      type: bool
    observed:
      description:
        - C(url) the probed URL without user info and with query values masked (C(tcp://host:port) for O(tcp)),
          C(status), C(attempts), C(waited_s), C(latency_p50_ms), C(latency_p95_ms), C(probes_ok), C(probes_slow),
          C(probes_total), C(latency_bound_ms).
      type: dict
      sample: {"url": "http://127.0.0.1:8080/health", "status": 200, "attempts": 3, "waited_s": 1.27,
               "latency_p50_ms": 0.93, "latency_p95_ms": 1.4, "probes_ok": 5, "probes_slow": 0,
               "probes_total": 5, "latency_bound_ms": null}
    message:
      description: Same as RV(reason).
      type: str
    timestamp:
      description: ISO 8601 UTC time of the record.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiops.mlstack.plugins.module_utils._health import Attempt
from ansible_collections.aiops.mlstack.plugins.module_utils._health_http import (
    http_check,
    redact_url,
    request_headers,
    split_credentials,
    url_error,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._health_tcp import tcp_check
from ansible_collections.aiops.mlstack.plugins.module_utils._health_wait import (
    measure,
    report,
    validate_wait,
    wait_until_healthy,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "check": {"type": "str", "default": "health"},
            "url": {"type": "str"},
            "tcp": {
                "type": "dict",
                "options": {"host": {"type": "str", "required": True}, "port": {"type": "int", "required": True}},
            },
            "method": {"type": "str", "default": "GET"},
            "headers": {"type": "dict", "no_log": True},
            "bearer_token": {"type": "str", "no_log": True},
            "expect_status": {"type": "list", "elements": "int", "default": [200]},
            "expect_json": {"type": "dict", "default": {}},
            "retries": {"type": "int", "default": 60},
            "delay": {"type": "float", "default": 0.5},
            "backoff": {"type": "float", "default": 1.5},
            "max_delay": {"type": "float", "default": 5},
            "deadline": {"type": "float"},
            "timeout": {"type": "float", "default": 3},
            "probes": {"type": "int", "default": 5},
            "latency_bound_ms": {"type": "float"},
            "validate_certs": {"type": "bool", "default": True},
            "ca_path": {"type": "path"},
            "fail_on_error": {"type": "bool", "default": True},
        },
        mutually_exclusive=[("url", "tcp")],
        required_one_of=[("url", "tcp")],
        supports_check_mode=True,
    )
    p = module.params
    problems = validate_wait(p["retries"], p["delay"], p["backoff"], p["max_delay"], p["timeout"], p["probes"])
    secrets = [p["bearer_token"], *[str(v) for v in (p["headers"] or {}).values() if v not in (None, "")]]
    # A dict given as a string (key=value arguments) is listed for no_log before it is parsed.
    module.no_log_values.update(s for s in secrets if s)
    if p["url"]:
        if not p["expect_status"]:
            problems.append("expect_status must list at least one status")
        problems.extend(filter(None, [url_error(p["url"])]))
        url, user, password = split_credentials(p["url"]) if not problems else (p["url"], None, None)
        if password:
            module.no_log_values.add(password)
            secrets.append(password)
        try:
            headers = request_headers(p["headers"], p["bearer_token"], user, password)
        except ValueError as exc:
            problems.append(str(exc))
        target = redact_url(url)

        def probe_fn() -> Attempt:
            return http_check(
                url,
                p["expect_status"],
                p["expect_json"],
                p["method"].upper(),
                headers,
                p["timeout"],
                p["ca_path"],
                p["validate_certs"],
            )
    else:
        host, port = p["tcp"]["host"], p["tcp"]["port"]
        if p["headers"] or p["bearer_token"] or p["expect_json"]:
            problems.append("headers, bearer_token and expect_json apply to url probes only, not to tcp")
        if not 0 < port < 65536:
            problems.append(f"tcp.port must be between 1 and 65535, got {port}")
        target = f"tcp://{f'[{host}]' if ':' in host else host}:{port}"

        def probe_fn() -> Attempt:
            return tcp_check(host, port, p["timeout"])

    if problems:
        module.fail_json(msg="; ".join(problems))
    wait = wait_until_healthy(probe_fn, p["retries"], p["delay"], p["backoff"], p["max_delay"], deadline=p["deadline"])
    measurement = measure(probe_fn, p["probes"], p["timeout"]) if wait.ok else None
    result = report(p["unit"], p["check"], target, wait, measurement, secrets, p["latency_bound_ms"])
    if not result["ok"] and p["fail_on_error"]:
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
