# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One unit's verification (M(aiops.mlstack.unit_verify)): the records the role verify wrote
task by task, built by functions.

Each function returns the same evidence record the role's task wrote (same check, ok,
observed and message), so that the bundle, its verdict and the tests that read it do not
change. The records come from the resolved unit (filter ``aiops.mlstack.unit``), its
container's and port holder's ``docker inspect`` and the answers of its probes; the probes
themselves are callables, so that the action runs them at once in threads and the tests
against a local HTTP server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._evidence import record
from ansible_collections.aiops.mlstack.plugins.module_utils._health import ProbeError
from ansible_collections.aiops.mlstack.plugins.module_utils._health_http import (
    http_check,
    probe_http,
    redact_url,
    request_headers,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._health_tcp import tcp_check
from ansible_collections.aiops.mlstack.plugins.module_utils._health_wait import (
    measure,
    report,
    wait_until_healthy,
)
from ansible_collections.aiops.mlstack.plugins.module_utils._tls_probe import probe as tls_probe
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import CROSS_HOST_ROLES, TLS_CA_FILE, TLS_CA_UNIT
from ansible_collections.aiops.mlstack.plugins.plugin_utils._security import hardening_findings

# Kinds whose checks the action runs itself; the others (the databases: their secrets and
# clients) stay tasks/checks/<role>.yml, and the action records the unit's state after them.
IN_PROCESS = ("ml_service", "monitoring", "app")

# A container adopted from a running compose project is as Compose made it: the baseline's
# additions come with its next recreate, and the record names them as such.
_ADOPTED = "adopted from its compose project as it is; applied at its next recreate"


@dataclass
class Check:
    """What the unit's state is judged on: one record's verdict and its one-line message."""

    ok: bool
    msg: str


def record_msg(rec: Mapping[str, Any]) -> str:
    """The ``msg`` aiops.mlstack.record gives a record (and unit_state lists for a failed one)."""
    return f"{rec['unit']}: {rec['check']} {'ok' if rec['ok'] else 'FAILED'}: {rec['message']}"


def _health(inspect: Mapping[str, Any] | None, default: str) -> str:
    return str((((inspect or {}).get("State") or {}).get("Health") or {}).get("Status") or default)


def declared_host_ports(unit: Mapping[str, Any]) -> list[int]:
    """The host ports the unit's catalog entry publishes (an app's list, else its host port)."""
    if unit.get("app"):
        return list(unit["app"].get("host_ports") or [])
    ports = [int(p) for p in [unit.get("host_port")] if p]
    tls = unit.get("tls")
    if tls and unit.get("host_address"):
        # A database other hosts reach publishes its TLS port on its host's address; PostgreSQL's
        # one port is published there instead of on the loopback (roles/postgresql, __postgresql_ports).
        if unit.get("role") == "postgresql":
            ports = []
        ports.append(int(tls["remote_port"]))
    return ports


def holder_record(unit: Mapping[str, Any], holder: Mapping[str, Any]) -> dict[str, Any]:
    """``port_holder``: the holder is hardened as the unit is, healthy, and binds the declared ports."""
    ports = declared_host_ports(unit)
    findings = hardening_findings(holder, [], ports)
    health = _health(holder, "")
    env = (holder.get("Config") or {}).get("Env") or []
    ok = not findings and health == "healthy"
    message = (f"binds {', '.join(str(p) for p in ports)} and forwards to the unit; hardened, {health or 'no health'}"
               if not findings else f"port holder broken: {json.dumps(findings)}")
    observed = {
        "container": unit["holder"],
        "health": health or "none",
        "forward": [e for e in env if re.match("MLSTACK_FORWARD=", str(e))],
        "published_ports": (holder.get("HostConfig") or {}).get("PortBindings") or {},
        "findings": findings,
    }
    return record(unit["name"], "port_holder", ok, observed, message)


def hardening_record(unit: Mapping[str, Any], container: Mapping[str, Any], holder_exists: bool) -> dict[str, Any]:
    """``hardening``: the container's runtime settings as Docker reports them (the security stream)."""
    # The unit's own container binds no host port when its port holder binds it.
    ports = [] if holder_exists else declared_host_ports(unit)
    config = container.get("Config") or {}
    host = container.get("HostConfig") or {}
    exceptions = dict(unit.get("security_exceptions") or {})
    if "com.docker.compose.project" in (config.get("Labels") or {}):
        exceptions.update({"no_new_privileges": _ADOPTED, "log_rotation": _ADOPTED})
    findings = hardening_findings(container, exceptions, ports)
    observed = {
        "findings": findings,
        "exceptions": exceptions,
        "user": config.get("User"),
        "cap_drop": host.get("CapDrop"),
        "read_only": host.get("ReadonlyRootfs"),
        "privileged": host.get("Privileged"),
        "security_opt": host.get("SecurityOpt"),
        "pids_limit": host.get("PidsLimit"),
        "memory": host.get("Memory"),
        "nano_cpus": host.get("NanoCpus"),
        "published_ports": host.get("PortBindings") or {},
        "declared_host_ports": ports,
        "network_mode": host.get("NetworkMode"),
    }
    message = ("user, capabilities, read-only root, privileges, limits, socket, healthcheck and published ports "
               "as required" if not findings else f"hardening broken: {json.dumps(findings)}")
    return record(unit["name"], "hardening", not findings, observed, message)


# --- probes ----------------------------------------------------------------------------


def service_health(unit: str, check: str, url: str, retries: int, timeout: float,
                   latency_bound_ms: float | None = None) -> dict[str, Any]:
    """aiops.mlstack.service_health with its defaults (GET, status 200, 5 latency probes), in-process."""
    headers = request_headers(None)

    def probe_fn() -> Any:
        return http_check(url, [200], {}, "GET", headers, timeout)

    wait = wait_until_healthy(probe_fn, retries, 0.5, 1.5, 5.0)
    measurement = measure(probe_fn, 5, timeout) if wait.ok else None
    return report(unit, check, redact_url(url), wait, measurement, [], latency_bound_ms)


def read_json(url: str, timeout: float, statuses: tuple[int, ...] = (200, 503)) -> Any:
    """The JSON body of one GET answered with one of ``statuses``; ValueError or ProbeError else."""
    status, body, _latency = probe_http(url, "GET", request_headers(None), timeout)
    if status not in statuses:
        raise ValueError(f"HTTP status {status} from {redact_url(url)}, expected one of {list(statuses)}")
    return json.loads(body)


def backends_record(unit: str, ready: Any) -> dict[str, Any] | None:
    """``backends``: which backends the unit says it uses, server or embedded (None: it says none)."""
    if not isinstance(ready, Mapping) or "backends" not in ready:
        return None
    backends = ready["backends"]
    checks = {k: v for k, v in (ready.get("checks") or {}).items() if k in backends}
    ok = all(isinstance(v, Mapping) and v.get("ok") for v in checks.values())
    message = "; ".join(f"{k}: {v}" for k, v in backends.items())
    return record(unit, "backends", ok, {"backends": backends, "checks": checks}, message)


def tcp_open(host: str, port: int, timeout: float) -> str | None:
    """None when ``host:port`` accepts a connection within ``timeout`` s (as wait_for), else why not."""
    wait = wait_until_healthy(lambda: tcp_check(host, port, min(timeout, 1.0)), 10**6, 1.0, 1.0, 1.0,
                              deadline=timeout)
    return None if wait.ok else wait.reason


def answer_of(fn: Callable[[], Any]) -> Any:
    """``fn()``, or the exception it raised: an answer too."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the caller judges which failures are evidence
        return exc


def run_concurrently(probes: Mapping[str, Callable[[], Any]], first: tuple[str, ...] = ()) -> dict[str, Any]:
    """The probes named in ``first`` at once, then the others at once, each in its own thread; a probe
    that raises gives its exception as its answer.

    The probes wait on the network (the units answer), not on this process's CPU, so they overlap.
    """
    answers: dict[str, Any] = {}
    for batch in ([n for n in probes if n in first], [n for n in probes if n not in first]):
        if not batch:
            continue
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            futures = {name: pool.submit(probes[name]) for name in batch}
        answers.update({name: answer_of(future.result) for name, future in futures.items()})
    return {name: answers[name] for name in probes}


# A service's liveness first, alone, as the role's tasks ran it: its wait absorbs a unit that is
# slow to answer, and its latency is measured without the readiness probes' load on the unit
# (each /ready asks the unit's dependencies). Then readiness and the JWT attacks at once.
FIRST = {"ml_service": ("health",)}


# --- the unit's kind ------------------------------------------------------------------


def container_address(unit: Mapping[str, Any], container: Mapping[str, Any], first: bool = False) -> str:
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    net = next(iter(networks.values())) if first else networks[unit["backend_network"]]
    return str(net["IPAddress"])


def kind_probes(unit: Mapping[str, Any], container: Mapping[str, Any], role: str, timeout: float,
                jwt: Callable[[str], Any]) -> dict[str, Callable[[], Any]]:
    """The probes of the unit's kind, by name; ``jwt(base_url)`` runs the JWT attacks."""
    name = unit["name"]
    probes: dict[str, Callable[[], Any]] = {}
    if role == "app":
        if "Health" not in (container.get("State") or {}) and unit.get("port") is not None:
            host, port = container_address(unit, container, first=True), int(unit["port"])
            probes["tcp"] = lambda: tcp_open(host, port, timeout)
        return probes
    base = f"http://{container_address(unit, container)}:{unit['port']}"
    bound = unit.get("latency_bound_ms") or None
    if role == "ml_service":
        probes["health"] = lambda: service_health(name, "health", base + unit["health_path"], 5, timeout, bound)
        if unit["health_path"] == "/health":
            # One thread: every /ready asks the unit's dependencies, and the readiness probe with
            # the read of its backends at once would double that load on them.
            probes["ready"] = lambda: (service_health(name, "ready", base + "/ready", 5, timeout),
                                       answer_of(lambda: read_json(base + "/ready", float(int(timeout)))))
        if "jwt" not in (unit.get("security_exceptions") or {}):
            probes["jwt"] = lambda: jwt(base)
        crossing = cross_host_dependencies(unit)
        if crossing:
            probes["cross_host"] = lambda: tls_probe(crossing, ca_bundle(unit), timeout)
    elif role == "monitoring":
        probes["health"] = lambda: service_health(name, "health", base + unit["health_path"], 5, timeout)
        if unit.get("metrics_path") is not None:
            probes["metrics"] = lambda: service_health(name, "metrics", base + unit["metrics_path"], 5, timeout)
    return probes


def cross_host_dependencies(unit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The unit's dependencies on other Docker hosts, as M(aiops.mlstack.tls_probe) takes them."""
    return [{"unit": d["unit"], "role": d["role"], "docker_host": d["docker_host"], "address": d["host"],
             "port": d["port"]}
            for d in unit.get("depends_on") or [] if d.get("cross_host") and d.get("role") in CROSS_HOST_ROLES]


def ca_bundle(unit: Mapping[str, Any]) -> str:
    """The stack's CA bundle from the controller's secrets directory (public; empty if none yet)."""
    path = Path(str(unit["secrets_dir"])).expanduser() / TLS_CA_UNIT / TLS_CA_FILE
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def cross_host_record(unit: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """``cross_host_tls``: each database on another Docker host verified over TLS, plaintext refused.

    A failure names the other host: a lost host is told apart from a failing unit.
    """
    problems = []
    for dep, seen in answer.items():
        where = f"{dep} on Docker host {seen['docker_host']} ({seen['address']})"
        if not seen["tls"]["ok"]:
            problems.append(f"{where}: {seen['tls']['error']}")
        elif not seen["plaintext"]["ok"]:
            problems.append(f"{where}: plaintext not refused: {seen['plaintext']['answer']}")
    ok = not problems and bool(answer)
    message = ("; ".join(problems) if problems else
               "TLS verified against the stack CA and plaintext refused: " + ", ".join(
                   f"{dep} on {seen['docker_host']} ({seen['address']}, {seen['tls']['version']})"
                   for dep, seen in answer.items()))
    return record(unit["name"], "cross_host_tls", ok, {"dependencies": dict(answer)}, message)


def _health_answer(answer: Any) -> dict[str, Any]:
    if isinstance(answer, BaseException):
        raise answer
    return answer


def kind_records(unit: Mapping[str, Any], container: Mapping[str, Any], role: str,
                 answers: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Check]]:
    """The kind's records in the order the role wrote them (health, ready, backends, metrics, JWT), and
    the checks the unit's state counts.

    Raises what a health probe raised: the role's task failed the unit then too.
    """
    name = unit["name"]
    records: list[dict[str, Any]] = []
    checks: list[Check] = []
    if role == "app":
        return _app(unit, container, answers)
    for probe in ("health", "ready", "metrics"):
        if probe not in answers:
            continue
        answer = _health_answer(answers[probe])
        result, body = answer if probe == "ready" else (answer, None)
        result = _health_answer(result)
        records.extend(result["evidence"])
        checks.append(Check(result["ok"], result["msg"]))
        if probe == "ready":
            if isinstance(body, (ProbeError, ValueError)):
                # The role's uri task failed the unit here; a record says so and the verdict sees it.
                records.append(record(name, "backends", False, {"backends": None, "checks": {}},
                                      f"could not read the backends from /ready: {getattr(body, 'reason', body)}"))
            elif isinstance(body, BaseException):
                raise body
            else:
                rec = backends_record(name, body)
                if rec is not None:
                    records.append(rec)
    if role == "ml_service":
        if "jwt" in answers:
            outcome = answers["jwt"]
            if isinstance(outcome, BaseException):
                raise outcome
            records.extend(outcome.evidence)
            checks.append(Check(outcome.ok, outcome.msg))
        else:
            reason = (unit.get("security_exceptions") or {}).get("jwt")
            records.append(record(name, "jwt_exception", True, {"reason": reason, "host_port": False},
                                  f"no JWT by declaration: {reason}"))
    if "cross_host" in answers:
        answer = answers["cross_host"]
        if isinstance(answer, BaseException):
            raise answer
        rec = cross_host_record(unit, answer)
        records.append(rec)
        checks.append(Check(rec["ok"], record_msg(rec)))
    return records, checks


def _app(unit: Mapping[str, Any], container: Mapping[str, Any],
         answers: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Check]]:
    """``app_health``: an app's own healthcheck, else a TCP connect to its port, else that it runs."""
    state = container.get("State") or {}
    port = unit.get("port")
    if "Health" in state:
        evidence, ok = "healthcheck", _health(container, "") == "healthy"
    elif port is not None:
        evidence, ok = "tcp", answers.get("tcp") is None
    else:
        evidence, ok = "running", bool(state.get("Running"))
    message = {
        "healthcheck": f"the unit's healthcheck says {_health(container, 'none')}",
        "tcp": f"port {port}{' accepts connections' if ok else ' refuses connections'}"
               " (weaker evidence: no healthcheck, a TCP connect only)",
        "running": "running; no healthcheck and no port to probe (the weakest evidence)",
    }[evidence]
    observed = {"evidence": evidence, "health": _health(container, "none"), "port": port,
                "compose": (unit.get("app") or {}).get("compose")}
    rec = record(unit["name"], "app_health", ok, observed, message)
    return [rec], [Check(ok, record_msg(rec))]


# --- the unit's state -----------------------------------------------------------------


def unit_state_record(unit: Mapping[str, Any], role: str, container: Mapping[str, Any] | None,
                      checks: list[Check]) -> tuple[dict[str, Any], bool]:
    """``unit_state`` against the mission's criteria, and whether it fails the unit when not ok.

    ``checks``: the kind's checks first, then hardening and port holder, as the role listed them.
    """
    exists = container is not None
    state = (container or {}).get("State") or {}
    failed = [c.msg for c in checks if not c.ok]
    # An app whose image and compose file declare no healthcheck has no health status: its
    # check probes its port instead, and says that this is weaker evidence.
    ok = (bool(role) and exists
          and (_health(container, "") == "healthy"
               or (unit.get("kind") == "app" and "Health" not in state and bool(state.get("Running"))))
          and not failed)
    if not role:
        message = "not deployed: no role in the catalog entry (mlstack_unit_role)"
    elif not exists:
        message = "container absent"
    elif not state.get("Running"):
        message = f"container {state.get('Status')} (degraded: kept for its logs)"
    else:
        message = "all checks passed" if ok else "failed checks: " + ", ".join(failed)
    observed = {
        "critical": bool(unit.get("critical")),
        "deployed": exists,
        "health": _health(container, "none") if exists else "absent",
        "image": ((container or {}).get("Config") or {}).get("Image") or "",
        "role": role or "none",
    }
    fail_on_error = (bool(unit.get("critical")) and bool(role)) or bool(unit.get("strict"))
    return record(unit["name"], "unit_state", ok, observed, message), fail_on_error


def deploy_failed_message(unit: Mapping[str, Any]) -> str:
    return (f"unit {unit['name']}: its deploy failed this run (its deploy task and record say why); "
            "the unit_state record above says what it serves now")
