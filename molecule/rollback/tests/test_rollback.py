"""Failed upgrades, degradation, on-demand rollback and destroy, against the real local stack.

Each test deploys a v2 of some units with playbooks/phase5.yml (the local inventory plus
host_vars), as a user would, while a request loop keeps asking the critical voice unit for
a session written under v1, and records its figures in FIGURES (printed at the end and
written to evidence/rollback-scenario.json).

The breakages are real misconfigurations, not test hooks in the services: a log level the
service refuses at start (LOG_LEVEL=VERBOSE), a Redis memory limit redis-server cannot parse.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests
from conftest import (
    CHAT,
    FIGURES,
    ROOT,
    VOICE,
    RequestLoop,
    inspect,
    inventory,
    looping,
    playbook,
    token,
    voice_headers,
)

BROKEN_SERVICE = {"mlstack_env": {"LOG_LEVEL": "VERBOSE"}}
# A non-critical unit of the catalog. When v1 deployed it, its v2 fails beside the serving
# container; when v1 did not (no role yet), it fails on its first deploy and is stopped.
NON_CRITICAL = "reasoning"


def session_intact(session: str) -> bool:
    response = requests.get(f"{VOICE}/v1/sessions/{session}", headers=voice_headers(), timeout=10)
    return response.status_code == 200 and response.json()["id"] == session


def test_failed_upgrade_of_a_critical_unit_fails_the_run_and_v1_serves_throughout(
        tmp_path: Path, request_loop: RequestLoop, voice_session: str) -> None:
    v1 = inspect("mlstack-voice-interaction")
    assert v1 is not None and v1["State"]["Health"]["Status"] == "healthy"
    run = playbook("phase5.yml", inventory(tmp_path, {"voice-interaction": BROKEN_SERVICE}))
    request_loop.stop()
    assert run.rc != 0, "a critical unit that cannot be made healthy must fail the run"
    assert run.evidence["verdict"] == "fail"
    deploy = run.records("voice-interaction", "deploy")[-1]
    assert deploy["ok"] is False
    observed = deploy["observed"]
    assert observed["rolled_back"] is True and observed["update_order"] == "start-first"
    assert observed["not_serving_s"] == 0.0
    assert observed["last_good"]["image_id"] == v1["Image"]
    assert observed["failure"]["state"] in ("exited", "unhealthy")
    now = inspect("mlstack-voice-interaction")
    assert now is not None and now["Id"] == v1["Id"], "the serving v1 container must never be replaced"
    assert inspect("mlstack-voice-interaction_next") is None
    assert session_intact(voice_session)
    # The quality stream still verified the unit: what serves is v1, healthy, checks passed.
    state = run.records("voice-interaction", "unit_state")[-1]
    assert state["ok"] is True and state["observed"]["health"] == "healthy"
    assert next(c for c in run.evidence["criteria"] if c["name"] == "critical units up")["ok"] is True
    FIGURES["critical_failed_upgrade"] = {"requests_ok": request_loop.ok, "requests_failed": request_loop.failed,
                                          "not_serving_s": observed["not_serving_s"],
                                          "candidate_failed_after_s": observed["failure"].get("waited_s")}
    assert request_loop.ok > 0
    assert request_loop.failed == 0, f"requests failed during the failed upgrade: {request_loop.errors[:5]}"


def test_failed_non_critical_unit_degrades_and_the_run_goes_on(tmp_path: Path) -> None:
    before = inspect(f"mlstack-{NON_CRITICAL}")
    was_serving = before is not None and (before["State"].get("Health") or {}).get("Status") == "healthy"
    broken = {**BROKEN_SERVICE, "mlstack_unit_role": "ml_service"}
    inv = inventory(tmp_path, {NON_CRITICAL: broken})
    run = playbook("phase5.yml", inv)
    assert run.rc == 0, run.output[-3000:]
    assert run.evidence["verdict"] == "degraded"
    deploy = run.records(NON_CRITICAL, "deploy")[-1]
    assert deploy["ok"] is False and deploy["observed"]["degraded"] is True
    # The critical units were verified in the same run: the failure stayed where it happened.
    for unit in ("voice-interaction", "chat", "redis", "postgresql"):
        assert run.records(unit, "unit_state")[-1]["ok"] is True, unit
    after = inspect(f"mlstack-{NON_CRITICAL}")
    if was_serving:
        assert after is not None and after["Id"] == before["Id"]
        assert after["State"]["Health"]["Status"] == "healthy"
    else:
        assert after is not None and after["State"]["Running"] is False  # stopped, kept for its logs
    strict = playbook("phase5.yml", inv, "-e", "mlstack_strict=true")
    assert strict.rc != 0, "strict mode must turn a degraded unit into a failed run"
    FIGURES["non_critical"] = {"unit": NON_CRITICAL, "had_last_good": was_serving,
                               "kept": deploy["observed"].get("failure", {}).get("kept"),
                               "strict_rc": strict.rc}


def test_failed_database_upgrade_is_rolled_back_with_its_data(
        tmp_path: Path, request_loop: RequestLoop, voice_session: str) -> None:
    v1 = inspect("mlstack-redis")
    assert v1 is not None
    run = playbook("phase5.yml", inventory(tmp_path, {"redis": {"redis_maxmemory": "plenty"}}))
    request_loop.stop()
    assert run.rc != 0
    observed = run.records("redis", "deploy")[-1]["observed"]
    assert observed["rolled_back"] is True and observed["update_order"] == "stop-first"
    now = inspect("mlstack-redis")
    assert now is not None and now["Id"] == v1["Id"] and now["State"]["Health"]["Status"] == "healthy"
    volumes = {m["Name"] for m in now["Mounts"] if m["Type"] == "volume"}
    assert volumes == {m["Name"] for m in v1["Mounts"] if m["Type"] == "volume"}
    assert session_intact(voice_session), "data written under v1 must survive the failed upgrade"
    FIGURES["database_failed_upgrade"] = {"not_serving_s": observed["not_serving_s"],
                                          "requests_ok": request_loop.ok, "requests_failed": request_loop.failed}


def test_on_demand_rollback_restores_the_previous_container(
        tmp_path: Path, request_loop: RequestLoop, voice_session: str) -> None:
    v1 = inspect("mlstack-voice-interaction")
    assert v1 is not None
    inv = inventory(tmp_path, {"voice-interaction": {"mlstack_env": {"LOG_LEVEL": "DEBUG"}}})
    upgrade = playbook("phase5.yml", inv)
    assert upgrade.rc == 0, upgrade.output[-3000:]
    v2 = inspect("mlstack-voice-interaction")
    assert v2 is not None and v2["Id"] != v1["Id"]
    failed_during_upgrade = request_loop.failed
    listed = playbook("rollback.yml", inv, "-e", "mlstack_rollback_list=true", "--limit", "voice-interaction")
    states = listed.records("voice-interaction", "rollback_states")[-1]["observed"]["states"]
    assert [s["slot"] for s in states] == ["current", "previous"]
    assert states[1]["spec_hash"] == v1["Config"]["Labels"]["io.mlstack.spec-hash"]
    rollback = playbook("rollback.yml", inv, "--limit", "voice-interaction")
    request_loop.stop()
    assert rollback.rc == 0, rollback.output[-3000:]
    record = rollback.records("voice-interaction", "rollback")[-1]
    assert record["ok"] is True
    now = inspect("mlstack-voice-interaction")
    assert now is not None and now["Id"] == v1["Id"]
    assert inspect("mlstack-voice-interaction_previous")["Id"] == v2["Id"]
    assert session_intact(voice_session)
    # The declared v1 inventory matches the restored container: nothing to do.
    again = playbook("phase5.yml", ROOT / "inventories" / "local", "--limit", "localhost,voice-interaction,redis")
    assert [r["observed"]["action"] for r in again.records("voice-interaction", "deploy")] == ["none"]
    deployed = upgrade.records("voice-interaction", "deploy")[-1]["observed"]
    FIGURES["good_upgrade_then_rollback"] = {
        "upgrade_not_serving_s": deployed["not_serving_s"], "upgrade_switched": deployed.get("switched"),
        "rollback_not_serving_s": record["observed"]["not_serving_s"],
        "rollback_switched": record["observed"].get("switched"),
        "requests_failed_during_upgrade": failed_during_upgrade,
        "requests_failed_during_rollback": request_loop.failed - failed_during_upgrade,
        "requests_ok": request_loop.ok, "slowest_s": request_loop.slowest_s,
        "errors": request_loop.errors[:5]}
    # The unit binds no host port (its port holder does): both switches are made with no gap.
    assert deployed["switched"] == "candidate promoted" and deployed["port_holder"]["action"] == "none"
    assert request_loop.failed == 0, f"requests failed during the upgrade or the rollback: {request_loop.errors[:5]}"


def test_an_internal_unit_is_upgraded_and_rolled_back_without_a_failed_request(tmp_path: Path) -> None:
    """The llm unit has no host port: its proven candidate takes over, and rollback.yml starts the
    kept container beside the serving one. Chat, which answers with the llm, is asked throughout."""
    headers = {"Authorization": f"Bearer {token('chat', 'chat:complete')}"}
    ask = {"max_tokens": 2, "temperature": 0, "messages": [{"role": "user", "content": "Say yes."}]}
    v1 = inspect("mlstack-llm")
    assert v1 is not None
    inv = inventory(tmp_path, {"llm": {"mlstack_env": {"LLM_N_CTX": "1536"}}})
    with looping(lambda: requests.post(f"{CHAT}/v1/chat/completions", headers=headers, json=ask, timeout=30)) as loop:
        upgrade = playbook("phase5.yml", inv, "--limit", "localhost,llm")
        during_upgrade = (loop.ok, loop.failed)
        rollback = playbook("rollback.yml", inv, "--limit", "llm")
    assert upgrade.rc == 0, upgrade.output[-3000:]
    assert rollback.rc == 0, rollback.output[-3000:]
    deployed = upgrade.records("llm", "deploy")[-1]["observed"]
    restored = rollback.records("llm", "rollback")[-1]["observed"]
    assert deployed["switched"] == "candidate promoted" and deployed["not_serving_s"] == 0.0
    assert restored["switched"].startswith("restored beside") and restored["not_serving_s"] == 0.0
    now = inspect("mlstack-llm")
    assert now is not None and now["Id"] == v1["Id"]
    assert now["NetworkSettings"]["Networks"]["mlstack_backend"]["Aliases"][:1] == ["llm"]
    FIGURES["internal_unit_upgrade_then_rollback"] = {
        "unit": "llm", "upgrade_switch_s": deployed.get("switch_s"),
        "requests_ok_during_upgrade": during_upgrade[0], "requests_failed_during_upgrade": during_upgrade[1],
        "requests_ok": loop.ok, "requests_failed": loop.failed, "errors": loop.errors[:5]}
    assert loop.ok > 0
    assert loop.failed == 0, f"chat requests failed while its llm was switched: {loop.errors[:5]}"


# Last in this file (pytest keeps file order): it takes the stack down and redeploys it.
def test_destroy_keeps_data_and_secrets_and_a_redeploy_finds_them(tmp_path: Path, voice_session: str) -> None:
    volumes = {m["Name"] for m in inspect("mlstack-redis")["Mounts"] if m["Type"] == "volume"}
    local = ROOT / "inventories" / "local"
    destroyed = playbook("destroy.yml", local)
    assert destroyed.rc == 0, destroyed.output[-3000:]
    assert inspect("mlstack-redis") is None and inspect("mlstack-voice-interaction") is None
    assert inspect("mlstack-voice-interaction_previous") is None
    assert "kept: data volumes, secrets" in destroyed.output
    for volume in volumes:
        exists = subprocess.run(["docker", "volume", "inspect", volume], capture_output=True, check=False)
        assert exists.returncode == 0, f"volume {volume} was removed"
    redeploy = playbook("phase5.yml", local)
    assert redeploy.rc == 0, redeploy.output[-3000:]
    assert session_intact(voice_session), "a session written before destroy must be there after the redeploy"
    FIGURES["destroy_redeploy_wall_s"] = redeploy.evidence["run"].get("wall_s")
