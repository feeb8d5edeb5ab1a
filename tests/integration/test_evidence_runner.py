# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evidence callback in real runs: ansible-playbook with two local hosts under strategy
free, and the same playbook through ansible-runner (what AWX runs), whose job events carry
the summary that the final set_stats play hands over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".ansible" / "collections"
BIN = Path(sys.executable).parent
SECRET = "TOPSECRET-never-in-a-bundle-42"

CHECK_MODULE = '''\
#!/usr/bin/python
"""Test-only module: sleeps, then returns two evidence records for its unit."""
import time

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        unit=dict(type="str", required=True), ok=dict(type="bool", default=True),
        sleep=dict(type="float", default=0.0), fake=dict(type="str"), secret=dict(type="str", no_log=True)))
    p = module.params
    time.sleep(p["sleep"])
    base = {"schema": 1, "unit": p["unit"], "ok": p["ok"], "observed": {"latency_ms": 1.5},
            "message": "answered" if p["ok"] else "refused the connection",
            "timestamp": "2027-01-15T08:00:00.000+00:00"}
    if p["fake"]:
        base["fake"] = p["fake"]
    module.exit_json(changed=False, evidence=[dict(base, check="reachable"), dict(base, check="auth")],
                     msg="seen " + str(p["secret"]))


main()
'''

INVENTORY = """\
all:
  children:
    mlstack_units:
      hosts:
        alpha: {nap: 1.0}
        beta: {nap: 0.6}
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""

UNITS_PLAY = f"""\
- name: Units - each checks itself
  hosts: mlstack_units
  gather_facts: false
  strategy: ansible.builtin.free
  tasks:
    - name: Work for a while
      ansible.builtin.command: sleep {{{{ nap }}}}
      changed_when: false

    - name: Check the unit
      evidence_check:
        unit: "{{{{ inventory_hostname }}}}"
        sleep: "{{{{ nap }}}}"
        secret: {SECRET}
        fake: "{{{{ 'recorded response' if inventory_hostname == 'beta' else omit }}}}"

    - name: Use a secret quietly
      ansible.builtin.debug:
        msg: "{SECRET}"
      no_log: true
"""

# The final play of docs/evidence.md, verbatim.
AWX_PLAY = """\
- name: Evidence - hand the summary to AWX
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Publish the evidence summary as the job's artifacts
      ansible.builtin.set_stats:
        data:
          mlstack_evidence: "{{ lookup('ansible.builtin.file', _bundle ~ '/summary.json') | from_json }}"
        per_host: false
        aggregate: true
      vars:
        _bundle: "{{ lookup('ansible.builtin.env', 'MLSTACK_EVIDENCE_BUNDLE') }}"
      when: _bundle | length > 0
"""


def _project(where: Path, with_awx_play: bool) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "library").mkdir(exist_ok=True)
    (where / "library" / "evidence_check.py").write_text(CHECK_MODULE)
    (where / "site.yml").write_text("---\n" + UNITS_PLAY + ("\n" + AWX_PLAY if with_awx_play else ""))
    return where


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MLSTACK_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
               ANSIBLE_NOCOLOR="1", **extra)
    return env


def _files(bundle: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in bundle.iterdir() if p.is_file()}


def _check_bundle(bundle: Path) -> dict[str, Any]:
    files = _files(bundle)
    assert set(files) >= {"events.jsonl", "evidence.json", "summary.json", "report.md", "junit.xml", "timeline.svg"}
    for name, text in files.items():
        assert SECRET not in text, f"the secret leaked into {name}"
    evidence = json.loads(files["evidence.json"])
    assert evidence["run"]["status"] == "complete"
    assert evidence["verdict"] == "pass"
    units = {u["name"]: u for u in evidence["units"]}
    assert set(units) == {"alpha", "beta"}
    assert all(u["checks"] == {"ok": 2, "total": 2} for u in units.values())
    # Under strategy free the two hosts work side by side: more than one unit busy on average.
    assert evidence["parallelism"]["value"] > 1.2
    # Each host's own start: beta's second task starts when its own first one ended, not alpha's.
    beta_tasks = units["beta"]["tasks"]
    assert beta_tasks[1]["start_s"] == pytest.approx(beta_tasks[0]["end_s"], abs=0.5)
    assert beta_tasks[1]["start_s"] < units["alpha"]["tasks"][0]["end_s"]
    censored = [t for u in units.values() for t in u["tasks"] if t.get("censored")]
    assert [t["task"] for t in censored] == ["Use a secret quietly"] * 2
    suite = ET.fromstring(files["junit.xml"]).find("testsuite")
    assert {(c.get("classname"), c.get("name")) for c in suite.findall("testcase")} == {
        ("alpha", "reachable"), ("alpha", "auth"), ("beta", "reachable"), ("beta", "auth")}
    assert suite.get("failures") == "0"
    svg = ET.fromstring(files["timeline.svg"])
    rows = [g.get("data-unit") for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "row"]
    assert sorted(rows) == ["alpha", "beta"]
    report = files["report.md"]
    assert report.startswith("# Evidence: PASS")
    assert "| alpha |" in report and "| beta |" in report
    assert "**beta** · `reachable` ran against **recorded response**" in report
    return evidence


def test_ansible_playbook_writes_the_bundle(tmp_path):
    project = _project(tmp_path / "project", with_awx_play=False)
    (project / "inventory.yml").write_text(INVENTORY)
    (project / "ansible.cfg").write_text(textwrap.dedent("""\
        [defaults]
        callbacks_enabled = aiops.mlstack.evidence
        [callback_evidence]
        output_dir = ./out
        keep = 5
        """))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventory.yml", "site.yml"], cwd=project,
                          env=_env(ANSIBLE_CONFIG=str(project / "ansible.cfg")), capture_output=True, text=True,
                          check=False, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bundle = (project / "out" / "latest").resolve()
    assert bundle.parent == project / "out"
    _check_bundle(bundle)
    assert "EVIDENCE ****" in proc.stdout
    assert "verdict: pass" in proc.stdout
    assert SECRET not in proc.stdout
    assert "[WARNING]" not in proc.stderr + proc.stdout


def test_ansible_runner_job_events_carry_the_summary(tmp_path):
    ansible_runner = pytest.importorskip("ansible_runner")
    pdd = tmp_path / "runner"
    _project(pdd / "project", with_awx_play=True)
    (pdd / "inventory").mkdir(parents=True)
    (pdd / "inventory" / "hosts.yml").write_text(INVENTORY)
    out = tmp_path / "evidence"
    env = _env(ANSIBLE_CALLBACKS_ENABLED="aiops.mlstack.evidence", MLSTACK_EVIDENCE_DIR=str(out))
    result = ansible_runner.run(private_data_dir=str(pdd), playbook="site.yml", envvars=env, quiet=True,
                                ident="evidence-test")
    stdout = result.stdout.read()
    assert result.rc == 0, stdout
    assert result.status == "successful"

    # The bundle is written beside the runner's own artifacts.
    bundle = (out / "latest").resolve()
    evidence = _check_bundle(bundle)
    assert (pdd / "artifacts" / "evidence-test" / "job_events").is_dir()

    events = list(result.events)
    # AWX's stdout callback (awx_display) emits each task result as a job event, with the records.
    checks = [e for e in events if e["event"] == "runner_on_ok" and e["event_data"]["task"] == "Check the unit"]
    assert {e["event_data"]["host"] for e in checks} == {"alpha", "beta"}
    assert all(len(e["event_data"]["res"]["evidence"]) == 2 for e in checks)
    # The final set_stats play's data is the job's artifact_data (what AWX shows as artifacts).
    stats = next(e for e in events if e["event"] == "playbook_on_stats")
    artifact = stats["event_data"]["artifact_data"]["mlstack_evidence"]
    # A snapshot taken as the last play started: the run was not over, everything before it passed.
    assert artifact["status"] == "incomplete"
    assert artifact["verdict"] == "incomplete"
    assert artifact["verdict_so_far"] == "pass"
    assert artifact["bundle"] == str(bundle)
    assert set(artifact["units"]) == {"alpha", "beta"}
    assert artifact["units"]["alpha"]["checks_ok"] == 2
    assert evidence["run"]["status"] == "complete"
    # Our summary table reaches the job's stdout; the secret does not.
    assert "EVIDENCE ****" in stdout and "verdict: pass" in stdout
    assert SECRET not in stdout
    assert all(SECRET not in json.dumps(e) for e in events)
