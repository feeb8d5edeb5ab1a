"""A no-op phase5 on a host whose cores are all busy: healthy units are not failed by the load.

Issue 15: with a second copy of the stack running beside it, no-op runs ended rc 2 because
healthchecks and verification probes timed out and were read as failures. Here stress-ng
keeps every core busy (bounded in time) while phase5 re-runs on the stack the scenario's
converge deployed, and a request loop keeps the critical voice unit working. Runs before
test_rollback.py (file order), on the same stack.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from conftest import FIGURES, RequestLoop, inventory, playbook

# Longer than any no-op run here; the hog is stopped as soon as the run ends anyway.
HOG_LIMIT_S = 600


def changed_counts(output: str) -> dict[str, int]:
    """changed=N of each host of the play recap."""
    return {host: int(n) for host, n in re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", output, re.M)}


def test_a_no_op_phase5_on_a_host_with_every_core_busy_passes(
        tmp_path: Path, request_loop: RequestLoop) -> None:
    stress = shutil.which("stress-ng")
    assert stress, "stress-ng is missing: scripts/test installs it (apt-get install stress-ng)"
    cores = os.cpu_count() or 1
    hog = subprocess.Popen([stress, "--cpu", str(cores), "--timeout", f"{HOG_LIMIT_S}s", "--quiet"])
    started = time.monotonic()
    try:
        time.sleep(3)  # the hog is running on every core before the run starts
        run = playbook("phase5.yml", inventory(tmp_path, {}))
        load_1m = os.getloadavg()[0]
    finally:
        hog.terminate()
        hog.wait(timeout=30)
    request_loop.stop()
    assert hog.returncode is not None
    FIGURES["busy_host_no_op"] = {"cores_busy": cores, "load_1m_at_end": round(load_1m, 2),
                                  "wall_s": round(time.monotonic() - started, 1), "rc": run.rc,
                                  "verdict": run.evidence["verdict"], "requests_ok": request_loop.ok,
                                  "requests_failed": request_loop.failed,
                                  "slowest_s": request_loop.slowest_s}
    assert run.rc == 0, run.output[-3000:]
    assert run.evidence["verdict"] == "pass", [
        (r["unit"], r["check"], r["message"]) for r in run.evidence["checks"] if not r["ok"]]
    changed = {host: n for host, n in changed_counts(run.output).items() if n}
    assert changed == {}, f"a no-op run under load changed something: {changed}"
    assert request_loop.ok > 0
    assert request_loop.failed == 0, f"requests failed while the host was busy: {request_loop.errors[:5]}"
