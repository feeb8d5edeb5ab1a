"""phase5 on the path AWX runs it: ``ansible-runner transmit | worker | process``.

AWX's own stdout callback (awx_display, as ansible-runner installs it) runs, with the evidence
callback enabled beside it as AWX's "Extra Environment Variables" would; the job events that
``process`` writes are what AWX would store. Only the preflight (``--tags preflight``, which
needs no Docker engine) runs here: the plays of the streams start and their tasks are skipped
by the tags, and phase5's last play (tagged always) must hand the evidence summary to AWX as
the job's artifacts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(sys.executable).with_name("ansible-runner")


def run_through_the_awx_path(tmp: Path, cmdline: str) -> list[dict[str, Any]]:
    data = tmp / "job"
    shutil.copytree(ROOT / "playbooks", data / "project" / "playbooks")
    shutil.copytree(ROOT / "inventories" / "local", data / "inventory")
    (data / "env").mkdir()
    (data / "env" / "envvars").write_text(json.dumps({
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".ansible" / "collections"),
        "ANSIBLE_CALLBACKS_ENABLED": "aiops.mlstack.evidence",
        "MLSTACK_EVIDENCE_DIR": str(tmp / "evidence"),
        "ANSIBLE_FORKS": "24",
    }))
    (data / "env" / "cmdline").write_text(cmdline)
    pipeline = (f"{RUNNER} transmit {data} -p playbooks/phase5.yml --ident job1"
                f" | {RUNNER} worker | {RUNNER} process {data} --ident job1")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, timeout=300,
                          check=False, env={"PATH": f"{RUNNER.parent}:/usr/bin:/bin", "HOME": str(tmp)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events_dir = data / "artifacts" / "job1" / "job_events"
    events = [json.loads(p.read_text()) for p in events_dir.glob("*.json")]
    assert events, "process wrote the job events"
    return sorted(events, key=lambda e: e["counter"])


@pytest.fixture(scope="module")
def preflight_events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_through_the_awx_path(tmp_path_factory.mktemp("runner"), "--tags preflight")


def test_the_plays_of_the_streams_reach_awx_as_events(preflight_events: list[dict[str, Any]]) -> None:
    plays = [e["event_data"]["play"] for e in preflight_events if e["event"] == "playbook_on_play_start"]
    for prefix in ("Preflight", "GPU preflight", "Docker hosts", "Units", "Quality stream", "Evidence"):
        assert any(play.startswith(prefix) for play in plays), (prefix, plays)
    ran = {e["event_data"]["task"] for e in preflight_events if e["event"] == "runner_on_ok"}
    assert "Validate units, dependencies and host ports" in ran


def test_the_evidence_summary_is_the_jobs_artifacts(preflight_events: list[dict[str, Any]]) -> None:
    [stats] = [e for e in preflight_events if e["event"] == "playbook_on_stats"]
    summary = stats["event_data"]["artifact_data"]["mlstack_evidence"]
    # The summary of every play before the last one: the run was still going when it was read.
    assert summary["status"] == "incomplete"
    # A preflight deploys nothing and verifies no unit: not a failure, nothing judged yet.
    assert summary["verdict"] == summary["verdict_so_far"] == "incomplete", summary["failed_checks"]
    assert summary["failed_checks"] == []
    assert {"localhost", "redis", "postgresql", "chat", "voice-interaction"} <= set(summary["units"])
    written = json.loads((Path(summary["bundle"]) / "summary.json").read_text())
    assert written["run_id"] == summary["run_id"], "the artifact is this run's bundle's summary"
    # The bundle's final summary, once the run is over: complete, and still incomplete as a verdict.
    assert (written["status"], written["verdict"]) == ("complete", "incomplete")
    assert stats["event_data"]["failures"] == {}
