"""Shared by the rollback scenario's tests: v2 inventories, playbook runs, evidence, a request loop.

Everything runs against the real local stack that the scenario's converge (phase5) deployed.
Tokens are minted with the stack's signing key from the controller's secrets directory and
never printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[3]
SECRETS = Path(os.environ.get("MLSTACK_SECRETS_DIR", Path.home() / ".local/share/mlstack/secrets"))
VOICE = "http://127.0.0.1:8006"
CHAT = "http://127.0.0.1:8007"
FIGURES: dict[str, Any] = {}


def token(audience: str, scopes: str, ttl: int = 900) -> str:
    now = int(time.time())
    claims = {"iss": "mlstack", "sub": "molecule-rollback", "aud": audience, "scope": scopes, "iat": now,
              "exp": now + ttl, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, (SECRETS / "jwt" / "signing.pem").read_bytes(), algorithm="EdDSA")


def voice_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {token('voice-interaction', 'voice:session voice:tts')}"}


@dataclass
class Run:
    rc: int
    output: str
    evidence: dict[str, Any]

    def records(self, unit: str, check: str) -> list[dict[str, Any]]:
        return [r for r in self.evidence["checks"] if r["unit"] == unit and r["check"] == check]


def inventory(tmp_path: Path, host_vars: dict[str, dict[str, Any]]) -> Path:
    """The local inventory plus host_vars that change some units: a v2 of the stack."""
    inv = tmp_path / f"inventory-{uuid.uuid4().hex[:6]}"
    shutil.copytree(ROOT / "inventories" / "local", inv)
    (inv / "host_vars").mkdir(exist_ok=True)
    for unit, values in host_vars.items():
        (inv / "host_vars" / f"{unit}.yml").write_text(yaml.safe_dump(values))
    return inv


def playbook(name: str, inv: Path, *args: str) -> Run:
    """Run a playbook as a user does; its evidence bundle is the one the run wrote."""
    before = (ROOT / "evidence" / "latest").resolve() if (ROOT / "evidence" / "latest").exists() else None
    # Molecule's own settings (its ephemeral ansible.cfg among them) must not leak into the
    # user's run: the repository's ansible.cfg, with the evidence callback, applies.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    proc = subprocess.run(["ansible-playbook", "-i", str(inv), f"playbooks/{name}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    latest = (ROOT / "evidence" / "latest").resolve()
    assert latest != before, f"{name} wrote no evidence bundle:\n{proc.stdout[-3000:]}"
    return Run(proc.returncode, proc.stdout + proc.stderr, json.loads((latest / "evidence.json").read_text()))


def inspect(name: str) -> dict[str, Any] | None:
    proc = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


@dataclass
class RequestLoop:
    """Sends one request every 50 ms from another thread (``send``); counts what failed.

    Keeps the slowest answer too: a slow answer on a busy host is served, and the figure shows
    how close it came to the client's timeout.
    """

    send: Callable[[], requests.Response]
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                response = self.send()
                good = response.status_code == 200
                reason = f"HTTP {response.status_code}: {response.text[:120]}"
            except requests.RequestException as exc:
                good, reason = False, type(exc).__name__
            took = time.monotonic() - sent
            self.slowest_s = max(self.slowest_s, round(took, 3))
            if good:
                self.ok += 1
            else:
                self.failed += 1
                self.errors.append(f"{reason} after {took:.1f} s, at {sent - started:.1f} s into the loop")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()


@contextlib.contextmanager
def looping(send: Callable[[], requests.Response]) -> Iterator[RequestLoop]:
    loop = RequestLoop(send)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(timeout=30)


@pytest.fixture
def voice_session() -> str:
    """A session written through the voice unit (stored in Redis) under the running version."""
    response = requests.post(f"{VOICE}/v1/sessions", headers=voice_headers(), json={}, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def request_loop(voice_session: str) -> Iterator[RequestLoop]:
    """Reads a voice session written under v1 (voice-interaction, then Redis).

    10 s of patience: while the restored container loads its speech models, both cores are
    busy and the serving one answers in seconds, not milliseconds. A gap at the switch shows
    as a refused or reset connection, which no timeout hides.
    """
    headers = voice_headers()
    with looping(lambda: requests.get(f"{VOICE}/v1/sessions/{voice_session}", headers=headers, timeout=10)) as loop:
        yield loop


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.write_line("rollback scenario figures: " + json.dumps(FIGURES, sort_keys=True))
        out = ROOT / "evidence" / "rollback-scenario.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")
