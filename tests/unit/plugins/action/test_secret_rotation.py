"""aiops.mlstack.secret as Ansible runs it: the stages of rotate_passwords.yml for an admin password.

The core is tested in tests/unit/plugins/plugin_utils/test_secrets.py; here the action plugin's
choice of what rotates: begin (the admin among rotation_names) keeps the former value and
returns it in ``previous``, a re-run keeps the new value, an interrupted begin is completed,
check mode writes nothing, end drops the former value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[4]


def secret(base: Path, rotation: str, check: bool = False) -> dict[str, Any]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "MLSTACK_EVIDENCE_DIR": str(base.parent / "bundles")}
    args = json.dumps({"dir": str(base), "unit": "postgresql", "names": ["postgres", "chat"],
                       "rotation": rotation, "rotation_names": ["postgres", "chat"]})
    done = subprocess.run([str(Path(sys.executable).with_name("ansible")), "localhost", "-c", "local",
                           "-m", "aiops.mlstack.secret", "-a", args, *(["--check"] if check else [])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.startswith("{"), done.stderr[-2000:]
    return json.JSONDecoder().raw_decode(done.stdout)[0]["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_an_admin_password_rotates_in_stages(tmp_path: Path) -> None:
    base = tmp_path / "secrets"
    first = secret(base, "none")["secrets"]
    checked = secret(base, "begin", check=True)
    assert checked["secrets"] == first and checked["previous"] == {}
    assert not list(base.rglob("*.previous")), "check mode writes nothing"

    begun = secret(base, "begin")
    assert begun["changed"] is True and sorted(begun["created"]) == ["chat (rotated)", "postgres (rotated)"]
    assert begun["previous"] == first and begun["secrets"]["postgres"] != first["postgres"]
    again = secret(base, "begin")
    assert again["changed"] is False and again["secrets"] == begun["secrets"] and again["previous"] == first

    # Interrupted before the new value was written: the former value in both files.
    (base / "postgresql" / "postgres").write_text(first["postgres"] + "\n")
    completed = secret(base, "begin")
    assert completed["created"] == ["postgres (rotated)"]
    assert completed["secrets"]["postgres"] not in (first["postgres"], begun["secrets"]["postgres"])
    assert completed["previous"]["postgres"] == first["postgres"]

    ended = secret(base, "end")
    assert ended["previous"] == {} and not list(base.rglob("*.previous"))
    assert ended["secrets"] == completed["secrets"]
