# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One unit's names and baselines, declared once.

Every container name the collection derives from a unit (the serving container, the
candidate, the kept previous one, the port holder) and the hardening baseline every unit
and port holder runs with are defined here and nowhere else. Stdlib only: modules on the
target and plugins on the controller both import it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ansible_collections.aiops.mlstack.plugins.module_utils._engine_url import with_tls
from ansible_collections.aiops.mlstack.plugins.module_utils._unit_app import app_networks, app_settings

UPDATE_ORDERS = ("start-first", "stop-first")

# What every container the collection runs is locked down with (the units, the port
# holder); verify's hardening check reads the same baseline.
HARDENING: dict[str, Any] = {
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "log_options": {"max-size": "10m", "max-file": "3"},
}


def container_name(unit: str) -> str:
    """The serving container of a unit."""
    return f"mlstack-{unit}"


def previous_name(name: str) -> str:
    """Where the last good container is kept, stopped, after it was replaced (rollback target)."""
    return f"{name}_previous"


def side_name(name: str) -> str:
    """Where the serving container waits, stopped, while its replacement proves its health."""
    return f"{name}_replaced"


def holder_name(name: str) -> str:
    """The port holder that binds a unit's host ports when it has one (``port_holder_image``)."""
    return f"{name}_port"


def next_name(name: str) -> str:
    """The candidate that proves a new spec beside the serving container (update_order start-first)."""
    return f"{name}_next"


def database_volume(unit: str) -> str:
    """The named volume a database unit keeps its data on (kept by destroy unless purged)."""
    return f"mlstack-{unit}-data"


def db_identifier(unit: str) -> str:
    """A unit name as a database user / role / key prefix identifier."""
    return unit.replace("-", "_")


# What a setting is when neither the unit's entry nor the collection-wide settings name it.
DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
DEFAULT_RUNTIME_DIR = "/var/lib/mlstack"
SECRETS_SUBDIR = ".local/share/mlstack/secrets"
# The port a database role listens on when its entry names none (the image's own default).
ROLE_PORTS = {"redis": 6379, "postgresql": 5432, "neo4j": 7687, "qdrant": 6333}
# Where a service finds the credentials a database of each role gives it: the file under
# /run/secrets, and the secret's name in the database unit's directory (None: the service's
# own identifier, one user per service).
CREDENTIALS = {"redis": ("redis_password", None), "postgresql": ("postgres_password", None),
               "neo4j": ("neo4j_password", "neo4j"), "qdrant": ("qdrant_api_key", "api_key")}
# The roles a unit on another Docker host can depend on (TLS from the stack's CA, docs/scale-out.md),
# and the container port each serves TLS on: PostgreSQL on its one port (SSL is negotiated on
# it), Redis on a port of its own beside the plaintext one its same-host clients keep.
CROSS_HOST_ROLES = ("postgresql", "redis")
TLS_PORTS = {"redis": 6380}
# Where the stack's CA and a server's certificate are in the secrets directory (plugin_utils/_tls.py).
TLS_CA_UNIT, TLS_CA_FILE = "tls", "ca.pem"
TLS_CERT_FILE, TLS_KEY_FILE = "tls_cert.pem", "tls_key.pem"
# The CA bundle's file name in a client's /run/secrets.
TLS_CA_SECRET = "mlstack_ca.pem"


@dataclass(frozen=True)
class Settings:
    """The collection-wide settings, every fallback applied (the same for every unit of a run)."""

    docker_url: str
    secrets_dir: str
    runtime_dir: str
    backend_network: str
    frontend_network: str
    recreate: str
    image_source: str
    vault_password_file: str
    strict: bool
    # Networks of imported (app) units: name -> {internal}; created with the stack's own.
    app_networks: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Dependency:
    """A unit this one is wired to: where it answers and which credentials it hands out."""

    unit: str
    role: str | None
    container: str
    host: str
    port: int | None
    awaited: bool
    secret_file: str | None
    secret: tuple[str, str] | None
    # The dependency's Docker host; on another host than its client's, ``host``/``port`` are
    # that host's address and the port published there, and the traffic is TLS.
    docker_host: str = "localhost"
    cross_host: bool = False


@dataclass(frozen=True)
class ResolvedUnit:
    """One unit's inventory entry with every fallback applied and every derived value.

    Roles, verify, the playbooks, the wiring filter and the benchmarks read a unit from
    here (filter ``aiops.mlstack.unit``), so that a name or a default exists once.
    """

    name: str
    kind: str | None
    role: str | None
    port: int | None
    host_port: int | None
    docker_host: str
    docker_url: str
    # The Docker host's private address (``mlstack_host_address``): where it publishes the
    # ports that units on other hosts reach (None: it publishes none).
    host_address: str | None
    container: str
    candidate: str
    previous: str
    replaced: str
    holder: str
    port_holder: bool
    port_holder_image: str
    data_volume: str | None
    runtime_dir: str
    secrets_dir: str
    networks: tuple[dict[str, Any], ...]
    backend_network: str
    depends_on: tuple[Dependency, ...]
    awaited: tuple[str, ...]
    # Dependencies on other Docker hosts, awaited by connecting to their published address.
    remote_awaited: tuple[dict[str, Any], ...]
    # Units on other Docker hosts that depend on this one (a database's cross-host clients).
    remote_clients: tuple[str, ...]
    # TLS a database serves with a certificate of the stack's CA: ``port`` (in the container),
    # ``remote_port`` (published on host_address), ``names`` (the certificate's SANs). None: no TLS.
    tls: dict[str, Any] | None
    critical: bool
    update_order: str
    recreate: str
    image_source: str
    hardening: dict[str, Any]
    gpu: dict[str, Any]
    security_exceptions: dict[str, Any]
    latency_bound_ms: float | None
    health_path: str
    # Where Prometheus scrapes the unit on its container port (None: the unit serves no metrics).
    metrics_path: str | None
    # True for an exporter whose series describe other units (their own ``unit`` label):
    # Prometheus keeps that label instead of overwriting it with the exporter's.
    metrics_honor_labels: bool
    health_timeout: float
    start_period: float
    memory: str | None
    cpus: float | None
    shm_size: str | None
    env: dict[str, Any]
    image: dict[str, Any]
    # An app unit's container settings (kind app: an image the collection knows nothing about).
    app: dict[str, Any] | None
    catalog_version: str
    vault_password_file: str
    strict: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain data for Jinja (lists, dicts, str, numbers, None)."""
        out = asdict(self)
        out["networks"] = [dict(n) for n in self.networks]
        out["depends_on"] = [{**asdict(d), "secret": list(d.secret) if d.secret else None} for d in self.depends_on]
        out["awaited"] = list(self.awaited)
        out["remote_awaited"] = [dict(r) for r in self.remote_awaited]
        out["remote_clients"] = list(self.remote_clients)
        return out


def _flag(value: Any, default: bool) -> bool:
    """Inventory booleans arrive as bools or as the strings YAML and ``-e`` give."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "on", "1")


def _int(value: Any) -> int | None:
    return None if value in (None, "", 0, "0") else int(value)


def _number(value: Any, default: float | None) -> float | None:
    # Kept as given (2 stays 2, 2.0 stays 2.0): the value may reach a spec, whose hash sees the type.
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _text(value: Any, default: str) -> str:
    return default if value in (None, "") else str(value)


def engine_url(host_vars: Mapping[str, Any]) -> str:
    """A Docker host's engine: ``mlstack_docker_url``, with ``mlstack_docker_tls`` in its query (``_engine_url``)."""
    return with_tls(_text(host_vars.get("mlstack_docker_url"), DEFAULT_DOCKER_URL), host_vars.get("mlstack_docker_tls"))


def resolve_settings(settings: Mapping[str, Any], home: str) -> Settings:
    """The collection-wide settings (``mlstack_docker_url`` ...) with their defaults.

    ``home``: the controller's $HOME, under which the secrets directory is by default.
    """
    return Settings(
        docker_url=engine_url(settings),
        secrets_dir=_text(settings.get("mlstack_secrets_dir"), f"{home.rstrip('/')}/{SECRETS_SUBDIR}"),
        runtime_dir=_text(settings.get("mlstack_runtime_dir"), DEFAULT_RUNTIME_DIR).rstrip("/"),
        backend_network=_text(settings.get("mlstack_backend_network"), "mlstack_backend"),
        frontend_network=_text(settings.get("mlstack_frontend_network"), "mlstack_frontend"),
        recreate=_text(settings.get("mlstack_recreate"), "if_changed"),
        image_source=_text(settings.get("mlstack_image_source"), "auto"),
        vault_password_file=_text(settings.get("mlstack_vault_password_file"), ""),
        strict=_flag(settings.get("mlstack_strict"), False),
        app_networks={str(k): {"internal": bool((v or {}).get("internal"))}
                      for k, v in (settings.get("mlstack_app_networks") or {}).items()},
    )


def unit_port(entry: Mapping[str, Any]) -> int | None:
    """The port a unit listens on inside its container: its entry's, else its role's usual one."""
    return _int(entry.get("mlstack_port")) or ROLE_PORTS.get(str(entry.get("mlstack_unit_role")))


def docker_host_of(entry: Mapping[str, Any]) -> str:
    """The Docker host a unit's entry places it on."""
    return _text(entry.get("mlstack_docker_host"), "localhost")


def remote_port(entry: Mapping[str, Any]) -> int | None:
    """The port a unit's TLS is published on at its host's address (``mlstack_remote_port``,
    else the container's TLS port)."""
    role = str(entry.get("mlstack_unit_role"))
    return _int(entry.get("mlstack_remote_port")) or TLS_PORTS.get(role) or unit_port(entry)


def _dependency(client: str, client_host: str, dep: str, peer: Mapping[str, Any], awaited: bool,
                hosts: Mapping[str, Mapping[str, Any]]) -> Dependency:
    role = peer.get("mlstack_unit_role")
    secret_file, secret_name = CREDENTIALS.get(str(role), (None, None))
    peer_host = docker_host_of(peer) if peer else client_host
    cross = peer_host != client_host
    # Across hosts: the address the peer's host publishes it on (preflight refuses a host without one).
    address = _text((hosts.get(peer_host) or {}).get("mlstack_host_address"), peer_host)
    return Dependency(unit=dep, role=role, container=container_name(dep), host=address if cross else dep,
                      port=remote_port(peer) if cross else unit_port(peer),
                      awaited=awaited, secret_file=secret_file,
                      secret=(dep, secret_name or db_identifier(client)) if secret_file else None,
                      docker_host=peer_host, cross_host=cross)


def _dependencies(name: str, entry: Mapping[str, Any], peers: Mapping[str, Mapping[str, Any]],
                  hosts: Mapping[str, Mapping[str, Any]]) -> tuple[Dependency, ...]:
    """Awaited dependencies first, in declared order, then the optional units the catalog has."""
    awaited = list(entry.get("mlstack_depends_on") or [])
    # A critical unit's non-critical helpers are wired when they are in the catalog, never awaited.
    optional = [u for u in entry.get("mlstack_optional") or [] if u in peers and u not in awaited]
    host = docker_host_of(entry)
    return tuple(_dependency(name, host, dep, peers.get(dep) or {}, dep in awaited, hosts)
                 for dep in awaited + optional)


def _tls(name: str, entry: Mapping[str, Any], role: str | None, remote_clients: tuple[str, ...],
         address: str | None) -> dict[str, Any] | None:
    """A database's TLS: on when a unit on another host depends on it (or ``mlstack_tls`` says so)."""
    if role not in CROSS_HOST_ROLES or not (remote_clients or _flag(entry.get("mlstack_tls"), False)):
        return None
    names = [name, container_name(name)] + ([address] if address else [])
    return {"port": TLS_PORTS.get(role) or unit_port(entry), "remote_port": remote_port(entry),
            "names": names, "ca": [TLS_CA_UNIT, TLS_CA_FILE], "cert": [name, TLS_CERT_FILE],
            "key": [name, TLS_KEY_FILE]}


def _networks(name: str, kind: str | None, published: bool, settings: Settings,
              crosses: bool = False) -> tuple[dict[str, Any], ...]:
    # Every unit answers under its unit name on the backend network; a published service
    # joins the frontend network first, where its host ports are bound (the port holder
    # joins that first network only). The backend network has no route out: a unit that
    # talks to another Docker host, or that one reaches through its host's address, joins
    # the frontend network first too.
    backend = {"name": settings.backend_network, "aliases": [name]}
    if (kind == "service" and published) or crosses:
        return ({"name": settings.frontend_network, "aliases": [name]}, backend)
    return (backend,)


def _update_order(kind: str | None, entry: Mapping[str, Any]) -> str:
    # A database owns its data volume: one process at a time, so it is always replaced
    # stop-first. A service is replaced start-first (its candidate proven beside it, no
    # gap) unless its entry says otherwise (a service with a data volume: preflight). An
    # app with a named volume is a database as far as the collection can tell.
    if kind == "database":
        return "stop-first"
    if kind == "app" and entry.get("mlstack_data_volume"):
        return _text(entry.get("mlstack_update_order"), "stop-first")
    return _text(entry.get("mlstack_update_order"), "start-first")


def _gpu(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The GPU request (placed by playbooks/gpu.yml); ``devices``: GPUs set by hand (None: as placed)."""
    devices = entry.get("mlstack_gpus")
    return {"mode": _text(entry.get("mlstack_gpu"), "none"), "memory_mb": _int(entry.get("mlstack_gpu_memory_mb")) or 0,
            "device": None if entry.get("mlstack_gpu_device") in (None, "") else str(entry["mlstack_gpu_device"]),
            "devices": None if devices is None else [str(d) for d in devices],
            "env": dict(entry.get("mlstack_gpu_env") or {})}


# The roles whose units serve Prometheus metrics unless their entry says otherwise.
METRICS_ROLES = ("ml_service",)


def _metrics_path(entry: Mapping[str, Any], role: str | None) -> str | None:
    # Absent: the role's default; "" or false: none (an ml_service image that serves no
    # /metrics, such as llama.cpp's server); any other value: that path, whatever the role.
    value = entry.get("mlstack_metrics_path")
    if value is None:
        return "/metrics" if role in METRICS_ROLES else None
    if value is False or str(value).strip() == "":
        return None
    return str(value)


def _image(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The unit's image: a reference to pull, a recipe to build (None: the role's), each also for a GPU."""
    return {"ref": _text(entry.get("mlstack_image"), ""), "ref_gpu": _text(entry.get("mlstack_image_gpu"), ""),
            "recipe": entry.get("mlstack_image_recipe") or None,
            "recipe_gpu": entry.get("mlstack_image_recipe_gpu") or None}


def resolve(name: str, entry: Mapping[str, Any], settings: Mapping[str, Any] | Settings, *,
            peers: Mapping[str, Mapping[str, Any]] | None = None, home: str = "",
            hosts: Mapping[str, Mapping[str, Any]] | None = None,
            remote_clients: tuple[str, ...] = ()) -> ResolvedUnit:
    """One unit, every fallback applied and every name derived.

    ``entry``: the unit's host vars (its catalog entry); ``settings``: the collection-wide
    variables (or :func:`resolve_settings`' result); ``peers``: the catalog entries of the
    units it names in ``mlstack_depends_on`` / ``mlstack_optional`` (absent: not in the
    catalog; an optional one is then not wired); ``hosts``: the vars of the Docker hosts of
    the unit and its peers (their ``mlstack_docker_url`` and ``mlstack_host_address``);
    ``remote_clients``: the units on other Docker hosts that depend on this one.
    """
    common = settings if isinstance(settings, Settings) else resolve_settings(settings, home)
    hosts = hosts or {}
    kind = entry.get("mlstack_unit_kind")
    role = entry.get("mlstack_unit_role") or None
    app = app_settings(entry, f"{common.runtime_dir}/{name}") if kind == "app" else None
    host_port = app["host_ports"][0] if app and app["host_ports"] else _int(entry.get("mlstack_host_port"))
    container = container_name(name)
    docker_host = docker_host_of(entry)
    own_host = hosts.get(docker_host) or {}
    address = _text(own_host.get("mlstack_host_address"), "") or None
    deps = _dependencies(name, entry, peers or {}, hosts)
    tls = _tls(name, entry, role, remote_clients, address)
    data_volume = database_volume(name) if kind == "database" else (entry.get("mlstack_data_volume") or None)
    crosses = bool(remote_clients) or any(d.cross_host for d in deps)
    return ResolvedUnit(
        name=name, kind=kind, role=role, port=unit_port(entry), host_port=host_port,
        # The engine is the Docker host's: its own mlstack_docker_url, else the collection-wide one.
        docker_host=docker_host, docker_url=engine_url(own_host) if own_host.get("mlstack_docker_url") else
        common.docker_url,
        host_address=address,
        container=container, candidate=next_name(container), previous=previous_name(container),
        replaced=side_name(container), holder=holder_name(container),
        # A published service binds its host port through a port holder unless it opted out.
        port_holder=kind in ("service", "app") and host_port is not None
        and _flag(entry.get("mlstack_port_holder"), True),
        port_holder_image=_text(entry.get("mlstack_port_holder_image"), ""),
        data_volume=data_volume, runtime_dir=f"{common.runtime_dir}/{name}", secrets_dir=common.secrets_dir,
        networks=app_networks(entry, name) if app and entry.get("mlstack_networks")
        else _networks(name, kind, host_port is not None, common, crosses),
        backend_network=common.backend_network,
        depends_on=deps, awaited=tuple(d.container for d in deps if d.awaited and not d.cross_host),
        remote_awaited=tuple({"unit": d.unit, "docker_host": d.docker_host, "address": d.host, "port": d.port}
                             for d in deps if d.awaited and d.cross_host),
        remote_clients=tuple(remote_clients), tls=tls,
        # Critical only when the inventory says so: what preflight and verify already assumed.
        critical=_flag(entry.get("mlstack_critical"), False),
        update_order=_update_order(kind, entry), recreate=common.recreate, image_source=common.image_source,
        hardening=copy.deepcopy(HARDENING), gpu=_gpu(entry),
        security_exceptions=dict(entry.get("mlstack_security_exceptions") or {}),
        latency_bound_ms=_number(entry.get("mlstack_latency_bound_ms"), None),
        health_path=_text(entry.get("mlstack_health_path"), "/health"),
        metrics_path=_metrics_path(entry, role),
        metrics_honor_labels=_flag(entry.get("mlstack_metrics_honor_labels"), False),
        health_timeout=_number(entry.get("mlstack_health_timeout"), 300),
        start_period=_number(entry.get("mlstack_start_period"), 120),
        memory=None if entry.get("mlstack_memory") in (None, "") else str(entry["mlstack_memory"]),
        cpus=_number(entry.get("mlstack_cpus"), None),
        shm_size=None if entry.get("mlstack_shm_size") in (None, "") else str(entry["mlstack_shm_size"]),
        env=dict(entry.get("mlstack_env") or {}), image=_image(entry), app=app,
        catalog_version=_text(entry.get("mlstack_catalog_version"), "1"),
        vault_password_file=common.vault_password_file, strict=common.strict,
    )
