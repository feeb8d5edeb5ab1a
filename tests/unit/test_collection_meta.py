"""What Galaxy and the docs tooling read beside the code: meta/runtime.yml, version_added, the
changelog, and the tarball that ``ansible-galaxy collection build`` makes from a used checkout."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.compat.version import LooseVersion

ROOT = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
CHANGELOG = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text())
_DOC = re.compile(r'^DOCUMENTATION = r?"""(.*?)"""', re.S | re.M)


def documentation(path: Path) -> dict[str, Any]:
    """A plugin's DOCUMENTATION: from the .py, or from the .yml beside it (filters of a shared file)."""
    if path.suffix == ".yml":
        return yaml.safe_load(path.read_text())["DOCUMENTATION"]
    match = _DOC.search(path.read_text())
    assert match, f"{path} has no DOCUMENTATION"
    return yaml.safe_load(match.group(1))


def documented() -> dict[tuple[str, str], dict[str, Any]]:
    """(plugin type, name) -> documentation, for every module, filter and callback."""
    docs = {("module", p.stem): documentation(p) for p in (ROOT / "plugins/modules").glob("*.py")}
    docs.update({("callback", p.stem): documentation(p) for p in (ROOT / "plugins/callback").glob("*.py")})
    for path in (ROOT / "plugins/filter").iterdir():
        if path.suffix == ".yml" or (path.suffix == ".py" and _DOC.search(path.read_text())):
            doc = documentation(path)
            docs[("filter", doc["name"])] = doc
    return docs


def test_every_filter_is_documented() -> None:
    """ansible-doc (and galaxy-importer) fail on a filter without documentation."""
    names = set()
    for path in (ROOT / "plugins/filter").glob("*.py"):
        names |= set(re.findall(r'"([a-z_]+)": [a-z_]+', path.read_text().split("class FilterModule")[-1]))
    assert names, "filters found"
    assert names == {name for kind, name in documented() if kind == "filter"}


def test_action_groups_list_every_module() -> None:
    runtime = yaml.safe_load((ROOT / "meta/runtime.yml").read_text())
    modules = sorted(p.stem for p in (ROOT / "plugins/modules").glob("*.py"))
    assert sorted(runtime["action_groups"]["mlstack"]) == modules


def test_version_added_is_a_release_that_lists_the_plugin_or_the_coming_one() -> None:
    version = str(GALAXY["version"])
    released = CHANGELOG["releases"]
    problems = []
    for (kind, name), doc in sorted(documented().items()):
        added = str(doc.get("version_added"))
        if added == version and version not in released:
            continue  # new in the version being made
        if added not in released or LooseVersion(added) > LooseVersion(version):
            problems.append(f"{kind} {name}: version_added {added}, galaxy.yml {version}, releases {sorted(released)}")
            continue
        release = released[added]
        listed = release.get("modules", []) if kind == "module" else release.get("plugins", {}).get(kind, [])
        if name not in {entry["name"] for entry in listed}:
            problems.append(f"{kind} {name}: version_added {added}, but the changelog of {added} does not list it")
    assert not problems, "\n".join(problems)


DIRT = [".pytest_cache/v/cache/lastfailed", ".ruff_cache/0.17/x", "evidence/20270101T000000Z-x/evidence.json",
        "benchmarks/.tools/bin/hey", ".venv-services/bin/python", ".venv/bin/python", "build/lib/x.py",
        "images/mlstack-services/build/x", "images/mlstack-services/src/mlstack_services.egg-info/PKG-INFO",
        "plugins/modules/__pycache__/container.cpython-311.pyc", "tests/output/junit.xml",
        "images/llm/host-ca.crt", "changelogs/.plugin-cache.yaml", ".hypothesis/constants/x",
        "aiops-mlstack-0.0.1.tar.gz", "artifacts/1/job_events/1.json", ".ansible/collections/x",
        "ee/vendor/ansible_collections/community/docker/MANIFEST.json", "ee/base-requirements.txt"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to list the checkout")
def test_a_build_from_a_used_checkout_holds_only_the_collection(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    files = [f for f in files if (ROOT / f).is_file() and not (ROOT / f).is_symlink()]
    for name in files:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, checkout / name)
    for name in DIRT:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text("dirt\n")
    out = tmp_path / "out"
    galaxy = str(Path(sys.executable).with_name("ansible-galaxy"))
    subprocess.run([galaxy, "collection", "build", "--output-path", str(out), str(checkout)], check=True,
                   capture_output=True, timeout=120)
    [tarball] = out.glob("aiops-mlstack-*.tar.gz")
    with tarfile.open(tarball) as tar:
        packed = {m.name for m in tar.getmembers() if m.isfile()}
    assert not [name for name in DIRT if name in packed]
    # Nothing but the checkout's own files: a cache or an output not named above would show here too.
    assert packed - {"MANIFEST.json", "FILES.json"} == set(files) - {"galaxy.yml"}
