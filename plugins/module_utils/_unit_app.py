# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The settings of an ``app`` unit: an image the collection knows nothing about (imported
from a compose file, or declared by hand), resolved into the container spec's terms.

Stdlib only; ``_unit.resolve`` calls it for units of kind ``app``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Compose's restart policies as the Docker API names them.
RESTART = {"no": "no", "always": "always", "unless-stopped": "unless-stopped", "on-failure": "on-failure"}


def _ports(entry: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Container port -> [host address, host port], the container spec's ``ports``."""
    out: dict[str, list[Any]] = {}
    for port in entry.get("mlstack_ports") or []:
        out[f"{int(port['target'])}/{port.get('protocol', 'tcp')}"] = [str(port.get("host_ip") or "0.0.0.0"),
                                                                       int(port["published"])]
    return out


def _plain(value: Any) -> Any:
    """Inventory data as plain dicts and lists (ansible-core hands lazy containers, which
    dataclasses.asdict cannot rebuild)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _argv(value: Any) -> list[str] | None:
    return None if value is None else [str(v) for v in value]


def app_settings(entry: Mapping[str, Any], runtime_dir: str) -> dict[str, Any]:
    """The app's container settings; secret files are mounted from the unit's runtime directory."""
    secret_files = [{"secret": str(f["secret"]), "target": str(f["target"])}
                    for f in entry.get("mlstack_secret_files") or []]
    mounts = [f"{runtime_dir}/secrets/{f['secret']}:{f['target']}:ro" for f in secret_files]
    ports = _ports(entry)
    restart = str(entry.get("mlstack_restart") or "unless-stopped")
    build = entry.get("mlstack_image_build") or None
    return {
        "command": _argv(entry.get("mlstack_command")),
        "entrypoint": _argv(entry.get("mlstack_entrypoint")),
        "volumes": [str(v) for v in entry.get("mlstack_volumes") or []] + mounts,
        "ports": ports,
        "host_ports": sorted({int(binding[1]) for binding in ports.values()}),
        "healthcheck": _plain(entry["mlstack_healthcheck"]) if entry.get("mlstack_healthcheck") else None,
        "user": None if entry.get("mlstack_user") in (None, "") else str(entry["mlstack_user"]),
        "read_only": bool(entry.get("mlstack_read_only", False)),
        "cap_drop": [str(c) for c in entry.get("mlstack_cap_drop") or []],
        "cap_add": [str(c) for c in entry.get("mlstack_cap_add") or []],
        "labels": {str(k): str(v) for k, v in (entry.get("mlstack_labels") or {}).items()},
        "restart_policy": RESTART.get(restart.split(":", maxsplit=1)[0], "unless-stopped"),
        "pids_limit": None if entry.get("mlstack_pids_limit") in (None, "") else int(entry["mlstack_pids_limit"]),
        "tmpfs": {str(k): str(v) for k, v in (entry.get("mlstack_tmpfs") or {}).items()},
        "stop_timeout": None if entry.get("mlstack_stop_timeout") in (None, "") else int(entry["mlstack_stop_timeout"]),
        "secret_files": secret_files,
        "build": None if not build else {"context": str(build["context"]),
                                         "dockerfile": str(build.get("dockerfile") or "Dockerfile"),
                                         "args": {str(k): str(v) for k, v in (build.get("args") or {}).items()}},
        "compose": {"project": entry.get("mlstack_compose_project"), "service": entry.get("mlstack_compose_service")},
    }


def app_networks(entry: Mapping[str, Any], name: str) -> tuple[dict[str, Any], ...]:
    """The app's networks (each with the unit's name among its aliases), those with a route out first.

    The first network is the one a port holder joins to publish the unit's ports, and Docker
    publishes no port on an internal network (``mlstack_app_networks``: name -> {internal}).
    """
    declared = entry.get("mlstack_app_networks") or {}
    out = []
    for net in sorted(entry.get("mlstack_networks") or [],
                      key=lambda n: bool((declared.get(n["name"]) or {}).get("internal"))):
        aliases = [str(a) for a in net.get("aliases") or []]
        out.append({"name": str(net["name"]), "aliases": aliases if name in aliases else [name, *aliases]})
    return tuple(out)
