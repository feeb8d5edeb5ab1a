"""A unit's verification in one task (aiops.mlstack.unit_verify): the records, the probes
against a real local HTTP server, the hardening from inspect dicts and the unit's state."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from verify_fake import READY, FakeService, serving
from verify_fake import make_inspect as _inspect
from verify_fake import make_unit as _unit

from ansible_collections.aiops.mlstack.plugins.plugin_utils import _verify as v
from ansible_collections.aiops.mlstack.plugins.plugin_utils._jwt_check import JwtOutcome, attack


@pytest.fixture
def server() -> Iterator[tuple[int, type[FakeService]]]:
    with serving({"/health": (200, {"status": "ok"}), "/ready": (200, READY), "/metrics": (200, "up 1")}) as running:
        yield running


def _no_jwt(base: str) -> JwtOutcome:
    raise AssertionError(f"no JWT attack expected on {base}")


# --- the probes against a real server --------------------------------------------------


def test_a_service_gives_health_ready_backends_and_jwt_records_in_the_roles_order(server: Any) -> None:
    port, handler = server
    unit, container = _unit(port=port), _inspect()
    jwt = JwtOutcome([{"unit": "chat", "check": "jwt_no_token_refused", "ok": True}], "chat: jwt ok", ["GET /v1/x"])
    answers = v.run_concurrently(v.kind_probes(unit, container, "ml_service", 2.0, lambda base: jwt))
    records, checks = v.kind_records(unit, container, "ml_service", answers)
    assert [r["check"] for r in records] == ["health", "ready", "backends", "jwt_no_token_refused"]
    assert all(r["ok"] for r in records)
    assert records[0]["observed"]["url"] == f"http://127.0.0.1:{port}/health"
    assert records[0]["observed"]["probes_total"] == 5
    assert records[2]["observed"] == {"backends": READY["backends"],
                                      "checks": {"vector": {"ok": True}, "graph": {"ok": True}}}
    assert records[2]["message"] == "vector: qdrant server http://qdrant:6333; graph: embedded"
    # health, ready and JWT count for the unit's state; the backends record does not (as in the role)
    assert [c.ok for c in checks] == [True, True, True] and checks[2].msg == "chat: jwt ok"
    # 6 readiness probes (1 + 5 latency probes) and the one read of the backends
    assert handler.seen.count("/ready") == 7


def test_a_backend_the_unit_reports_down_fails_the_backends_record_only(server: Any) -> None:
    port, handler = server
    handler.answers["/ready"] = (503, {**READY, "checks": {**READY["checks"], "graph": {"ok": False}}})
    unit = _unit(port=port, security_exceptions={"jwt": "internal only"})
    answers = v.run_concurrently(v.kind_probes(unit, _inspect(), "ml_service", 2.0, _no_jwt))
    records, checks = v.kind_records(unit, _inspect(), "ml_service", answers)
    by = {r["check"]: r for r in records}
    assert not by["backends"]["ok"] and not by["ready"]["ok"] and by["health"]["ok"]
    assert by["jwt_exception"] == {**by["jwt_exception"], "ok": True, "message": "no JWT by declaration: internal only",
                                   "observed": {"reason": "internal only", "host_port": False}}
    state, fail = v.unit_state_record(unit, "ml_service", _inspect(), checks)
    assert not state["ok"] and fail
    assert state["message"].startswith("failed checks: chat: ready failed: ")


def test_a_ready_answer_without_backends_gives_no_backends_record_and_no_ready_without_health_path(
        server: Any) -> None:
    port, handler = server
    handler.answers["/ready"] = (200, {"ready": True})
    records, _failed = v.kind_records(_unit(port=port), _inspect(), "ml_service", v.run_concurrently(
        v.kind_probes(_unit(port=port, security_exceptions={"jwt": "x"}), _inspect(), "ml_service", 2.0, _no_jwt)))
    assert [r["check"] for r in records] == ["health", "ready", "jwt_exception"]
    unit = _unit(port=port, health_path="/healthz", security_exceptions={"jwt": "x"})
    handler.answers["/healthz"] = (200, {})
    probes = v.kind_probes(unit, _inspect(), "ml_service", 2.0, _no_jwt)
    assert sorted(probes) == ["health"]


def test_a_unit_that_does_not_answer_fails_its_health_and_its_backends_record() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        unit = _unit(port=port, security_exceptions={"jwt": "x"})
        probes = v.kind_probes(unit, _inspect(), "ml_service", 0.5, _no_jwt)
        # no waiting between the 5 retries in a unit test
        answers = v.run_concurrently(probes)
    records, checks = v.kind_records(unit, _inspect(), "ml_service", answers)
    by = {r["check"]: r for r in records}
    assert not by["health"]["ok"] and "refused" in by["health"]["message"]
    assert not by["backends"]["ok"] and by["backends"]["message"].startswith("could not read the backends from /ready")
    assert [c.ok for c in checks] == [False, False]


def test_monitoring_probes_health_and_metrics_and_skips_metrics_without_a_path(server: Any) -> None:
    port = server[0]
    unit = _unit("monitoring", port=port)
    records, checks = v.kind_records(unit, _inspect(), "monitoring",
                                     v.run_concurrently(v.kind_probes(unit, _inspect(), "monitoring", 2.0, _no_jwt)))
    assert [(r["check"], r["ok"]) for r in records] == [("health", True), ("metrics", True)]
    assert len(checks) == 2
    assert sorted(v.kind_probes(_unit("monitoring", port=port, metrics_path=None), _inspect(), "monitoring", 2.0,
                                _no_jwt)) == ["health"]


def test_an_app_without_healthcheck_is_judged_by_a_tcp_connect(server: Any) -> None:
    port = server[0]
    unit = _unit("app", port=port, kind="app", app={"host_ports": [], "compose": "/srv/app/compose.yml"})
    container = _inspect(health=None)
    records, checks = v.kind_records(unit, container, "app",
                                     v.run_concurrently(v.kind_probes(unit, container, "app", 2.0, _no_jwt)))
    assert records[0]["check"] == "app_health" and records[0]["ok"]
    assert records[0]["observed"] == {"evidence": "tcp", "health": "none", "port": port,
                                      "compose": "/srv/app/compose.yml"}
    assert "accepts connections" in records[0]["message"] and checks[0].msg.startswith("chat: app_health ok: ")
    refused = v.kind_records(unit, container, "app", {"tcp": "refused"})[0]
    assert not refused[0]["ok"] and "refuses connections" in refused[0]["message"]
    healthy = v.kind_records(unit, _inspect(health="unhealthy"), "app", {})[0]
    assert healthy[0]["observed"]["evidence"] == "healthcheck" and not healthy[0]["ok"]


def test_probes_run_at_the_same_time_and_an_exception_is_an_answer() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def meet() -> int:
        return barrier.wait()  # each returns only when all three wait at once

    def broken() -> None:
        raise ValueError("no answer")

    answers = v.run_concurrently({"a": meet, "b": meet, "c": meet, "d": broken})
    assert sorted(answers[k] for k in "abc") == [0, 1, 2]
    assert isinstance(answers["d"], ValueError)


def test_the_first_probes_end_before_the_others_start() -> None:
    events: list[str] = []
    barrier = threading.Barrier(2, timeout=5)

    def probe(name: str, meet: bool = False) -> Any:
        def run() -> str:
            events.append(f"start {name}")
            if meet:
                barrier.wait()
            events.append(f"end {name}")
            return name
        return run

    answers = v.run_concurrently({"jwt": probe("jwt", True), "health": probe("health"), "ready": probe("ready", True)},
                                 first=("health",))
    assert events[:2] == ["start health", "end health"]
    assert list(answers) == ["jwt", "health", "ready"] and answers["ready"] == "ready"


def test_jwt_attacks_that_cannot_run_give_a_failed_jwt_enforced_record(server: Any) -> None:
    port = server[0]  # no /openapi.json
    outcome = attack("chat", f"http://127.0.0.1:{port}/", "/nowhere", timeout=2)
    assert outcome.error and not outcome.ok
    assert [(r["check"], r["ok"]) for r in outcome.evidence] == [("jwt_enforced", False)]
    assert outcome.msg.startswith("could not run the JWT checks: ")


# --- the common part from inspect dicts ------------------------------------------------


def test_a_hardened_container_passes_and_each_broken_rule_is_named() -> None:
    rec = v.hardening_record(_unit(), _inspect(), holder_exists=True)
    assert rec["ok"] and rec["check"] == "hardening" and rec["observed"]["declared_host_ports"] == []
    assert rec["message"].startswith("user, capabilities, read-only root")
    broken = v.hardening_record(_unit(host_port=8443), _inspect(Privileged=True, ReadonlyRootfs=False),
                                holder_exists=False)
    assert not broken["ok"]
    assert set(broken["observed"]["findings"]) == {"not_privileged", "read_only_root", "published_ports"}
    assert broken["observed"]["declared_host_ports"] == [8443]
    assert broken["message"] == "hardening broken: " + json.dumps(broken["observed"]["findings"])


def test_an_adopted_compose_container_and_declared_exceptions_waive_their_rules() -> None:
    container = _inspect(SecurityOpt=[], LogConfig={"Type": "json-file", "Config": {}})
    container["Config"]["Labels"] = {"com.docker.compose.project": "legacy"}
    rec = v.hardening_record(_unit(security_exceptions={"pids_limit": "why"}), {**container, "HostConfig": {
        **container["HostConfig"], "PidsLimit": 0}}, holder_exists=True)
    assert rec["ok"], rec["observed"]["findings"]
    assert set(rec["observed"]["exceptions"]) == {"pids_limit", "no_new_privileges", "log_rotation"}
    container["Config"]["Labels"] = {}  # not adopted: the same settings break two rules
    assert set(v.hardening_record(_unit(), container, holder_exists=True)["observed"]["findings"]) == {
        "no_new_privileges", "log_rotation"}


def test_the_port_holder_must_be_healthy_and_bind_exactly_the_declared_ports() -> None:
    bindings = {"8443/tcp": [{"HostIp": "", "HostPort": "8443"}]}
    holder = _inspect(PortBindings=bindings)
    rec = v.holder_record(_unit(host_port=8443), holder)
    assert rec["ok"] and rec["message"] == "binds 8443 and forwards to the unit; hardened, healthy"
    assert rec["observed"] == {"container": "mlstack-chat-port", "health": "healthy",
                               "forward": ["MLSTACK_FORWARD=chat:8000"], "published_ports": bindings, "findings": {}}
    assert not v.holder_record(_unit(host_port=8443), _inspect(health="starting", PortBindings=bindings))["ok"]
    wrong = v.holder_record(_unit(host_port=9000), holder)
    assert not wrong["ok"] and wrong["message"].startswith("port holder broken: ")


# --- the unit's state ------------------------------------------------------------------


@pytest.mark.parametrize(("role", "container", "message", "ok"), [
    ("", None, "not deployed: no role in the catalog entry (mlstack_unit_role)", False),
    ("ml_service", None, "container absent", False),
    ("ml_service", _inspect(running=False, health="unhealthy"), "container exited (degraded: kept for its logs)",
     False),
    ("ml_service", _inspect(), "all checks passed", True),
    ("ml_service", _inspect(health="starting"), "failed checks: ", False),  # as the role wrote it
])
def test_unit_state_messages(role: str, container: dict[str, Any] | None, message: str, ok: bool) -> None:
    rec = v.unit_state_record(_unit(), role, container, [])[0]
    assert (rec["message"], rec["ok"]) == (message, ok)
    assert rec["observed"]["deployed"] is (container is not None)
    assert rec["observed"]["health"] == ("absent" if container is None else container["State"]["Health"]["Status"])
    assert rec["observed"]["role"] == (role or "none")


def test_unit_state_fails_the_unit_only_when_critical_with_a_role_or_strict() -> None:
    failed = [v.Check(True, "a"), v.Check(False, "chat: hardening FAILED: x")]
    rec, fail = v.unit_state_record(_unit(critical=False), "ml_service", _inspect(), failed)
    assert not rec["ok"] and not fail and rec["message"] == "failed checks: chat: hardening FAILED: x"
    assert v.unit_state_record(_unit(critical=True), "", None, [])[1] is False
    assert v.unit_state_record(_unit(critical=False, strict=True), "", None, [])[1] is True
    app = v.unit_state_record(_unit(kind="app"), "app", _inspect(health=None), [])[0]
    assert app["ok"] and app["observed"]["image"] == "mlstack/services:1"


def test_cross_host_tls_names_the_other_host_when_it_fails() -> None:
    from ansible_collections.aiops.mlstack.plugins.plugin_utils._verify import (
        cross_host_dependencies,
        cross_host_record,
    )

    unit = {"name": "learning", "depends_on": [
        {"unit": "postgresql", "role": "postgresql", "docker_host": "h1", "host": "10.77.0.11", "port": 5432,
         "cross_host": True},
        {"unit": "llm", "role": "ml_service", "docker_host": "h1", "host": "10.77.0.11", "port": 8080,
         "cross_host": True},
        {"unit": "redis", "role": "redis", "docker_host": "h2", "host": "redis", "port": 6379, "cross_host": False}]}
    # Only the databases across hosts are probed (the same host stays on the internal network).
    assert cross_host_dependencies(unit) == [
        {"unit": "postgresql", "role": "postgresql", "docker_host": "h1", "address": "10.77.0.11", "port": 5432}]
    good = {"postgresql": {"docker_host": "h1", "address": "10.77.0.11:5432", "role": "postgresql",
                           "tls": {"ok": True, "version": "TLSv1.3"}, "plaintext": {"ok": True, "answer": "refused"}}}
    rec = cross_host_record(unit, good)
    assert rec["ok"] and rec["check"] == "cross_host_tls" and "TLSv1.3" in rec["message"]
    lost = {"postgresql": {**good["postgresql"], "tls": {"ok": False, "error": "ConnectionRefusedError"},
                           "plaintext": {"ok": False, "answer": "could not connect"}}}
    rec = cross_host_record(unit, lost)
    assert not rec["ok"] and "postgresql on Docker host h1 (10.77.0.11:5432): ConnectionRefusedError" in rec["message"]
    plain = {"postgresql": {**good["postgresql"], "plaintext": {"ok": False, "answer": "answered b'R'"}}}
    assert "plaintext not refused" in cross_host_record(unit, plain)["message"]


@pytest.mark.parametrize(("role", "host_port", "expected"), [
    ("postgresql", None, [5432]), ("postgresql", 15432, [5432]),
    ("redis", 16379, [16379, 6380]), ("redis", None, [6380])])
def test_a_database_other_hosts_reach_declares_its_tls_port(role: str, host_port: int | None,
                                                            expected: list[int]) -> None:
    from ansible_collections.aiops.mlstack.plugins.plugin_utils._verify import declared_host_ports

    tls = {"port": 5432 if role == "postgresql" else 6380, "remote_port": 5432 if role == "postgresql" else 6380}
    unit = {"role": role, "host_port": host_port, "tls": tls, "host_address": "10.77.0.11"}
    assert declared_host_ports(unit) == expected
    # Without a host address nothing is published for other hosts.
    assert declared_host_ports({**unit, "host_address": None}) == ([host_port] if host_port else [])
