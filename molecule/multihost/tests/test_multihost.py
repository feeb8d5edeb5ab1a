"""Several Docker hosts: what phase5 left on h1 and h2 (tests/multihost/hosts.py), checked from outside.

The databases run on h1, the services on h2; every database connection crosses hosts over TLS
from the stack's CA. Traffic stays on the namespaces' addresses (10.77.0.0/24). Secrets are
read from the scenario's secrets directory and never printed: the assertions compare outcomes.
The last test loses h1's engine and brings it back (it runs phase5 twice more).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "molecule" / "multihost"
HARNESS = ROOT / "tests" / "multihost" / "hosts.py"
SECRETS = Path("/var/lib/mlstack-multihost/secrets")
EVIDENCE = Path(os.environ.get("MLSTACK_EVIDENCE_DIR", ROOT / "tests" / "output" / "evidence-multihost"))
H1, H2 = "10.77.0.11", "10.77.0.12"


def engine(host: str) -> list[str]:
    return ["docker", "-H", f"unix:///run/mlstack-multihost/{host}/docker.sock"]


def names(host: str) -> set[str]:
    out = subprocess.run([*engine(host), "ps", "--format", "{{.Names}}"], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def secret(unit: str, name: str) -> str:
    return (SECRETS / unit / name).read_text().strip()


def in_h2(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Python with the controller's libraries, run in h2's network namespace (as a client on h2)."""
    return subprocess.run(["ip", "netns", "exec", "mlmh-h2", sys.executable, "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **env}, check=False)


def newest_bundle() -> Path:
    """The newest bundle of a phase5 run: under molecule, prepare's and verify's own playbooks write
    bundles too (verify's, still running, was `latest` and read as `incomplete`)."""
    for bundle in sorted((p for p in EVIDENCE.iterdir() if p.is_dir() and not p.is_symlink()), reverse=True):
        try:
            units = json.loads((bundle / "summary.json").read_text()).get("units") or {}
        except (OSError, ValueError):
            continue
        if "learning" in units:
            return bundle
    raise AssertionError(f"no phase5 bundle under {EVIDENCE}")


def records(bundle: Path) -> list[dict[str, Any]]:
    return json.loads((bundle / "evidence.json").read_text())["checks"]


def phase5() -> subprocess.CompletedProcess[str]:
    command = ["ansible-playbook", "-i", str(SCENARIO / "inventory"), str(ROOT / "playbooks" / "phase5.yml")]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)


def test_each_unit_runs_on_its_own_host() -> None:
    assert {"mlstack-redis", "mlstack-postgresql"} <= names("h1")
    assert {"mlstack-learning", "mlstack-sequential-thinking"} <= names("h2")
    assert not {"mlstack-learning", "mlstack-sequential-thinking"} & names("h1")
    assert not {"mlstack-redis", "mlstack-postgresql"} & names("h2")


ENGINE_TLS = Path("/run/mlstack-multihost/engine-tls")


@pytest.mark.parametrize(("flags", "outcome"), [
    # The control: the client certificate phase5 reached h1's engine with (mlstack_docker_tls).
    (["--tlsverify", "--tlscacert", "ca.pem", "--tlscert", "client-cert.pem", "--tlskey", "client-key.pem"], 0),
    (["--tlsverify", "--tlscacert", "ca.pem"], 1),  # no client certificate
    ([], 1),                                         # plain HTTP to the TLS port
])
def test_h1s_engine_takes_tcp_clients_with_a_certificate_of_its_ca_only(flags: list[str], outcome: int) -> None:
    argv = [arg if not arg.endswith(".pem") else str(ENGINE_TLS / arg) for arg in flags]
    out = subprocess.run(["ip", "netns", "exec", "mlmh-h2", "docker", "-H", f"tcp://{H1}:2376", *argv, "ps",
                          "--format", "{{.Names}}"], capture_output=True, text=True, timeout=60, check=False)
    assert (out.returncode != 0) == bool(outcome), out.stdout + out.stderr
    if outcome == 0:
        assert {"mlstack-redis", "mlstack-postgresql"} <= set(out.stdout.split())


def test_the_evidence_proves_tls_across_hosts() -> None:
    bundle = newest_bundle()
    assert json.loads((bundle / "summary.json").read_text())["verdict"] == "pass"
    tls = {r["unit"]: r for r in records(bundle) if r["check"] == "cross_host_tls"}
    assert set(tls) == {"learning", "sequential-thinking"}
    assert all(r["ok"] for r in tls.values()), [r["message"] for r in tls.values()]
    assert f"postgresql on h1 ({H1}:5432" in tls["learning"]["message"]
    assert f"redis on h1 ({H1}:6380" in tls["learning"]["message"]


def test_a_service_on_h2_reads_and_writes_postgresql_and_redis_on_h1_over_tls() -> None:
    script = textwrap.dedent("""
        import asyncio, json, uuid
        from mlstack_services.settings import Settings
        from mlstack_services.pg import PgDatabase
        from mlstack_services import redis_store
        s = Settings.from_env()
        value = uuid.uuid4().hex
        async def main():
            db = PgDatabase(s, "CREATE TABLE IF NOT EXISTS multihost_probe (k text PRIMARY KEY, v text)")
            await db.execute("INSERT INTO multihost_probe VALUES ('k', %s) "
                             "ON CONFLICT (k) DO UPDATE SET v = excluded.v", (value,))
            [(pg_read,)] = await db.execute("SELECT v FROM multihost_probe WHERE k = 'k'")
            [(ssl, version)] = await db.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            r = redis_store.connect(s)
            await r.set(s.redis_prefix + "multihost-probe", value, ex=60)
            redis_read = await r.get(s.redis_prefix + "multihost-probe")
            await r.aclose()
            print(json.dumps({"pg": pg_read == value, "pg_ssl": ssl, "pg_tls": version, "redis": redis_read == value,
                              "pg_host": s.postgres_host, "redis_host": s.redis_host, "redis_port": s.redis_port}))
        asyncio.run(main())
    """)
    out = subprocess.run([*engine("h2"), "exec", "mlstack-learning", "python", "-c", script],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"pg": True, "pg_ssl": True, "pg_tls": seen["pg_tls"], "redis": True, "pg_host": H1,
                    "redis_host": H1, "redis_port": 6380}
    assert seen["pg_tls"].startswith("TLSv1.")


PG_CONNECT = """
    import psycopg, os, sys
    try:
        psycopg.connect(host=os.environ["H"], port=5432, user="learning", dbname="learning", connect_timeout=5,
                        password=os.environ["PW"], **eval(os.environ["KW"])).close()
        print("accepted")
    except psycopg.OperationalError as exc:
        print("refused:", " ".join(str(exc).split())[:400])
"""

REDIS_CONNECT = """
    import redis, os
    try:
        r = redis.Redis(host=os.environ["H"], port=int(os.environ["PORT"]), username="learning",
                        password=os.environ["PW"], socket_timeout=5, socket_connect_timeout=5, **eval(os.environ["KW"]))
        print("accepted" if r.ping() else "no answer")
    except (redis.RedisError, OSError) as exc:
        print("refused:", type(exc).__name__, " ".join(str(exc).split())[:300])
"""


@pytest.fixture(scope="module")
def stranger_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA of someone else's, self-signed like the stack's: it must not be trusted for h1."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the stack CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256()))
    path = tmp_path_factory.mktemp("stranger") / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


@pytest.mark.parametrize(("kw", "outcome"), [
    ("{'sslmode': 'verify-full', 'sslrootcert': CA}", "accepted"),      # the control: the stack's CA
    ("{'sslmode': 'disable'}", "refused"),                             # plaintext
    ("{'sslmode': 'verify-full', 'sslrootcert': STRANGER}", "refused"),  # another CA
])
def test_postgresql_on_h1_takes_verified_tls_only(kw: str, outcome: str, stranger_ca: str) -> None:
    kw = kw.replace("CA}", f"'{SECRETS}/tls/ca.pem'}}").replace("STRANGER}", f"'{stranger_ca}'}}")
    out = in_h2(PG_CONNECT, H=H1, PW=secret("postgresql", "learning"), KW=kw)
    assert out.stdout.startswith(outcome), out.stdout + out.stderr[-500:]
    if "disable" in kw:
        assert "no encryption" in out.stdout
    if stranger_ca in kw:
        assert "certificate verify failed" in out.stdout


@pytest.mark.parametrize(("port", "kw", "outcome"), [
    (6380, "{'ssl': True, 'ssl_ca_certs': CA}", "accepted"),
    (6380, "{}", "refused"),                                             # plaintext on the TLS port
    (6380, "{'ssl': True, 'ssl_ca_certs': STRANGER}", "refused"),        # another CA
    (6379, "{}", "refused"),                                             # the plaintext port: not published
])
def test_redis_on_h1_takes_verified_tls_only(port: int, kw: str, outcome: str, stranger_ca: str) -> None:
    kw = kw.replace("CA}", f"'{SECRETS}/tls/ca.pem'}}").replace("STRANGER}", f"'{stranger_ca}'}}")
    out = in_h2(REDIS_CONNECT, H=H1, PORT=str(port), PW=secret("redis", "learning"), KW=kw)
    assert out.stdout.startswith(outcome), out.stdout + out.stderr[-500:]
    if stranger_ca in kw:
        assert "certificate verify failed" in out.stdout


def test_losing_h1_fails_the_critical_unit_and_degrades_the_other_naming_h1_then_converges() -> None:
    subprocess.run([sys.executable, str(HARNESS), "stop-engine", "h1"], check=True, capture_output=True, timeout=120)
    try:
        lost = phase5()
        assert lost.returncode != 0, lost.stdout[-3000:]
        bundle = newest_bundle()
        assert json.loads((bundle / "summary.json").read_text())["verdict"] == "fail"
        recs = records(bundle)
        deploys = {r["unit"]: r for r in recs
                   if r["check"] == "deploy" and r["unit"] in ("learning", "sequential-thinking")}
        for unit in ("learning", "sequential-thinking"):
            assert not deploys[unit]["ok"], deploys[unit]
            assert "on Docker host h1" in deploys[unit]["message"], deploys[unit]["message"]
        # Non-critical: degraded, its container untouched and serving (it reconnects when h1 is
        # back); critical: the run fails.
        assert "degraded" in deploys["learning"]["message"]
        assert "mlstack-learning" in names("h2")
        # stderr too: molecule's callback settings print a failed task there.
        assert "on Docker host h1" in lost.stdout + lost.stderr
    finally:
        subprocess.run([sys.executable, str(HARNESS), "start-engine", "h1"], check=True, capture_output=True,
                       timeout=120)
    back = phase5()
    assert back.returncode == 0, back.stdout[-3000:]
    assert json.loads((newest_bundle() / "summary.json").read_text())["verdict"] == "pass"
