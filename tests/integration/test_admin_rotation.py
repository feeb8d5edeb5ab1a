# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The admin passwords' rotation with the collection's code against real servers, no Docker.

PostgreSQL: ``postgres_provision``'s core rotates the superuser of a real server (Debian's
``initdb``/``pg_ctl`` on 127.0.0.1, as the ``postgres`` user when run as root) while a loop opens
a new connection every few milliseconds. Redis: a real ``redis-server`` loads the ``users.acl``
the redis role renders (its template, rendered here with the same variables) for each stage of
``rotate_passwords.yml``, while a loop logs in as the admin anew each time. Both expect no
failed connection, the former password refused and the new one accepted at the end. Skipped,
with the reason, where the binaries are absent.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.filter.catalog import redis_acl_rules
from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres as pg
from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_provision as prov

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return str(Path(os.path.realpath(found)).parent)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return str(Path(candidates[-1]).parent) if candidates else None


def _pg_user() -> str | None:
    """None: run as this user; ``postgres`` as root (initdb refuses root); ``missing`` when impossible."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "missing"
    return "postgres" if shutil.which("runuser") else "missing"


PG_BIN = _pg_bin()
REDIS_SERVER = shutil.which("redis-server")


class Loop:
    """Calls ``attempt`` until stopped, counting successes and keeping each failure's text."""

    def __init__(self, attempt: Callable[[], None]) -> None:
        self.attempt, self.ok, self.failures = attempt, 0, []  # type: ignore[var-annotated]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.attempt()
                self.ok += 1
            except Exception as exc:  # noqa: BLE001 - every failure counts
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.005)

    def __enter__(self) -> Loop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, Any]]:
    if PG_BIN is None or _pg_user() == "missing":
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl), or root without runuser and a postgres user")
    user = _pg_user()
    prefix = ["runuser", "-u", user, "--"] if user else []
    base = tempfile.mkdtemp(prefix="mlstack-admin-pg-")
    data, log = os.path.join(base, "data"), os.path.join(base, "log")
    admin = secrets.token_urlsafe(24)
    Path(base, "pw").write_text(admin + "\n")
    if user:
        shutil.chown(base, user)
        shutil.chown(os.path.join(base, "pw"), user)
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    run(f"{PG_BIN}/initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={base}/pw")
    os.unlink(os.path.join(base, "pw"))
    # log_statement=ddl: every ALTER ROLE is in the log, to prove it carries no plain text.
    run(f"{PG_BIN}/pg_ctl", "-D", data, "-l", log, "-w", "start",
        "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c log_statement=ddl")
    try:
        yield {"port": port, "admin": admin, "log": log}
    finally:
        run(f"{PG_BIN}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _pg(port: int, user: str, password: str, dbname: str) -> Any:
    return pg.pg_connect("127.0.0.1", port, user, password, dbname, 5)


def test_postgres_superuser_rotation_fails_no_connection(postgres: dict[str, Any]) -> None:
    port, former = postgres["port"], postgres["admin"]
    new = secrets.token_urlsafe(30)
    chat = pg.Service("chat", secrets.token_urlsafe(24), "chat")
    # The stack as phase5 leaves it: the service's role and database.
    assert prov.provision("127.0.0.1", port, "postgres", former, "postgres", [chat])["changed"] is True
    held = _pg(port, "postgres", former, "postgres")  # an admin session open across the rotation

    def service_connects() -> None:
        conn = _pg(port, chat.name, chat.password, chat.database)
        try:
            conn.execute("SELECT 1").fetchone()
        finally:
            conn.close()

    with Loop(service_connects) as loop:
        time.sleep(0.3)
        planned = prov.provision("127.0.0.1", port, "postgres", new, "postgres", [chat], check_mode=True,
                                 admin_password_previous=former)
        _pg(port, "postgres", former, "postgres").close()  # check mode changed nothing
        rotated = prov.provision("127.0.0.1", port, "postgres", new, "postgres", [chat],
                                 admin_password_previous=former)
        # Interrupted before the former password was dropped: the re-run finds it done.
        again = prov.provision("127.0.0.1", port, "postgres", new, "postgres", [chat],
                               admin_password_previous=former)
        # After the rotation, phase5 with the new password only.
        later = prov.provision("127.0.0.1", port, "postgres", new, "postgres", [chat])
        time.sleep(0.3)
    print(f"postgres superuser rotation: {loop.ok} service connections ok / {len(loop.failures)} failed")
    change = "set password of admin role postgres (was scram-sha-256, differs)"
    assert planned["changes"] == rotated["changes"] == [change]
    assert again["changed"] is False and later["changed"] is False
    assert loop.failures == [] and loop.ok > 20
    assert held.execute("SELECT 1").fetchone() == (1,), "an open admin session is not cut"
    held.close()
    with pytest.raises(Exception) as refused:
        _pg(port, "postgres", former, "postgres")
    assert pg.is_auth_failure(refused.value)
    _pg(port, "postgres", new, "postgres").close()
    log = Path(postgres["log"]).read_text(errors="replace")
    assert "ALTER ROLE" in log and "SCRAM-SHA-256$" in log, "log_statement=ddl logged the change"
    assert new not in log and former not in log, "no plain text password reached the server's log"


# --- Redis ------------------------------------------------------------------------------------


def _render_acl(admin: str, healthcheck: str, clients: dict[str, str], previous: dict[str, str]) -> str:
    """roles/redis/templates/users.acl.j2, with the variables the role gives it."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["hash"] = lambda value, algorithm: hashlib.new(algorithm, str(value).encode()).hexdigest()
    env.filters["aiops.mlstack.redis_acl_rules"] = redis_acl_rules
    template = env.from_string((ROOT / "roles/redis/templates/users.acl.j2").read_text())
    return template.render(
        redis_admin_user="admin",
        secrets_values={"admin": admin, "healthcheck": healthcheck, **clients},
        secrets_previous=previous,
        redis_clients=[{"name": name, "prefix": f"{name}:"} for name in clients],
    )


def test_redis_admin_holds_two_passwords_during_the_rotation(tmp_path: Path) -> None:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on PATH")
    import redis

    former, new = secrets.token_urlsafe(30), secrets.token_urlsafe(30)
    healthcheck, chat = secrets.token_urlsafe(30), secrets.token_urlsafe(30)
    acl = tmp_path / "users.acl"
    acl.write_text(_render_acl(former, healthcheck, {"chat": chat}, {}))
    port = _free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--aclfile", str(acl)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def login(password: str) -> Any:
        return redis.Redis(host="127.0.0.1", port=port, username="admin", password=password, socket_timeout=5)

    # What the operator's probes (redis_check) use: the admin's password on the controller now.
    on_file = {"admin": former}

    def admin_connects() -> None:
        client = login(on_file["admin"])
        try:
            assert client.ping() is True
        finally:
            client.close()

    def acl_load(values: dict[str, str], previous: dict[str, str]) -> None:
        """The role's ACL LOAD: as the admin, with the former password while it is on file."""
        client = login(previous.get("admin", values["admin"]))
        try:
            assert client.execute_command("ACL", "LOAD") in (b"OK", "OK", True)
        finally:
            client.close()

    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                login(former).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        with Loop(admin_connects) as loop:
            time.sleep(0.2)
            # Stage 1 (begin): the new password beside the former one, loaded live.
            acl.write_text(_render_acl(new, healthcheck, {"chat": chat}, {"admin": former}))
            acl_load({"admin": new}, {"admin": former})
            time.sleep(0.2)
            # A re-run of the stage (interrupted after the load): the same login works.
            acl_load({"admin": new}, {"admin": former})
            on_file["admin"] = new  # from here the controller's probes use the new password
            time.sleep(0.2)
            # Stage 3 (end): the former one dropped; the role logs in with the new one.
            acl.write_text(_render_acl(new, healthcheck, {"chat": chat}, {}))
            acl_load({"admin": new}, {})
            time.sleep(0.2)
        print(f"redis admin rotation: {loop.ok} admin logins ok / {len(loop.failures)} failed")
        assert loop.failures == [] and loop.ok > 20
        with pytest.raises(redis.AuthenticationError):
            login(former).ping()
        assert login(new).ping() is True
        assert former not in acl.read_text() and new not in acl.read_text(), "only hashes in the ACL file"
    finally:
        proc.terminate()
        proc.wait(10)


# --- Neo4j ------------------------------------------------------------------------------------

NEO4J_URI = os.environ.get("MLSTACK_TEST_NEO4J_URI", "")
NEO4J_PASSWORD_FILE = os.environ.get("MLSTACK_TEST_NEO4J_PASSWORD_FILE", "")


@pytest.mark.skipif(not (NEO4J_URI and NEO4J_PASSWORD_FILE),
                    reason="no Neo4j server: set MLSTACK_TEST_NEO4J_URI and MLSTACK_TEST_NEO4J_PASSWORD_FILE")
def test_neo4j_password_changes_live_and_a_logged_in_driver_keeps_working() -> None:
    """neo4j_password's core against a real server; the server gets its former password back."""
    import neo4j

    from ansible_collections.aiops.mlstack.plugins.module_utils import _neo4j

    former = Path(NEO4J_PASSWORD_FILE).read_text().rstrip("\r\n")
    new = secrets.token_urlsafe(30)
    held = neo4j.GraphDatabase.driver(NEO4J_URI, auth=("neo4j", former))  # memory's pooled connection

    def held_query() -> None:
        assert held.execute_query("RETURN 1 AS one").records[0]["one"] == 1

    try:
        with Loop(held_query) as loop:
            time.sleep(0.3)
            planned = _neo4j.set_password(NEO4J_URI, "neo4j", new, former, 5.0, check_mode=True)
            applied = _neo4j.set_password(NEO4J_URI, "neo4j", new, former, 5.0)
            again = _neo4j.set_password(NEO4J_URI, "neo4j", new, former, 5.0)
            time.sleep(0.3)
        print(f"neo4j password change: {loop.ok} queries on a logged-in driver ok / {len(loop.failures)} failed")
        assert planned["changed"] is True and applied["changed"] is True and again["changed"] is False
        assert loop.failures == [] and loop.ok > 5
        with pytest.raises(neo4j.exceptions.AuthError), neo4j.GraphDatabase.driver(
                NEO4J_URI, auth=("neo4j", former)) as refused:
            refused.verify_connectivity()
        with neo4j.GraphDatabase.driver(NEO4J_URI, auth=("neo4j", new)) as accepted:
            accepted.verify_connectivity()
    finally:
        held.close()
        # Back to the former password (after the once-refused login above: no lock).
        _neo4j.set_password(NEO4J_URI, "neo4j", former, new, 5.0)
