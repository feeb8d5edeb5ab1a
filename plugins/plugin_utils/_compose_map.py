# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One compose service, as Compose itself normalised it, mapped to one unit's catalog entry.

Every key of the service ends in exactly one of three lists of the report: mapped (to which
catalog field), refused (a security risk the unit did not waive, or a key the collection's
container spec cannot express) or ignored (with the reason). A key in none of the tables is
refused as unsupported, so that nothing the user wrote is silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Keys mapped to catalog fields (the rest of this module says how).
MAPPED = {
    "image": "mlstack_image", "build": "mlstack_image_build", "command": "mlstack_command",
    "entrypoint": "mlstack_entrypoint", "environment": "mlstack_env", "ports": "mlstack_ports",
    "volumes": "mlstack_volumes", "networks": "mlstack_networks", "depends_on": "mlstack_depends_on",
    "healthcheck": "mlstack_healthcheck", "deploy": "mlstack_memory, mlstack_cpus, mlstack_pids_limit, mlstack_gpus",
    "restart": "mlstack_restart", "user": "mlstack_user", "read_only": "mlstack_read_only",
    "cap_drop": "mlstack_cap_drop", "labels": "mlstack_labels", "secrets": "mlstack_secret_files",
    "stop_grace_period": "mlstack_stop_timeout", "shm_size": "mlstack_shm_size", "tmpfs": "mlstack_tmpfs",
    "cap_add": "mlstack_cap_add (waived only)", "security_opt": "mlstack_security_opt (no-new-privileges only)",
}
# Keys the collection decides itself, or that carry no deployable meaning.
IGNORED = {
    "container_name": "the collection names the container mlstack-<unit>",
    "hostname": "the unit answers under its service name on each of its networks",
    "logging": "every unit logs to json-file with rotation (the hardening baseline)",
    "expose": "informational in Compose; units on one network reach each other's ports",
    "x-mlstack": "the importer's own settings (security exceptions), read, not deployed",
    "pull_policy": "image supply follows mlstack_image_source",
    "stdin_open": "a unit runs detached",
    "tty": "a unit runs detached",
    "init": "not part of the collection's container spec",
    "working_dir": "not part of the collection's container spec; set WORKDIR in the image",
    "platform": "the Docker host's own platform is used",
    "profiles": "resolved by Compose: services of no active profile are not imported",
}
# Refused unless the service waives them (x-mlstack: {security_exceptions: {key: reason}}).
RISKY = {
    "privileged": "full access to the host's devices and kernel",
    "cap_add": "capabilities beyond the baseline (cap_drop ALL)",
    "devices": "direct access to host devices",
    "network_mode": "the host's network namespace",
    "pid": "the host's process namespace",
    "ipc": "the host's IPC namespace",
    "docker_socket": "the Docker socket is root on the host",
    "root_user": "runs as root",
    "bind_outside_allow_list": "a host path outside the allow-list",
}
# Risky keys the collection's container spec cannot express even when waived.
NOT_EXPRESSIBLE = {"privileged", "devices", "network_mode", "pid", "ipc"}
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL", re.I)
DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_UNIT_S = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


class ImportFailure(ValueError):
    """The compose file cannot become a catalog; the message names the service and the key path."""


@dataclass
class ServiceMap:
    """One service's catalog entry, its secrets (moved out of the file) and its report lines."""

    entry: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    report: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def note(self, service: str, key: str, outcome: str, detail: str) -> None:
        self.report.append({"service": service, "key": key, "outcome": outcome, "detail": detail})


def seconds(value: Any) -> float:
    """A Compose duration ("1m30s", "500ms") in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    parts = DURATION.findall(str(value))
    if not parts or "".join(n + u for n, u in parts) != str(value):
        raise ImportFailure(f"not a duration: {value!r}")
    return round(sum(float(n) * _UNIT_S[u] for n, u in parts), 6)


def secret_file(name: str) -> str:
    """The secret's name in the unit's secrets directory (and under /run/secrets)."""
    return re.sub(r"[^a-z0-9_.-]", "_", name.lower())


@dataclass(frozen=True)
class Context:
    """What every service of the project shares: its name, networks, secrets and the allow-list."""

    project: str
    networks: dict[str, Any]
    secrets: dict[str, Any]
    bind_allow: tuple[str, ...]


# The importer's waivers that are also hardening rules the verify role judges (the others
# are judged here, at import time, and only reported).
WAIVER_RULES = {"root_user": "non_root", "docker_socket": "no_docker_socket"}


def map_service(service: str, spec: dict[str, Any], ctx: Context) -> ServiceMap:
    """The unit entry of one service; errors are collected, not raised, so all are reported at once."""
    out = ServiceMap()
    waived = dict((spec.get("x-mlstack") or {}).get("security_exceptions") or {})
    out.entry.update({"mlstack_unit_role": "app", "mlstack_unit_kind": "app", "mlstack_compose_service": service,
                      "mlstack_compose_project": ctx.project})
    _risks(service, spec, waived, out)
    for key, value in spec.items():
        if key in IGNORED:
            out.note(service, key, "ignored", IGNORED[key])
        elif key in MAPPERS:
            MAPPERS[key](service, value, ctx, waived, out)
        elif key not in RISKY and key not in ("privileged", "devices", "network_mode", "pid", "ipc"):
            out.errors.append(f"service {service}: key {key!r} (services.{service}.{key}) is not supported: "
                              "remove it, or deploy this service outside the collection")
    if "restart" not in spec:
        # Compose's own default: a unit the engine does not bring back after a restart.
        out.entry["mlstack_restart"] = "no"
        out.note(service, "restart", "mapped", "not set: compose's default 'no' (set unless-stopped to survive an "
                 "engine restart)")
    exceptions = open_by_the_file(service, spec)
    exceptions.update({WAIVER_RULES[k]: str(v) for k, v in waived.items() if k in WAIVER_RULES})
    if exceptions:
        out.entry["mlstack_security_exceptions"] = exceptions
    return out


def open_by_the_file(service: str, spec: dict[str, Any]) -> dict[str, str]:
    """The baseline's rules the compose file leaves open, each with where that is said: the
    verify role's hardening check then reports them as declared exceptions, not as breaches."""
    limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    declared = {
        "read_only_root": bool(spec.get("read_only")),
        "cap_drop_all": "ALL" in (spec.get("cap_drop") or []),
        "memory_limit": "memory" in limits,
        "cpu_limit": "cpus" in limits,
        "pids_limit": "pids" in limits,
        "healthcheck": bool((spec.get("healthcheck") or {}).get("test")),
    }
    where = {"read_only_root": "read_only", "cap_drop_all": "cap_drop",
             "memory_limit": "deploy.resources.limits.memory", "cpu_limit": "deploy.resources.limits.cpus",
             "pids_limit": "deploy.resources.limits.pids",
             "healthcheck": "healthcheck (the image's own HEALTHCHECK may still apply)"}
    return {rule: f"as imported: the compose file does not set services.{service}.{where[rule]}"
            for rule, ok in declared.items() if not ok}


def _refuse(service: str, risk: str, path: str, waived: dict[str, Any], out: ServiceMap) -> bool:
    """True when the risk is waived (with a reason); else an error naming the key path."""
    if waived.get(risk):
        if risk in NOT_EXPRESSIBLE:
            out.errors.append(f"service {service}: {path} is waived, but the collection's container spec cannot "
                              "express it: deploy this service outside the collection")
            return False
        out.note(service, path, "mapped", f"waived: {waived[risk]}")
        return True
    out.errors.append(f"service {service}: {path} is refused ({RISKY[risk]}): remove it, or waive it with "
                      f"x-mlstack: {{security_exceptions: {{{risk}: <reason>}}}} on the service")
    return False


def _risks(service: str, spec: dict[str, Any], waived: dict[str, Any], out: ServiceMap) -> None:
    if spec.get("privileged"):
        _refuse(service, "privileged", f"services.{service}.privileged", waived, out)
    if spec.get("devices"):
        _refuse(service, "devices", f"services.{service}.devices", waived, out)
    for key in ("network_mode", "pid", "ipc"):
        if str(spec.get(key) or "") == "host":
            _refuse(service, key, f"services.{service}.{key}", waived, out)
        elif spec.get(key):
            out.errors.append(f"service {service}: {key}={spec[key]!r} (services.{service}.{key}) is not supported: "
                              "a unit gets its own namespaces and joins its networks")
    if str(spec.get("user") or "").split(":", maxsplit=1)[0] in ("0", "root"):
        if _refuse(service, "root_user", f"services.{service}.user", waived, out):
            out.entry["mlstack_user"] = str(spec["user"])


def _image(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    out.entry["mlstack_image"] = str(value)
    out.note(service, "image", "mapped", "mlstack_image")


def _build(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    out.entry["mlstack_image_build"] = {"context": value.get("context"),
                                        "dockerfile": value.get("dockerfile", "Dockerfile"),
                                        "args": dict(value.get("args") or {})}
    out.note(service, "build", "mapped", "mlstack_image_build (built when the image is not on the Docker host)")


def _argv(field_name: str) -> Any:
    def mapper(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
        if value is not None:
            out.entry[field_name] = [str(v) for v in value]
            out.note(service, field_name.removeprefix("mlstack_"), "mapped", field_name)
    return mapper


def _environment(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    env: dict[str, str] = {}
    files: list[dict[str, str]] = list(out.entry.get("mlstack_secret_files") or [])
    for name, text in (value or {}).items():
        if text and SECRET_NAME.search(name):
            stored = secret_file(name)
            out.secrets[stored] = str(text)
            env[f"{name}_FILE"] = f"/run/secrets/{stored}"
            files.append({"secret": stored, "target": f"/run/secrets/{stored}"})
            out.note(service, f"environment.{name}", "mapped",
                     f"WARNING: a plain-text secret; moved to the secrets store and replaced by {name}_FILE "
                     "(the image must read <VAR>_FILE)")
        else:
            env[name] = "" if text is None else str(text)
    out.entry["mlstack_env"] = env
    if files:
        out.entry["mlstack_secret_files"] = files
    out.note(service, "environment", "mapped", "mlstack_env")


def _ports(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    ports = []
    for i, port in enumerate(value or []):
        if not port.get("published"):
            out.note(service, f"ports[{i}]", "ignored", "not published: units on one network reach each other")
            continue
        host_ip = port.get("host_ip") or "0.0.0.0"
        if host_ip == "0.0.0.0":
            out.note(service, f"ports[{i}]", "mapped", "WARNING: published on every address (0.0.0.0) as compose says; "
                     "give host_ip 127.0.0.1 to keep it on this host")
        ports.append({"target": int(port["target"]), "published": int(port["published"]), "host_ip": host_ip,
                      "protocol": port.get("protocol", "tcp")})
    out.entry["mlstack_ports"] = ports
    if ports:
        out.entry["mlstack_port"] = ports[0]["target"]
    out.note(service, "ports", "mapped", "mlstack_ports")


def _volumes(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    volumes = []
    for i, volume in enumerate(value or []):
        path, mode = f"services.{service}.volumes[{i}]", ":ro" if volume.get("read_only") else ":rw"
        if volume["type"] == "volume" and volume.get("source"):
            volumes.append(f"{ctx.project}_{volume['source']}:{volume['target']}{mode}")
        elif volume["type"] == "bind":
            source = str(volume["source"])
            risk = "docker_socket" if source.endswith("docker.sock") else (
                None if any(source == a or source.startswith(a.rstrip("/") + "/") for a in ctx.bind_allow)
                else "bind_outside_allow_list")
            if risk and not _refuse(service, risk, f"{path} ({source})", waived, out):
                continue
            volumes.append(f"{source}:{volume['target']}{mode}")
        elif volume["type"] == "tmpfs":
            out.entry.setdefault("mlstack_tmpfs", {})[volume["target"]] = ""
        else:
            out.errors.append(f"service {service}: {path} of type {volume['type']!r} is not supported "
                              "(volume, bind and tmpfs are)")
    out.entry["mlstack_volumes"] = volumes
    named = [v for v in volumes if v.startswith(f"{ctx.project}_")]
    if named:
        # One process per volume: the unit is replaced stop-first, as Compose replaces it.
        out.entry["mlstack_data_volume"] = named[0].split(":", maxsplit=1)[0]
        out.entry["mlstack_update_order"] = "stop-first"
    out.note(service, "volumes", "mapped", "mlstack_volumes (named volumes kept by destroy unless purged)")


def _networks(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    networks = []
    for name, conf in (value or {}).items():
        real = (ctx.networks.get(name) or {}).get("name") or f"{ctx.project}_{name}"
        networks.append({"name": real, "aliases": [service, *((conf or {}).get("aliases") or [])]})
    out.entry["mlstack_networks"] = networks
    out.note(service, "networks", "mapped", "mlstack_networks (the service name is an alias on each)")


def _depends_on(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    awaited = [dep for dep, conf in (value or {}).items() if (conf or {}).get("condition") == "service_healthy"]
    optional = [dep for dep in (value or {}) if dep not in awaited]
    out.entry["mlstack_depends_on"], out.entry["mlstack_optional"] = awaited, optional
    out.note(service, "depends_on", "mapped",
             "service_healthy: a health gate (mlstack_depends_on); other conditions: mlstack_optional, not awaited")


def _healthcheck(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    if value.get("disable"):
        out.note(service, "healthcheck", "mapped", "disabled: the unit is probed on its port (weaker evidence)")
        return
    if not value.get("test"):
        return
    check = {"test": [str(t) for t in value["test"]]}
    for key in ("interval", "timeout", "start_period"):
        if key in value:
            check[key] = seconds(value[key])
    if "retries" in value:
        check["retries"] = int(value["retries"])
    out.entry["mlstack_healthcheck"] = check
    out.note(service, "healthcheck", "mapped", "mlstack_healthcheck (the unit's health gate)")


def _deploy(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    resources = value.get("resources") or {}
    limits = resources.get("limits") or {}
    if "memory" in limits:
        out.entry["mlstack_memory"] = int(limits["memory"])
    if "cpus" in limits:
        out.entry["mlstack_cpus"] = float(limits["cpus"])
    if "pids" in limits:
        out.entry["mlstack_pids_limit"] = int(limits["pids"])
    for i, device in enumerate((resources.get("reservations") or {}).get("devices") or []):
        if "gpu" not in (device.get("capabilities") or []):
            out.errors.append(f"service {service}: deploy.resources.reservations.devices[{i}] reserves no GPU: "
                              "only GPU reservations are supported")
        elif device.get("device_ids"):
            out.entry["mlstack_gpus"] = [str(d) for d in device["device_ids"]]
        else:
            out.entry.update({"mlstack_gpu": "required", "mlstack_gpu_count": int(device.get("count") or 1)})
    for key in sorted(set(value) - {"resources", "placement"}):
        out.note(service, f"deploy.{key}", "ignored", "Swarm only")
    out.note(service, "deploy.resources", "mapped", MAPPED["deploy"])


def _scalar(field_name: str, convert: Any = str) -> Any:
    def mapper(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
        out.entry.setdefault(field_name, convert(value))
        out.note(service, field_name.removeprefix("mlstack_"), "mapped", field_name)
    return mapper


def _secrets(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    files = list(out.entry.get("mlstack_secret_files") or [])
    for i, ref in enumerate(value or []):
        source = ref["source"]
        declared = ctx.secrets.get(source) or {}
        if not declared.get("file"):
            out.errors.append(f"service {service}: secrets[{i}] ({source}): only file secrets are supported")
            continue
        stored = secret_file(source)
        out.secrets[stored] = _read(declared["file"], service, f"secrets.{source}.file")
        files.append({"secret": stored, "target": ref.get("target") or f"/run/secrets/{source}"})
    out.entry["mlstack_secret_files"] = files
    out.note(service, "secrets", "mapped", "mlstack_secret_files (contents moved to the secrets store)")


def _read(path: str, service: str, key: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise ImportFailure(f"service {service}: {key}: cannot read {path}: {exc.strerror}") from exc


def _cap_add(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    if value and _refuse(service, "cap_add", f"services.{service}.cap_add", waived, out):
        out.entry["mlstack_cap_add"] = [str(c) for c in value]


def _security_opt(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    other = [opt for opt in value or [] if not str(opt).startswith("no-new-privileges")]
    if other:
        out.errors.append(f"service {service}: security_opt {other} is not supported "
                          "(the baseline sets no-new-privileges; nothing else may be loosened)")
    out.note(service, "security_opt", "mapped", "the baseline's no-new-privileges")


def _user(service: str, value: Any, ctx: Context, waived: dict[str, Any], out: ServiceMap) -> None:
    if "mlstack_user" not in out.entry and str(value).split(":", maxsplit=1)[0] not in ("0", "root"):
        out.entry["mlstack_user"] = str(value)
    out.note(service, "user", "mapped", "mlstack_user")


MAPPERS = {
    "image": _image, "build": _build, "command": _argv("mlstack_command"), "entrypoint": _argv("mlstack_entrypoint"),
    "environment": _environment, "ports": _ports, "volumes": _volumes, "networks": _networks,
    "depends_on": _depends_on, "healthcheck": _healthcheck, "deploy": _deploy,
    "restart": _scalar("mlstack_restart"), "user": _user, "read_only": _scalar("mlstack_read_only", bool),
    "cap_drop": _scalar("mlstack_cap_drop", lambda v: [str(c) for c in v]),
    "labels": _scalar("mlstack_labels", lambda v: {str(k): str(x) for k, x in v.items()}),
    "secrets": _secrets, "stop_grace_period": _scalar("mlstack_stop_timeout", lambda v: int(seconds(v))),
    "shm_size": _scalar("mlstack_shm_size"), "tmpfs": _scalar("mlstack_tmpfs", lambda v: dict.fromkeys(v, "")),
    "cap_add": _cap_add, "security_opt": _security_opt,
}
