# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""phase5 and the ``mlstack deploy`` workflow on the path AWX runs them, against this host's engine.

What is emulated, and why: no AWX server can run on these machines (no Kubernetes, no receptor
mesh, no PostgreSQL for AWX itself), so nothing here talks to AWX. Each job runs as AWX's job
runs it: ``ansible-runner transmit | worker | process`` with AWX's own stdout callback
(awx_display) and the evidence callback beside it, the job template's playbook, tags and limit
from ``awx/controller_templates.yml``, the extra vars in ``env/extravars``. The workflow is
walked as AWX's workflow manager walks ``awx/controller_workflows.yml``: a node runs once its
parents have finished and one of their edges (success or failure) leads to it, or all of them
for a converging node (``all_parents_must_converge``); the others are "do not run" (AWX may start
a node as soon as one edge fires; which nodes run is the same). Each node's
job gets the artifacts of its ancestors (their ``set_stats`` data) as extra vars, under the
workflow's own extra vars, as AWX merges them.

Every node runs in check mode (``job_type: check``), so the shared engine and the deployed stack
are read, never changed; the failure path is taken by a bad extra var on one node, which
preflight (tagged always, so it runs in every phase5 node) refuses. Needs the engine and the
deployed stack of ``inventories/local`` (scripts/test runs these after molecule default); hold
the Docker lock: ``flock -w 1200 /tmp/mlstack-docker.lock pytest tests/integration/test_awx_run_path.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(sys.executable).with_name("ansible-runner")
SECRETS = Path(os.environ.get("MLSTACK_SECRETS_DIR", Path.home() / ".local/share/mlstack/secrets"))
AWX = {path.stem: yaml.safe_load(path.read_text()) for path in (ROOT / "awx").glob("*.yml")}
TEMPLATES = {t["name"]: t for t in AWX["controller_templates"]["controller_templates"]}
[WORKFLOW] = AWX["controller_workflows"]["controller_workflows"]

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module", autouse=True)
def deployed_stack() -> None:
    docker = pytest.importorskip("docker")
    try:
        docker.from_env(timeout=30).containers.get("mlstack-redis")
    except Exception as exc:  # any failure to reach the engine or the stack means: skip
        if os.environ.get("MLSTACK_TEST_REQUIRE_IMAGES"):
            raise
        pytest.skip(f"needs the Docker engine and the deployed stack of inventories/local: {exc}")


@dataclass
class Job:
    """What AWX keeps of a job: its status, events and artifacts (``set_stats`` data)."""

    status: str
    events: list[dict[str, Any]]
    artifacts: dict[str, Any]
    extra_vars: dict[str, Any] = field(default_factory=dict)

    def plays(self) -> list[str]:
        return [e["event_data"]["play"] for e in self.events if e["event"] == "playbook_on_play_start"]


def run_job(tmp: Path, ident: str, playbook: str, cmdline: list[str], extra_vars: Mapping[str, Any]) -> Job:
    """One job, the way AWX runs it: its private data dir transmitted to a worker, the stream processed."""
    data = tmp / ident
    shutil.copytree(ROOT / "playbooks", data / "project" / "playbooks")
    shutil.copytree(ROOT / "inventories" / "local", data / "inventory")
    (data / "env").mkdir()
    (data / "env" / "envvars").write_text(json.dumps({
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".ansible" / "collections"),
        "ANSIBLE_CALLBACKS_ENABLED": "aiops.mlstack.evidence",
        "MLSTACK_EVIDENCE_DIR": str(tmp / "evidence" / ident),
        "ANSIBLE_FORKS": "24",
    }))
    (data / "env" / "extravars").write_text(json.dumps({"mlstack_secrets_dir": str(SECRETS), **extra_vars}))
    (data / "env" / "cmdline").write_text(" ".join(cmdline))
    pipeline = (f"{RUNNER} transmit {data} -p {playbook} --ident {ident}"
                f" | {RUNNER} worker | {RUNNER} process {data} --ident {ident}")
    subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, timeout=900,
                   check=False, env={"PATH": f"{RUNNER.parent}:/usr/bin:/bin", "HOME": str(Path.home())})
    artifacts = data / "artifacts" / ident
    events = sorted((json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")),
                    key=lambda e: e["counter"])
    assert events, f"{ident}: process wrote no job event"
    stats = [e for e in events if e["event"] == "playbook_on_stats"]
    return Job(status=(artifacts / "status").read_text().strip(), events=events,
               artifacts=stats[-1]["event_data"].get("artifact_data") or {} if stats else {},
               extra_vars=dict(extra_vars))


def template_job(tmp: Path, ident: str, template: Mapping[str, Any], extra_vars: Mapping[str, Any]) -> Job:
    """A job template's job in check mode: its playbook, tags and limit, as AWX builds the command line."""
    cmdline = ["--check"]
    if template.get("job_tags"):
        cmdline += ["--tags", str(template["job_tags"])]
    if template.get("limit"):
        cmdline += ["--limit", str(template["limit"])]
    return run_job(tmp, ident, str(template["playbook"]), cmdline, {**template.get("extra_vars", {}), **extra_vars})


def _edges(workflow: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Each node's parents, as (parent, edge kind)."""
    parents: dict[str, list[tuple[str, str]]] = {n["identifier"]: [] for n in workflow["workflow_nodes"]}
    for node in workflow["workflow_nodes"]:
        for kind in ("success", "failure", "always"):
            for child in node.get("related", {}).get(f"{kind}_nodes", []):
                parents[child["identifier"]].append((node["identifier"], kind))
    return parents


def _fires(kind: str, status: str) -> bool:
    ran = status in ("successful", "failed")
    return (kind == "success" and status == "successful") or (kind == "failure" and status == "failed") or (
        kind == "always" and ran)


def run_workflow(tmp: Path, node_extra_vars: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Job | str]:
    """The workflow's nodes, wave by wave (parallel nodes in parallel, as AWX runs them).

    Returns each node's job, or "do not run" where no edge led to it."""
    nodes = {n["identifier"]: n for n in WORKFLOW["workflow_nodes"]}
    parents = _edges(WORKFLOW)
    done: dict[str, Job | str] = {}
    ancestors: dict[str, dict[str, Any]] = {}
    while len(done) < len(nodes):
        ready = [n for n in nodes if n not in done and all(p in done for p, _kind in parents[n])]
        assert ready, "the workflow graph has a cycle"
        launch = []
        for name in ready:
            status = {p: done[p].status if isinstance(done[p], Job) else "do not run" for p, _kind in parents[name]}
            fired = [_fires(kind, status[p]) for p, kind in parents[name]]
            converge = nodes[name].get("all_parents_must_converge", False)
            if parents[name] and not (all(fired) if converge else any(fired)):
                done[name] = "do not run"
                continue
            # AWX: the parents' own ancestor artifacts, then their jobs' artifacts; the workflow's extra vars win.
            inherited: dict[str, Any] = {}
            for parent, _kind in parents[name]:
                inherited.update(ancestors.get(parent, {}))
                if isinstance(done[parent], Job):
                    inherited.update(done[parent].artifacts)
            ancestors[name] = inherited
            launch.append(name)
        with ThreadPoolExecutor(max_workers=len(launch) or 1) as pool:
            jobs = {name: pool.submit(
                template_job, tmp, name, TEMPLATES[nodes[name]["unified_job_template"]["name"]],
                {**ancestors[name], **(node_extra_vars or {}).get(name, {}), **WORKFLOW.get("extra_vars", {})})
                for name in launch}
            done.update({name: job.result() for name, job in jobs.items()})
    return done


# --- phase5 in check mode through transmit | worker | process ------------------------------------


@pytest.fixture(scope="module")
def check_job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    return run_job(tmp_path_factory.mktemp("awx-check"), "check1", "playbooks/phase5.yml", ["--check"], {})


def test_a_check_mode_phase5_plays_every_stream_as_awx_events(check_job: Job) -> None:
    assert check_job.status == "successful", [e.get("stdout") for e in check_job.events[-20:]]
    plays = check_job.plays()
    for prefix in ("Preflight", "GPU preflight", "Docker hosts", "Units", "Quality stream", "Evidence"):
        assert any(play.startswith(prefix) for play in plays), (prefix, plays)
    ran = {(e["event_data"]["host"], e["event_data"]["play"]) for e in check_job.events if e["event"] == "runner_on_ok"}
    assert {"redis", "chat", "localhost"} <= {host for host, _play in ran}
    [stats] = [e for e in check_job.events if e["event"] == "playbook_on_stats"]
    assert stats["event_data"]["failures"] == {} and stats["event_data"]["dark"] == {}


def test_a_check_mode_phase5_hands_its_evidence_summary_to_awx(check_job: Job) -> None:
    summary = check_job.artifacts["mlstack_evidence"]
    assert {"redis", "postgresql", "chat", "voice-interaction", "localhost"} <= set(summary["units"])
    written = json.loads((Path(summary["bundle"]) / "summary.json").read_text())
    assert written["run_id"] == summary["run_id"]
    assert summary["verdict_so_far"] in ("pass", "degraded", "incomplete"), summary["failed_checks"]


# --- the workflow, node by node --------------------------------------------------------------------


def test_the_workflow_runs_preflight_the_streams_and_verify_passing_artifacts_on(tmp_path: Path) -> None:
    jobs = run_workflow(tmp_path)
    statuses = {n: j.status if isinstance(j, Job) else j for n, j in jobs.items()}
    assert statuses == {**dict.fromkeys(("preflight", "infrastructure", "backend", "performance", "security",
                                         "quality", "verify"), "successful"), "rollback": "do not run"}, statuses
    preflight = jobs["preflight"]
    assert isinstance(preflight, Job)
    # Each node gets its ancestors' artifacts: verify sees the evidence summary a phase5 node handed over.
    for node in ("backend", "infrastructure", "verify"):
        job = jobs[node]
        assert isinstance(job, Job) and "mlstack_evidence" in job.extra_vars, node
    assert jobs["backend"].extra_vars["mlstack_evidence"]["run_id"] == preflight.artifacts["mlstack_evidence"]["run_id"]
    assert preflight.artifacts["mlstack_evidence"]["verdict"] == "incomplete"


def test_a_failed_node_takes_the_rollback_path(tmp_path: Path) -> None:
    # A unit may not be privileged: preflight refuses it, so the infrastructure stream fails before it
    # changes anything. (Its limit holds localhost, where preflight runs; the backend stream's does not.)
    jobs = run_workflow(tmp_path, {"infrastructure": {"mlstack_privileged": True}})
    statuses = {n: j.status if isinstance(j, Job) else j for n, j in jobs.items()}
    assert statuses["infrastructure"] == "failed" and statuses["preflight"] == "successful", statuses
    assert statuses["verify"] == "do not run", "verify converges: one failed stream keeps it from running"
    failed, rollback = jobs["infrastructure"], jobs["rollback"]
    assert isinstance(failed, Job) and isinstance(rollback, Job), "the failure path ran rollback"
    refused = [e for e in failed.events if e["event"] == "runner_on_failed"]
    assert refused and "mlstack_privileged=true is refused" in json.dumps(refused[0]["event_data"]["res"])
    # The rollback job received the ancestors' artifacts and the workflow's own extra vars.
    assert rollback.extra_vars["mlstack_rollback_list"] == "false"
    # (AWX merges all parents' in no set order: the summary of a phase5 node that got that far.)
    handed = {j.artifacts["mlstack_evidence"]["run_id"] for j in jobs.values()
              if isinstance(j, Job) and "mlstack_evidence" in j.artifacts}
    assert rollback.extra_vars["mlstack_evidence"]["run_id"] in handed
    assert any(play.startswith("Rollback") for play in rollback.plays())
    # In check mode each unit says what it would restore; one with no previous container says so
    # (and fails the job: on a real failure there would be nothing to go back to either).
    tried = [e for e in rollback.events if e["event"] in ("runner_on_ok", "runner_on_failed")
             and e["event_data"]["task"].startswith("Restore the unit's previous good container")]
    assert {e["event_data"]["host"] for e in tried} >= {"redis", "chat"}
    for event in tried:
        said = json.dumps(event["event_data"]["res"])
        assert "would restore the previous container" in said or "no previous state to restore" in said, said
