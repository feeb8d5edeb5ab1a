# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/images.yml on the stack that phase5 deployed (molecule default leaves it running).

Every unit's image is already on the engine, so the playbook changes nothing, and it touches no
container: the same containers, by id, started at the same time, in the same state. On a fresh
machine scripts/test runs the same playbook first, where it builds every recipe.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                   r"\s+failed=(?P<failed>\d+)", re.MULTILINE)

pytestmark = pytest.mark.docker


def _units() -> dict[str, tuple[str, str, str]]:
    """Each mlstack container, running or not: (id, start time, status)."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=io.mlstack.unit"], capture_output=True,
                         text=True, check=True).stdout.split()
    found: list[dict[str, Any]] = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True,
                                                            text=True, check=True).stdout) if ids else []
    return {c["Name"]: (c["Id"], c["State"]["StartedAt"], c["State"]["Status"]) for c in found}


@pytest.fixture
def deployed() -> dict[str, tuple[str, str, str]]:
    try:
        units = _units()
    except (OSError, subprocess.CalledProcessError) as exc:
        units, why = {}, str(exc)
    else:
        why = "no mlstack container on the engine"
    if "/mlstack-redis" not in units:
        if os.environ.get("MLSTACK_TEST_REQUIRE_IMAGES"):
            pytest.fail(f"needs the stack of inventories/local deployed: {why}")
        pytest.skip(f"needs the Docker engine and the deployed stack of inventories/local: {why}")
    return units


def test_staging_the_images_of_a_deployed_stack_changes_no_unit(
        deployed: dict[str, tuple[str, str, str]], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MLSTACK_EVIDENCE"))}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), MLSTACK_EVIDENCE_DIR=str(tmp_path),
               MLSTACK_EVIDENCE_SAMPLE_INTERVAL="0", PATH=f"{BIN}:{env.get('PATH', '')}")
    run = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/images.yml"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    recap = {m["host"]: m for m in RECAP.finditer(run.stdout)}
    # Every unit of the inventory took part, and none changed anything.
    assert {"redis", "postgresql", "llm", "chat", "voice-interaction", "prometheus"} <= set(recap), sorted(recap)
    assert {h: m["changed"] for h, m in recap.items() if m["changed"] != "0"} == {}
    assert all(m["failed"] == "0" and m["unreachable"] == "0" for m in recap.values())
    assert _units() == deployed
