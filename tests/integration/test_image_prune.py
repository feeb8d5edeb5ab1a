# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_prune against the real Docker engine: two throwaway images under a test prefix, one
of them used by a (created, never started) container; only the other one goes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".ansible" / "collections"
BIN = Path(sys.executable).parent
BASE = "local/debian:bookworm"
PREFIX = f"mlstack-itest-{uuid.uuid4().hex[:6]}/"


def run_module(check: bool) -> dict[str, Any]:
    """ansible localhost -m aiops.mlstack.image_prune; the module's result."""
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), PATH=f"{BIN}:{env.get('PATH', '')}")
    cmd = [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-o",
           "-e", f"ansible_python_interpreter={sys.executable}", "-m", "aiops.mlstack.image_prune",
           "-a", f"unit=itest prefix={PREFIX}", *(["--check"] if check else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/", check=False, timeout=120)
    line = next((ln for ln in proc.stdout.splitlines() if "=>" in ln), None)
    assert proc.returncode == 0 and line, f"{proc.stdout}\n{proc.stderr}"
    return json.loads(line.split("=>", 1)[1])


@pytest.fixture
def images() -> Iterator[Any]:
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.images.get(BASE)
    except Exception as exc:  # no engine, no SDK or no base image: nothing to test against
        pytest.skip(f"needs the Docker engine and {BASE}: {exc}")
    for name in ("old", "used"):
        # A label makes each a distinct image (its own id) at no build cost.
        dockerfile = f"FROM {BASE}\nLABEL io.mlstack.test=image-prune-{name}\n".encode()
        client.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{PREFIX}x:{name}", rm=True)
    container = client.containers.create(f"{PREFIX}x:used", command=["true"],
                                         name=f"itest-prune-{uuid.uuid4().hex[:6]}")
    try:
        yield client
    finally:
        container.remove(force=True)
        for name in ("old", "used"):
            try:
                client.images.remove(f"{PREFIX}x:{name}")
            except docker.errors.ImageNotFound:
                pass


def test_only_the_image_no_container_uses_is_removed(images: Any) -> None:
    planned = run_module(check=True)
    assert [e["tag"] for e in planned["removed"]] == [f"{PREFIX}x:old"] and planned["changed"] is True
    images.images.get(f"{PREFIX}x:old")  # check mode removed nothing
    done = run_module(check=False)
    assert [e["tag"] for e in done["removed"]] == [f"{PREFIX}x:old"]
    assert done["evidence"]["check"] == "images_pruned" and done["evidence"]["ok"] is True
    assert [t for i in images.images.list() for t in i.tags if t.startswith(PREFIX)] == [f"{PREFIX}x:used"]
    again = run_module(check=False)
    assert again["removed"] == [] and again["changed"] is False
