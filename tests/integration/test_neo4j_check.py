# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""neo4j_check against a real Neo4j 5.26 server from the offline recipe (images/neo4j).

Starts a throwaway, hardened container of ``mlstack/neo4j:<recipe tree hash>`` (the tag the
images role builds) on a private bridge network. Skipped, with the reason, when the Docker
engine or the image is absent. A JVM on a shared 2-core host: the start takes a minute or more.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.filter.tree_hash import tree_hash
from ansible_collections.aiops.mlstack.plugins.module_utils import _neo4j

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("MLSTACK_TEST_NEO4J_IMAGE", f"mlstack/neo4j:{tree_hash(str(ROOT / 'images' / 'neo4j'))}")
NETWORK = "helper-neo4j-net"
NAME = "helper-neo4j-check"
LABEL = {"io.mlstack.test": "neo4j_check"}


@pytest.fixture(scope="module")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # any failure to reach the engine means: skip
        pytest.skip(f"no Docker engine answers: {exc}")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {IMAGE} is absent (deploy the neo4j unit, or build images/neo4j)")
    for stale in client.containers.list(all=True, filters={"label": "io.mlstack.test=neo4j_check"}):
        stale.remove(force=True, v=True)
    for stale in client.networks.list(names=[NETWORK]):
        stale.remove()
    password = secrets.token_urlsafe(24)
    secrets_dir = tmp_path_factory.mktemp("neo4j-secrets")
    secrets_dir.chmod(0o755)
    (secrets_dir / "neo4j_auth").write_text(f"neo4j/{password}", encoding="utf-8")
    (secrets_dir / "neo4j_auth").chmod(0o644)
    net = client.networks.create(NETWORK, driver="bridge", labels=LABEL)
    container = client.containers.run(
        IMAGE, name=NAME, detach=True, network=NETWORK, labels=LABEL,
        environment={"NEO4J_AUTH_PATH": "/run/secrets/neo4j_auth"},
        volumes={str(secrets_dir): {"bind": "/run/secrets", "mode": "ro"}},
        read_only=True,
        tmpfs={"/tmp": "rw,noexec,nosuid,size=64m", "/logs": "rw,noexec,nosuid,size=64m,uid=7474,gid=7474"},
        cap_drop=["ALL"], security_opt=["no-new-privileges:true"], mem_limit="1g", pids_limit=512,
    )
    try:
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
        uri = f"bolt://{address}:7687"
        started = time.monotonic()
        deadline = started + 300
        while True:
            container.reload()
            if container.status == "exited":
                raise AssertionError(f"neo4j exited: {container.logs(tail=30).decode(errors='replace')}")
            records = _neo4j.check_neo4j("neo4j", uri, "neo4j", password, timeout=3.0)
            if records[0]["ok"] or time.monotonic() > deadline:
                break
            time.sleep(2)
        yield {"uri": uri, "password": password, "container": container, "start_s": time.monotonic() - started}
    finally:
        container.remove(force=True, v=True)
        net.remove()


def test_neo4j_check_passes_against_the_real_server(neo4j_server: dict[str, Any]) -> None:
    records = _neo4j.check_neo4j("neo4j", neo4j_server["uri"], "neo4j", neo4j_server["password"])
    by = {r["check"]: r for r in records}
    assert list(by) == ["connect", "auth_required", "wrong_password_rejected", "write_read"]
    assert all(r["ok"] for r in records), json.dumps(records, indent=1)
    assert by["connect"]["observed"]["neo4j_version"] == "5.26.0"
    assert by["connect"]["observed"]["edition"] == "community"
    assert by["connect"]["observed"]["bolt_protocol"].startswith("5.")
    assert "fake" not in by["connect"]
    assert neo4j_server["password"] not in json.dumps(records)


def test_a_wrong_password_fails_connect(neo4j_server: dict[str, Any]) -> None:
    records = _neo4j.check_neo4j("neo4j", neo4j_server["uri"], "neo4j", "not-" + neo4j_server["password"])
    assert [r["check"] for r in records] == ["connect"] and not records[0]["ok"]


def test_the_password_is_not_in_the_container_environment(neo4j_server: dict[str, Any]) -> None:
    env = neo4j_server["container"].attrs["Config"]["Env"]
    assert not any(neo4j_server["password"] in item for item in env)
    assert "NEO4J_AUTH_PATH=/run/secrets/neo4j_auth" in env
    assert neo4j_server["container"].attrs["Config"]["User"] == "7474:7474"
