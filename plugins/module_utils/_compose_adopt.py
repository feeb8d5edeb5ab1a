# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Adopting a running compose container: does what Compose made already match the unit's spec?

A container Compose made carries its project and service labels and none of the collection's.
It is adopted (renamed to the unit's container name, never recreated) when every setting the
compose file declares is what the unit declares; otherwise the unit's own container replaces
it, and the differences are the reason. Pure functions over ``docker inspect`` output, so
unit tests reach every comparison. Stdlib only.
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._container_spec import _duration_ns

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
_UNITS = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def is_compose_container(inspect: dict[str, Any] | None, project: str, service: str) -> bool:
    labels = ((inspect or {}).get("Config") or {}).get("Labels") or {}
    return labels.get(PROJECT_LABEL) == project and labels.get(SERVICE_LABEL) == service


def _bytes(value: Any) -> int:
    if value in (None, ""):
        return 0
    match = re.fullmatch(r"(\d+)\s*([bkmg]?)b?", str(value).strip().lower())
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(match.group(1)) * _UNITS.get(match.group(2) or "b", 1)


def _mounts(inspect: dict[str, Any]) -> set[tuple[str, str, bool]]:
    return {(m.get("Name") or m.get("Source", ""), m["Destination"], bool(m.get("RW")))
            for m in inspect.get("Mounts") or [] if m.get("Type") in ("volume", "bind")}


def _declared_mounts(volumes: list[str]) -> set[tuple[str, str, bool]]:
    out = set()
    for volume in volumes:
        source, target, *mode = volume.split(":")
        out.add((source, target, (mode or ["rw"])[0] != "ro"))
    return out


def _healthcheck(declared: dict[str, Any] | None) -> dict[str, Any] | None:
    if not declared:
        return None
    return {"Test": list(declared["test"]), "Interval": _duration_ns(declared.get("interval", 0)),
            "Timeout": _duration_ns(declared.get("timeout", 0)), "Retries": int(declared.get("retries", 0)),
            "StartPeriod": _duration_ns(declared.get("start_period", 0))}


def differences(inspect: dict[str, Any], spec: dict[str, Any], image_id: str | None) -> list[str]:
    """The settings in which the container is not what the spec declares (empty: adopt it).

    The collection's own additions (no-new-privileges, log rotation, its labels, a port
    holder) are not compared: an adopted container gets them at its next recreate.
    """
    config, host = inspect.get("Config") or {}, inspect.get("HostConfig") or {}
    restart = (host.get("RestartPolicy") or {}).get("Name") or "no"
    env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
    bindings = {port: [b.get("HostIp") or "0.0.0.0", int(b["HostPort"])]
                for port, binds in (host.get("PortBindings") or {}).items() for b in binds or []}
    observed_hc = config.get("Healthcheck") or None
    if observed_hc:
        observed_hc = {k: observed_hc.get(k, 0) for k in ("Test", "Interval", "Timeout", "Retries", "StartPeriod")}
    checks = {
        "image": inspect.get("Image") == image_id,
        "command": spec.get("command") is None or config.get("Cmd") == spec["command"],
        "entrypoint": spec.get("entrypoint") is None or config.get("Entrypoint") == spec["entrypoint"],
        "env": all(env.get(k) == str(v) for k, v in (spec.get("env") or {}).items()),
        "ports": bindings == {k: list(v) for k, v in (spec.get("ports") or {}).items()},
        "volumes": _declared_mounts(spec.get("volumes") or []) <= _mounts(inspect),
        "healthcheck": spec.get("healthcheck") is None or observed_hc == _healthcheck(spec["healthcheck"]),
        "user": spec.get("user") is None or config.get("User") == spec["user"],
        "memory": (host.get("Memory") or 0) == _bytes(spec.get("memory")),
        "cpus": (host.get("NanoCpus") or 0) == (int(float(spec["cpus"]) * 1e9) if spec.get("cpus") else 0),
        "pids_limit": (host.get("PidsLimit") or 0) == int(spec.get("pids_limit") or 0),
        "restart_policy": restart == (spec.get("restart_policy") or "no"),
        "read_only": bool(host.get("ReadonlyRootfs")) == bool(spec.get("read_only")),
        "cap_drop": sorted(host.get("CapDrop") or []) == sorted(spec.get("cap_drop") or []),
        "cap_add": sorted(host.get("CapAdd") or []) == sorted(spec.get("cap_add") or []),
        "tmpfs": sorted(host.get("Tmpfs") or {}) == sorted(spec.get("tmpfs") or {}),
        "networks": set((inspect.get("NetworkSettings") or {}).get("Networks") or {})
        == {n["name"] for n in spec.get("networks") or []},
        "gpus": not spec.get("gpus") and not host.get("DeviceRequests"),
    }
    return sorted(key for key, ok in checks.items() if not ok)
