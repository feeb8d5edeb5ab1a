# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a unit sees of a database on another host (module_utils/_tls_probe.py), against a real
redis-server and a real PostgreSQL serving TLS with a certificate of a stack CA (plugin_utils/_tls.py)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils._tls_probe import probe
from ansible_collections.aiops.mlstack.plugins.plugin_utils._tls import Lifetimes, ensure_ca, ensure_server

REDIS = shutil.which("redis-server")
PG_BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"))), None)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("secrets")
    ca, _changes = ensure_ca(base, Lifetimes())
    ensure_server(base, "db", ["db", "127.0.0.1"], ca, Lifetimes())
    other = tmp_path_factory.mktemp("other")
    ensure_ca(other, Lifetimes())
    return {"ca": base / "tls" / "ca.pem", "cert": base / "db" / "tls_cert.pem", "key": base / "db" / "tls_key.pem",
            "other_ca": other / "tls" / "ca.pem"}


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}")
            time.sleep(0.05)
    pytest.fail(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def redis_tls(pki: dict[str, Path]) -> Iterator[dict[str, int]]:
    if REDIS is None:
        pytest.skip("redis-server is not installed (scripts/test installs it)")
    plain, tls = _port(), _port()
    proc = subprocess.Popen([REDIS, "--port", str(plain), "--tls-port", str(tls), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(pki["cert"]), "--tls-key-file", str(pki["key"]),
                             "--tls-ca-cert-file", str(pki["ca"]), "--tls-auth-clients", "no", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(tls, proc)
        yield {"plain": plain, "tls": tls}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def postgres_tls(pki: dict[str, Path]) -> Iterator[int]:
    if PG_BIN is None:
        pytest.skip("PostgreSQL binaries are not installed (scripts/test installs them)")
    # Not under pytest's root-only tmp tree: as root the server runs as postgres, which must reach it.
    base = Path(tempfile.mkdtemp(prefix="mlstack-tls-probe-"))
    user = "postgres" if os.geteuid() == 0 else None
    prefix = ["runuser", "-u", user, "--"] if user else []
    data = base / "data"
    if user:
        shutil.chown(base, user)
    subprocess.run([*prefix, f"{PG_BIN}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True, timeout=120)
    # As the server sees a client on another Docker host: nothing but TLS over TCP.
    (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all all scram-sha-256\n")
    for name in ("cert", "key"):
        target = data / f"server.{name}"
        shutil.copy(pki[name], target)
        target.chmod(0o600)
        if user:
            shutil.chown(target, user)
    port = _port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=server.cert " \
              "-c ssl_key_file=server.key"
    subprocess.run([*prefix, f"{PG_BIN}/pg_ctl", "-D", str(data), "-o", options, "-w", "-l", str(base / "log"),
                    "start"], check=True, capture_output=True, timeout=120)
    try:
        yield port
    finally:
        subprocess.run([*prefix, f"{PG_BIN}/pg_ctl", "-D", str(data), "-m", "fast", "stop"], capture_output=True,
                       timeout=60, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _dep(role: str, port: int) -> dict[str, object]:
    return {"unit": role, "role": role, "docker_host": "h1", "address": "127.0.0.1", "port": port}


def test_redis_tls_port_verifies_and_turns_plaintext_away(redis_tls: dict[str, int], pki: dict[str, Path]) -> None:
    seen = probe([_dep("redis", redis_tls["tls"])], pki["ca"].read_text(), 5)["redis"]
    assert seen["tls"]["ok"] and seen["tls"]["version"].startswith("TLS") and seen["plaintext"]["ok"]
    # The plaintext port answers a plaintext client: the probe says so (it must never be published).
    open_port = probe([_dep("redis", redis_tls["plain"])], pki["ca"].read_text(), 5)["redis"]
    assert not open_port["plaintext"]["ok"] and "in plaintext" in open_port["plaintext"]["answer"]
    # Another CA: the server is not trusted.
    stranger = probe([_dep("redis", redis_tls["tls"])], pki["other_ca"].read_text(), 5)["redis"]
    assert not stranger["tls"]["ok"] and "not verified" in stranger["tls"]["error"]


def test_postgresql_negotiates_tls_and_refuses_plaintext(postgres_tls: int, pki: dict[str, Path]) -> None:
    seen = probe([_dep("postgresql", postgres_tls)], pki["ca"].read_text(), 5)["postgresql"]
    assert seen["tls"]["ok"], seen
    assert seen["plaintext"]["ok"] and "no encryption" in seen["plaintext"]["answer"]
    stranger = probe([_dep("postgresql", postgres_tls)], pki["other_ca"].read_text(), 5)["postgresql"]
    assert not stranger["tls"]["ok"]


def test_a_lost_host_is_an_error_not_a_hang() -> None:
    seen = probe([_dep("postgresql", _port())], "", 2)["postgresql"]
    assert not seen["tls"]["ok"] and not seen["plaintext"]["ok"] and "could not connect" in seen["plaintext"]["answer"]
