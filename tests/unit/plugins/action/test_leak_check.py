"""aiops.mlstack.leak_check as Ansible runs it (the action plugin on the controller, ad hoc).

The judgement is tested in test_security.py; here the glue: a planted password and a
planted token fail the task, its record names the file and the secret, never a value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.aiops.mlstack.plugins.plugin_utils import _jwt

ROOT = Path(__file__).resolve().parents[4]
PASSWORD = "Zq7" * 12


def leak_check(secrets: Path, searched: Path) -> tuple[int, dict]:
    # The evidence callback writes this run's bundle beside the test's files, not into evidence/.
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "MLSTACK_EVIDENCE_DIR": str(secrets.parent / "bundles")}
    args = json.dumps({"dir": str(secrets), "paths": [str(searched)]})
    done = subprocess.run([str(Path(sys.executable).with_name("ansible")), "localhost", "-c", "local",
                           "-m", "aiops.mlstack.leak_check", "-a", args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.startswith("{"), done.stderr[-2000:]
    # The evidence callback prints its summary after the JSON document.
    result = json.JSONDecoder().raw_decode(done.stdout)[0]["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return done.returncode, result


def test_planted_password_and_token_fail_the_check_without_their_values(tmp_path: Path) -> None:
    secrets, bundle = tmp_path / "secrets", tmp_path / "evidence"
    (secrets / "redis").mkdir(parents=True, mode=0o700)
    (secrets / "redis" / "chat").write_text(PASSWORD)
    bundle.mkdir()
    (bundle / "clean.json").write_text('{"ok": true}')
    rc, result = leak_check(secrets, bundle)
    assert rc == 0 and result["evidence"]["ok"] is True, result

    token, _exp = _jwt.mint(_jwt.throwaway_private_pem(), "operator", "chat", [], 60)
    (bundle / "log.txt").write_text(f"password={PASSWORD}\nAuthorization: Bearer {token}\n")
    rc, result = leak_check(secrets, bundle)
    assert rc != 0 and result["failed"] is True
    found = result["evidence"]["observed"]["found_in"]
    assert found == {str(bundle / "log.txt"): ["redis/chat", "a signed JWT (bearer token)"]}
    assert PASSWORD not in json.dumps(result) and token not in json.dumps(result)
