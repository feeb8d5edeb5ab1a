"""aiops.mlstack.unit_reconcile without a container, as Ansible runs it: the publish step of
rotate_passwords.yml (roles' tasks/credentials.yml) writes a unit's password files and nothing else.

The engine URL names a socket that does not exist: a container or prune step that ran would fail.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[4]


def reconcile(tmp: Path, check: bool = False) -> dict[str, Any]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "MLSTACK_EVIDENCE_DIR": str(tmp / "bundles")}
    uid = os.getuid()
    args = json.dumps({
        "unit": "chat", "docker_host": f"unix://{tmp}/no-engine.sock",
        "directories": [{"path": f"{tmp}/run/chat", "owner": uid, "mode": "0755"},
                        {"path": f"{tmp}/run/chat/secrets", "owner": uid, "mode": "0500"}],
        "secret_files": {"dir": f"{tmp}/run/chat/secrets", "secrets_dir": str(tmp / "secrets"),
                         "entries": {"redis_password": ["redis", "chat"]}, "owner": uid},
    })
    done = subprocess.run([str(Path(sys.executable).with_name("ansible")), "localhost", "-c", "local",
                           "-m", "aiops.mlstack.unit_reconcile", "-a", args, *(["--check"] if check else [])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.startswith("{"), done.stderr[-2000:]
    return json.JSONDecoder().raw_decode(done.stdout)[0]["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_without_a_container_only_the_files_are_written(tmp_path: Path) -> None:
    checked = reconcile(tmp_path, check=True)
    assert not checked.get("failed"), checked.get("msg")
    assert checked["changed"] is True and not (tmp_path / "run").exists(), "check mode writes nothing"

    written = reconcile(tmp_path)
    assert not written.get("failed"), written.get("msg")
    secret = tmp_path / "run/chat/secrets/redis_password"
    assert written["changed"] is True and str(secret) in written["steps"]["files"]
    assert "container" not in written["steps"] and "evidence" not in written
    assert secret.read_text() == (tmp_path / "secrets/redis/chat").read_text().strip()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o400
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o500
    assert secret.read_text() not in json.dumps(written), "the password is never returned"

    again = reconcile(tmp_path)
    assert again["changed"] is False and again["steps"]["files"] == []
