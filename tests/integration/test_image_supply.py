# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""aiops.mlstack.image against the real Docker engine: a throwaway recipe under a new content tag,
supplied by two units at once. One builds it; the other says once that it waits, and gets the
same image; a third run finds it present; check mode on new content builds nothing."""

from __future__ import annotations

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
WAITING = "waiting for another unit's build"


def start(recipes: Path, build_dir: Path, check: bool = False) -> subprocess.Popen[str]:
    """ansible localhost -m aiops.mlstack.image, started (not waited for)."""
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), PATH=f"{BIN}:{env.get('PATH', '')}")
    args = f"source=build recipe=itest recipes_dir={recipes} build_dir={build_dir} build_timeout=300"
    cmd = [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-o",
           "-e", f"ansible_python_interpreter={sys.executable}", "-m", "aiops.mlstack.image", "-a", args,
           *(["--check"] if check else [])]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")


def finish(proc: subprocess.Popen[str]) -> tuple[dict[str, Any], str]:
    """The module's result and everything the run printed."""
    out, err = proc.communicate(timeout=600)
    line = next((ln for ln in out.splitlines() if "=>" in ln), None)
    assert proc.returncode == 0 and line, f"{out}\n{err}"
    return json.loads(line.split("=>", 1)[1]), out


@pytest.fixture
def recipes(tmp_path: Path) -> Iterator[Path]:
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.images.get(BASE)
    except Exception as exc:  # no engine, no SDK or no base image: nothing to test against
        pytest.skip(f"needs the Docker engine and {BASE}: {exc}")
    # A label of its own gives the recipe a content tag no other run has; the sleep keeps the
    # build going long enough for the second unit to find it claimed.
    (tmp_path / "recipes" / "itest").mkdir(parents=True)
    (tmp_path / "recipes" / "itest" / "Dockerfile").write_text(
        f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN sleep 8\nLABEL io.mlstack.test=image-supply-{uuid.uuid4().hex}\n")
    tags: list[str] = []
    try:
        yield tmp_path / "recipes"
    finally:
        tags.extend(t for image in client.images.list(name="mlstack/itest") for t in image.tags)
        for tag in tags:  # the throwaway images this test built, and only those
            client.images.remove(tag)


def test_two_units_build_a_shared_recipe_once(recipes: Path, tmp_path: Path) -> None:
    build_dir = tmp_path / "build"
    first = start(recipes, build_dir)
    second = start(recipes, build_dir)
    (one, out_one), (two, out_two) = finish(first), finish(second)
    assert one["ref"] == two["ref"] and one["ref"].startswith("mlstack/itest:")
    assert one["image_id"] == two["image_id"] and one["image_id"].startswith("sha256:")
    builder, waiter = (one, out_two) if one["operation"] == "build" else (two, out_one)
    assert builder["operation"] == "build" and builder["changed"] is True
    operations = sorted([one["operation"], two["operation"]])
    assert operations == ["build", "wait"], operations
    assert waiter.count(WAITING) == 1 and "FAILED - RETRYING" not in out_one + out_two
    assert not list(build_dir.glob(".*.building")), "the claim is given back"

    again = finish(start(recipes, build_dir))[0]
    assert (again["operation"], again["changed"], again["image_id"]) == ("none", False, one["image_id"])

    (recipes / "itest" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nLABEL changed=yes\n")
    checked = finish(start(recipes, build_dir, check=True))[0]
    assert (checked["operation"], checked["changed"], checked["image_id"]) == ("build", True, None)
    assert checked["ref"] != one["ref"]
    import docker

    assert not docker.from_env().images.list(name=checked["ref"]), "check mode builds nothing"
