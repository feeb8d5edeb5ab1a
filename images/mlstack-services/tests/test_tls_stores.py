"""PostgreSQL and Redis over TLS, as a unit reaches a database on another Docker host (issue 18).

Real servers with certificates made here: a throwaway stack CA signs a server certificate for
IP 127.0.0.1 and DNS localhost. Each server also listens on 127.0.0.2, which that certificate does
not name, and refuses plaintext. The package's own clients (PgDatabase through PgTranscripts,
redis_store.connect) are configured by Settings.from_env alone, as the collection wires them.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as redis_sync
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fakes import free_port
from mlstack_services.memory_store import Neo4jCypher, StoreError
from mlstack_services.redis_store import SessionStore, check, connect
from mlstack_services.settings import ConfigError, Settings
from mlstack_services.transcripts import PgTranscripts
from test_real_stores import PG_BIN, REDIS_SERVER, _pg_user, _secret, _write_pwfile, acl_file, needs_pg, needs_redis

# --- certificates ----------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)  # PostgreSQL refuses a key others may read


def _ca(directory: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _server_cert(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    cert = (x509.CertificateBuilder().subject_name(_name("mlstack-db")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(san, critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (directory / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(directory / "server.key", key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The stack CA, a server certificate it signed (127.0.0.1, localhost) and an unrelated CA."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca(directory, "stack-ca")
    _server_cert(directory, ca_key, ca_cert)
    _ca(directory, "other-ca")
    return {"ca": str(directory / "stack-ca.pem"), "other_ca": str(directory / "other-ca.pem"),
            "cert": str(directory / "server.crt"), "key": str(directory / "server.key")}


# --- settings --------------------------------------------------------------------------------


def test_tls_settings_are_off_and_empty_when_unset() -> None:
    s = Settings.from_env({"MLSTACK_UNIT": "chat"})
    assert (s.postgres_sslmode, s.postgres_sslrootcert) == ("", "")
    assert (s.redis_tls, s.redis_tls_ca_file, s.neo4j_tls_ca_file) == (False, "", "")


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_redis_tls_on_values(value: str) -> None:
    s = Settings.from_env({"MLSTACK_UNIT": "chat", "REDIS_TLS": value, "REDIS_TLS_CA_FILE": "/run/secrets/ca.pem"})
    assert s.redis_tls is True and s.redis_tls_ca_file == "/run/secrets/ca.pem"


@pytest.mark.parametrize(("env", "needle"), [
    ({"POSTGRES_SSLMODE": "verify_full"}, "POSTGRES_SSLMODE='verify_full': use one of disable, .*verify-full"),
    ({"POSTGRES_SSLMODE": "verify-full"}, "set POSTGRES_SSLROOTCERT"),
    ({"POSTGRES_SSLMODE": "verify-ca"}, "set POSTGRES_SSLROOTCERT"),
    ({"REDIS_TLS": "maybe"}, "REDIS_TLS='maybe': use 1/true/yes"),
    ({"REDIS_TLS": "1"}, "set REDIS_TLS_CA_FILE"),
    ({"NEO4J_URI": "bolt+s://neo4j:7687", "NEO4J_TLS_CA_FILE": "/ca.pem"}, "NEO4J_TLS_CA_FILE .* use bolt://"),
])
def test_bad_tls_settings_name_the_variable_and_the_fix(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env({"MLSTACK_UNIT": "chat", **env})


# --- PostgreSQL ------------------------------------------------------------------------------

HBA = """\
# TCP only with TLS: a plaintext connection finds no line and is refused.
local all all scram-sha-256
hostssl all all 127.0.0.0/8 scram-sha-256
"""


@pytest.fixture(scope="module")
def tls_postgres(pki: dict[str, str]) -> Iterator[dict[str, str]]:
    assert PG_BIN is not None
    user = _pg_user()
    prefix = ["runuser", "-u", user, "--"] if user else []
    base = tempfile.mkdtemp(prefix="mlstack-pg-tls-")
    data = os.path.join(base, "data")
    if user:
        shutil.chown(base, user)
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    run(f"{PG_BIN}/initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256",
        f"--pwfile={_write_pwfile(base, user)}")
    Path(data, "pg_hba.conf").write_text(HBA)
    for name in ("cert", "key"):
        target = os.path.join(data, f"server.{'crt' if name == 'cert' else 'key'}")
        shutil.copy(pki[name], target)
        os.chmod(target, 0o600)
        if user:
            shutil.chown(target, user)
    options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1,127.0.0.2 -c ssl=on "
               "-c ssl_cert_file=server.crt -c ssl_key_file=server.key")
    run(f"{PG_BIN}/pg_ctl", "-D", data, "-o", options, "-w", "-l", os.path.join(base, "log"), "start")
    try:
        env = {**os.environ, "PGPASSWORD": "super-pw"}
        for statement in ("CREATE ROLE chat LOGIN PASSWORD 'chat-pw'", "CREATE DATABASE chat OWNER chat"):
            # over the Unix socket: the only way in without TLS
            subprocess.run([f"{PG_BIN}/psql", "-h", base, "-p", str(port), "-U", "postgres", "-d", "postgres",
                            "-c", statement], check=True, capture_output=True, env=env, timeout=30)
        yield {"port": str(port), "password": "chat-pw"}
    finally:
        run(f"{PG_BIN}/pg_ctl", "-D", data, "-m", "fast", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _tls_pg_settings(tls_postgres: dict[str, str], tmp_path: Path, host: str = "127.0.0.1",
                     **env: str) -> Settings:
    return Settings.from_env({
        "MLSTACK_UNIT": "chat", "POSTGRES_HOST": host, "POSTGRES_PORT": tls_postgres["port"],
        "POSTGRES_USER": "chat", "POSTGRES_DB": "chat",
        "POSTGRES_PASSWORD_FILE": _secret(tmp_path, "postgres_password", tls_postgres["password"]), **env})


def _pg_round_trip(settings: Settings) -> tuple[tuple[bool, str], list[tuple[object, ...]]]:
    """/ready's check, one transcript written, then it and this session's TLS state read back."""
    store = PgTranscripts(settings)
    marker = os.urandom(4).hex()

    async def scenario() -> tuple[tuple[bool, str], list[tuple[object, ...]]]:
        try:
            ready = await store.check()
            if not ready[0]:
                return ready, []
            await store.add(marker, [{"role": "user", "content": "over tls"}])
            rows = await store.db.execute(
                "SELECT t.content, s.ssl, s.version FROM transcripts t, pg_stat_ssl s "
                "WHERE t.conversation_id = %s AND s.pid = pg_backend_pid()", (marker,))
            return ready, rows
        finally:
            await store.close()

    return asyncio.run(scenario())


@needs_pg
@pytest.mark.parametrize(("host", "sslmode"), [("127.0.0.1", "verify-full"), ("localhost", "verify-full"),
                                               ("127.0.0.2", "verify-ca")])
def test_postgresql_over_tls_with_the_stack_ca(tls_postgres: dict[str, str], pki: dict[str, str], tmp_path: Path,
                                               host: str, sslmode: str) -> None:
    """verify-full matches an IP SAN and a DNS SAN; verify-ca checks the chain only (any address)."""
    settings = _tls_pg_settings(tls_postgres, tmp_path, host, POSTGRES_SSLMODE=sslmode,
                                POSTGRES_SSLROOTCERT=pki["ca"])
    ready, rows = _pg_round_trip(settings)
    assert ready[0] is True, ready
    assert len(rows) == 1 and rows[0][:2] == ("over tls", True), rows
    assert str(rows[0][2]).startswith("TLSv1."), rows


@needs_pg
@pytest.mark.parametrize(("host", "env", "needle"), [
    ("127.0.0.1", {"POSTGRES_SSLMODE": "verify-full", "POSTGRES_SSLROOTCERT": "other_ca"}, "certificate verify failed"),
    ("127.0.0.1", {"POSTGRES_SSLMODE": "verify-ca", "POSTGRES_SSLROOTCERT": "other_ca"}, "certificate verify failed"),
    ("127.0.0.2", {"POSTGRES_SSLMODE": "verify-full", "POSTGRES_SSLROOTCERT": "ca"},
     'does not match host name "127.0.0.2"'),
    ("127.0.0.1", {"POSTGRES_SSLMODE": "disable"}, "no encryption"),
    ("127.0.0.1", {"POSTGRES_SSLMODE": "verify-full", "POSTGRES_SSLROOTCERT": "/nonexistent/ca.pem"},
     "POSTGRES_SSLROOTCERT /nonexistent/ca.pem is not readable"),
])
def test_postgresql_tls_refusals_are_reasons(tls_postgres: dict[str, str], pki: dict[str, str], tmp_path: Path,
                                             host: str, env: dict[str, str], needle: str) -> None:
    """Another CA, a certificate that does not name the host, plaintext: each refused, with why."""
    env = {key: pki.get(value, value) for key, value in env.items()}
    ready, rows = _pg_round_trip(_tls_pg_settings(tls_postgres, tmp_path, host, **env))
    assert ready[0] is False and rows == []
    assert needle in ready[1], ready[1]


@needs_pg
def test_postgresql_without_sslmode_keeps_libpq_default(tls_postgres: dict[str, str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, nothing is passed: libpq's default (prefer) takes TLS when offered, unverified. This is
    why the collection sets verify-full for a database on another host."""
    monkeypatch.delenv("PGSSLMODE", raising=False)
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    ready, rows = _pg_round_trip(_tls_pg_settings(tls_postgres, tmp_path))
    assert ready[0] is True, ready
    assert rows[0][1] is True


@needs_pg
def test_postgresql_plaintext_is_refused_by_the_server(tls_postgres: dict[str, str]) -> None:
    """The fixture's pg_hba.conf, seen without the package: only hostssl lines for TCP."""
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(host="127.0.0.1", port=tls_postgres["port"], user="chat", dbname="chat",
                        password=tls_postgres["password"], sslmode="disable", connect_timeout=3)


# --- Redis -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_redis(pki: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """redis-server with TLS only (no plaintext port), the collection's ACL users, on 127.0.0.1 and .2."""
    assert REDIS_SERVER is not None
    directory = tmp_path_factory.mktemp("redis-tls")
    port = free_port()
    users = {"voice_interaction": "voice-pw", "chat": "chat-pw", "admin": "admin-pw"}
    acl = acl_file(directory / "users.acl", users)
    log = directory / "redis.log"
    proc = subprocess.Popen([
        REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "127.0.0.2",
        "--tls-cert-file", pki["cert"], "--tls-key-file", pki["key"], "--tls-ca-cert-file", pki["ca"],
        "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--aclfile", str(acl),
        "--logfile", str(log),
    ], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    admin = redis_sync.Redis(host="127.0.0.1", port=port, username="admin", password="admin-pw", ssl=True,
                             ssl_ca_certs=pki["ca"], socket_timeout=2)
    deadline = time.monotonic() + 10
    while True:
        try:
            admin.ping()
            break
        except redis_sync.ConnectionError:
            if proc.poll() is not None:
                said = log.read_text(errors="replace") if log.exists() else ""
                if "tls" in said.lower() and ("bad directive" in said.lower() or "not supported" in said.lower()):
                    pytest.skip(f"this redis-server has no TLS support: {said.strip()[-200:]}")
                pytest.fail(f"redis-server with TLS did not start: {said[-500:]}")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server with TLS did not answer within 10 s")
            time.sleep(0.05)
    try:
        yield {"port": str(port), **users}
    finally:
        admin.close()
        proc.terminate()
        proc.wait(10)


def _tls_redis_settings(tls_redis: dict[str, str], tmp_path: Path, host: str = "127.0.0.1",
                        **env: str) -> Settings:
    return Settings.from_env({
        "MLSTACK_UNIT": "voice-interaction", "REDIS_HOST": host, "REDIS_PORT": tls_redis["port"],
        "REDIS_USER": "voice_interaction",
        "REDIS_PASSWORD_FILE": _secret(tmp_path, "redis_password", tls_redis["voice_interaction"]), **env})


def _redis_round_trip(settings: Settings) -> tuple[bool, str]:
    """/ready's check, then a session written and read back by the package's own client and store."""
    async def scenario() -> tuple[bool, str]:
        client = connect(settings)
        try:
            ok, reason = await check(client, settings.redis_prefix)
            sessions = SessionStore(client, settings.redis_prefix, ttl_s=60)
            created = await sessions.create({"room": "tls"}, "subject")
            loaded = await sessions.get(created["id"])
            assert loaded is not None and loaded["metadata"] == {"room": "tls"}
            return ok, reason
        finally:
            await client.aclose()

    try:
        return asyncio.run(scenario())
    except redis_sync.ConnectionError as exc:
        return False, str(exc)


@needs_redis
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_redis_over_tls_with_the_stack_ca(tls_redis: dict[str, str], pki: dict[str, str], tmp_path: Path,
                                          host: str) -> None:
    """The hostname check matches an IP SAN and a DNS SAN."""
    settings = _tls_redis_settings(tls_redis, tmp_path, host, REDIS_TLS="true", REDIS_TLS_CA_FILE=pki["ca"])
    ok, reason = _redis_round_trip(settings)
    assert ok is True, reason


PLAINTEXT_DROPPED = "Connection reset by peer|Connection closed by server"


@needs_redis
@pytest.mark.parametrize(("host", "env", "needle"), [
    ("127.0.0.1", {"REDIS_TLS": "1", "REDIS_TLS_CA_FILE": "other_ca"}, "certificate verify failed"),
    ("127.0.0.2", {"REDIS_TLS": "1", "REDIS_TLS_CA_FILE": "ca"}, "IP address mismatch"),
    ("127.0.0.1", {"REDIS_TLS": "1", "REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"},
     r"REDIS_TLS_CA_FILE /nonexistent/ca\.pem is not readable"),
    # plaintext to a TLS port: the server drops the connection at its first bytes
    ("127.0.0.1", {}, PLAINTEXT_DROPPED),
    ("127.0.0.1", {"REDIS_TLS": "no"}, PLAINTEXT_DROPPED),
])
def test_redis_tls_refusals_are_reasons(tls_redis: dict[str, str], pki: dict[str, str], tmp_path: Path,
                                        host: str, env: dict[str, str], needle: str) -> None:
    """Another CA, a certificate that does not name the host, an unreadable CA file, plaintext."""
    env = {key: pki.get(value, value) for key, value in env.items()}
    ok, reason = _redis_round_trip(_tls_redis_settings(tls_redis, tmp_path, host, **env))
    assert ok is False
    assert re.search(needle, reason), reason


# --- Neo4j -----------------------------------------------------------------------------------

BOLT_MAGIC = b"\x60\x60\xb0\x17"


@pytest.fixture
def bolt_tls_listener(pki: dict[str, str]) -> Iterator[tuple[int, list[bytes]]]:
    """A TLS server on 127.0.0.1 and .2 that keeps the first 4 bytes each client sends once the
    handshake is done, then closes: no Neo4j server here, but the driver's real TLS layer, and
    its Bolt preamble arriving decrypted proves the session was established."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["cert"], pki["key"])
    listener = socket.create_server(("0.0.0.0", 0))
    listener.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(3)
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        received.append(tls.recv(4))
                except OSError:
                    pass  # a refused handshake: the client's side is what the tests look at

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _neo4j_version(tmp_path: Path, uri: str, **env: str) -> str:
    cypher = Neo4jCypher(Settings.from_env({
        "MLSTACK_UNIT": "memory", "NEO4J_URI": uri,
        "NEO4J_PASSWORD_FILE": _secret(tmp_path, "neo4j_password", "neo4j-pw"), **env}))

    async def scenario() -> str:
        try:
            return await cypher.version()
        except StoreError as exc:
            return str(exc)
        finally:
            await cypher.close()

    return asyncio.run(scenario())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_neo4j_driver_speaks_bolt_inside_tls_with_the_stack_ca(bolt_tls_listener: tuple[int, list[bytes]],
                                                                pki: dict[str, str], tmp_path: Path, host: str) -> None:
    port, received = bolt_tls_listener
    reason = _neo4j_version(tmp_path, f"bolt://{host}:{port}", NEO4J_TLS_CA_FILE=pki["ca"])
    assert BOLT_MAGIC in received, (received, reason)
    assert "certificate" not in reason.lower(), reason


@pytest.mark.parametrize(("host", "ca", "needle"), [
    ("127.0.0.1", "other_ca", "certificate verify failed"),
    ("127.0.0.2", "ca", "IP address mismatch"),
    ("127.0.0.1", "/nonexistent/ca.pem", r"NEO4J_TLS_CA_FILE /nonexistent/ca\.pem is not readable"),
])
def test_neo4j_tls_refusals_are_reasons(bolt_tls_listener: tuple[int, list[bytes]], pki: dict[str, str],
                                        tmp_path: Path, host: str, ca: str, needle: str) -> None:
    port, received = bolt_tls_listener
    reason = _neo4j_version(tmp_path, f"bolt://{host}:{port}", NEO4J_TLS_CA_FILE=pki.get(ca, ca))
    assert re.search(needle, reason), reason
    assert BOLT_MAGIC not in received


def test_neo4j_without_a_ca_file_sends_bolt_in_plaintext(bolt_tls_listener: tuple[int, list[bytes]],
                                                         tmp_path: Path) -> None:
    """Unset, the driver is built as before (a bolt:// URI is plaintext): the TLS server refuses it."""
    port, received = bolt_tls_listener
    reason = _neo4j_version(tmp_path, f"bolt://127.0.0.1:{port}")
    assert reason.startswith(f"neo4j bolt://127.0.0.1:{port}: "), reason
    assert BOLT_MAGIC not in received
