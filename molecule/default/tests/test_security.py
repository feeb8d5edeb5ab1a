"""Security against the running stack: JWT key and password rotation with requests in flight.

The rotation (playbooks/rotate_jwt.yml: stage, publish, promote, publish) runs while two
request loops keep calling the critical units: one mints a fresh token for every request
with whatever key signs at that moment (as operators and services do), the other keeps
using one token minted before the rotation (a client holding a token). Both must see no
failure. Tokens are minted with the stack's key and never printed. Neither rotation may
restart a critical unit's container: no failed request is not enough, no downtime is.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import redis
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[3]
CRITICAL = ("mlstack-redis", "mlstack-postgresql", "mlstack-llm", "mlstack-voice-interaction", "mlstack-chat")
SECRETS = Path(os.environ.get("MLSTACK_SECRETS_DIR", Path.home() / ".local/share/mlstack/secrets"))
VOICE = "http://127.0.0.1:8006"
CHAT = "http://127.0.0.1:8007"


def started(names: tuple[str, ...] = CRITICAL) -> dict[str, str]:
    """Each named container's id and start time, as Docker reports them (the critical ones by default)."""
    out = subprocess.run(["docker", "inspect", "--format", "{{.Name}} {{.Id}} {{.State.StartedAt}}", *names],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return {line.split()[0].lstrip("/"): " ".join(line.split()[1:]) for line in out.splitlines()}


def backend_address(container: str) -> str:
    """A container's address on the backend network, which this host reaches."""
    return subprocess.run(["docker", "inspect", "--format",
                           "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container],
                          capture_output=True, text=True, timeout=30, check=True).stdout.split()[0]


def redis_login(user: str, password: str) -> str:
    """What Redis answers a login as ``user`` on its backend address: PONG or the error's class."""
    address = backend_address("mlstack-redis")
    # A secret file ends with a newline; the secret is the line (aiops.mlstack.secret strips it).
    client = redis.Redis(host=address, port=6379, username=user, password=password.strip(), socket_timeout=5)
    try:
        return "PONG" if client.ping() else "no answer"
    except redis.RedisError as exc:
        return type(exc).__name__
    finally:
        client.close()


def postgres_login(user: str, password: str) -> str:
    """What PostgreSQL answers a login as ``user`` to its maintenance database: ok or the error's text."""
    import psycopg

    try:
        with psycopg.connect(host=backend_address("mlstack-postgresql"), port=5432, user=user,
                             password=password.strip(), dbname="postgres", connect_timeout=5,
                             passfile="/dev/null/pgpass") as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.OperationalError as exc:
        return "refused" if "password authentication failed" in str(exc) else type(exc).__name__
    return "ok"


def neo4j_login(password: str) -> str:
    """What Neo4j answers a Bolt login as ``neo4j``: ok or the error's class."""
    import neo4j

    try:
        with neo4j.GraphDatabase.driver(f"bolt://{backend_address('mlstack-neo4j')}:7687",
                                        auth=("neo4j", password.strip()), connection_timeout=5) as driver:
            driver.verify_connectivity()
    except neo4j.exceptions.Neo4jError as exc:
        return type(exc).__name__
    except neo4j.exceptions.DriverError as exc:
        return type(exc).__name__
    return "ok"


def current_key() -> tuple[Any, str]:
    """The signing key as it is right now, and its kid (what aiops.mlstack.jwt_token would use)."""
    private = serialization.load_pem_private_key((SECRETS / "jwt" / "signing.pem").read_bytes(), password=None)
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, hashlib.sha256(der).hexdigest()[:16]


def token(audience: str, scopes: str, key: tuple[Any, str] | None = None, ttl: int = 600) -> str:
    private, kid = key or current_key()
    now = int(time.time())
    claims = {"iss": "mlstack", "sub": "molecule-rotation", "aud": audience, "scope": scopes, "iat": now,
              "exp": now + ttl, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid})


class Loop:
    """Calls voice (GET a session) and chat (a request its validation refuses after auth) until stopped."""

    def __init__(self, session: str, fixed: dict[str, str] | None) -> None:
        self.session, self.fixed = session, fixed
        self.ok = 0
        self.failures: list[str] = []
        self.stop = threading.Event()

    def headers(self, audience: str, scopes: str) -> dict[str, str]:
        if self.fixed is not None:
            return {"Authorization": f"Bearer {self.fixed[audience]}"}
        return {"Authorization": f"Bearer {token(audience, scopes)}"}

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                voice = requests.get(f"{VOICE}/v1/sessions/{self.session}", timeout=5,
                                     headers=self.headers("voice-interaction", "voice:session"))
                # An empty message list passes authentication, then fails validation (422).
                chat = requests.post(f"{CHAT}/v1/chat/completions", json={"messages": []}, timeout=5,
                                     headers=self.headers("chat", "chat:complete"))
                answers = [("voice", voice.status_code, 200), ("chat", chat.status_code, 422)]
            except requests.RequestException as exc:
                answers = [("request", type(exc).__name__, None)]
            for unit, got, want in answers:
                if got == want:
                    self.ok += 1
                else:
                    self.failures.append(f"{unit}: {got}")
            time.sleep(0.05)


def test_jwt_rotation_cuts_off_no_client() -> None:
    created = requests.post(f"{VOICE}/v1/sessions", json={}, timeout=10,
                            headers={"Authorization": f"Bearer {token('voice-interaction', 'voice:session')}"})
    assert created.status_code == 201, created.text
    before = current_key()
    held = {"voice-interaction": token("voice-interaction", "voice:session", before),
            "chat": token("chat", "chat:complete", before)}
    containers = started()
    loops = [Loop(created.json()["id"], None), Loop(created.json()["id"], held)]
    threads = [threading.Thread(target=loop.run, daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    rotation = subprocess.run(["ansible-playbook", "-i", "inventories/local", "playbooks/rotate_jwt.yml"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    time.sleep(1.0)
    for loop in loops:
        loop.stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert rotation.returncode == 0, rotation.stdout[-3000:]
    after = current_key()
    assert after[1] != before[1], "the signing key did not change"
    print(f"rotation: fresh-token loop {loops[0].ok} ok / {len(loops[0].failures)} failed; "
          f"held-token loop {loops[1].ok} ok / {len(loops[1].failures)} failed")
    assert loops[0].ok > 0 and loops[1].ok > 0
    assert loops[0].failures == [], loops[0].failures[:5]
    assert loops[1].failures == [], loops[1].failures[:5]
    assert started() == containers, "a critical container was restarted by the JWT rotation"
    # A token signed by a key the services never got is refused, rotation or not.
    forged = token("voice-interaction", "voice:session", (Ed25519PrivateKey.generate(), after[1]))
    refused = requests.get(f"{VOICE}/v1/sessions/{created.json()['id']}", timeout=5,
                           headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 401


# The admin passwords rotate too: the controller's files of Redis's admin user, the PostgreSQL
# superuser and Neo4j's neo4j user (which memory uses for its graph).
ADMINS = (("redis", "admin"), ("postgresql", "postgres"), ("neo4j", "neo4j"))
# Not critical, but the Neo4j stage must restart neither.
GRAPH = ("mlstack-neo4j", "mlstack-memory")


def test_password_rotation_cuts_off_no_request() -> None:
    """Redis (voice sessions), PostgreSQL (chat's readiness connects as its role) and Neo4j (memory's
    readiness queries its graph) during rotate_passwords.yml, which rotates the admin passwords too."""
    headers = {"Authorization": f"Bearer {token('voice-interaction', 'voice:session')}"}
    created = requests.post(f"{VOICE}/v1/sessions", json={}, timeout=10, headers=headers)
    assert created.status_code == 201, created.text
    memory = f"http://{backend_address('mlstack-memory')}:8001"
    deadline, ready = time.monotonic() + 180, None
    while ready is None or ready.status_code != 200:
        assert time.monotonic() < deadline, f"memory is not ready before the rotation: {getattr(ready, 'text', '')}"
        time.sleep(1)
        try:
            ready = requests.get(f"{memory}/ready", timeout=5)
        except requests.RequestException:
            ready = None
    assert ready.json()["backends"]["graph"].startswith("neo4j"), ready.text
    before = {name: (SECRETS / "redis" / name).read_text() for name in ("voice_interaction", "chat")}
    before_pg = (SECRETS / "postgresql" / "chat").read_text()
    before_admin = {f"{unit}/{name}": (SECRETS / unit / name).read_text() for unit, name in ADMINS}
    ok, failures, stop = [0], [], threading.Event()
    containers = started(CRITICAL + GRAPH)

    def loop() -> None:
        while not stop.is_set():
            try:
                voice = requests.get(f"{VOICE}/v1/sessions/{created.json()['id']}", headers=headers, timeout=5)
                ready = requests.get(f"{CHAT}/ready", timeout=5)
                # memory's /ready runs a Cypher query on Neo4j as the neo4j user.
                graph = requests.get(f"{memory}/ready", timeout=5)
                answers = [("voice session", voice.status_code), ("chat ready", ready.status_code),
                           ("memory ready", graph.status_code)]
            except requests.RequestException as exc:
                answers = [("request", type(exc).__name__)]
            for name, status in answers:
                if status == 200:
                    ok[0] += 1
                else:
                    failures.append(f"{name}: {status}")
            time.sleep(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    rotation = subprocess.run(["ansible-playbook", "-i", "inventories/local", "playbooks/rotate_passwords.yml"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    time.sleep(1.0)
    stop.set()
    thread.join(timeout=10)
    assert rotation.returncode == 0, rotation.stdout[-3000:]
    after = {name: (SECRETS / "redis" / name).read_text() for name in before}
    assert all(after[name] != before[name] for name in before), "the Redis passwords did not change"
    assert (SECRETS / "postgresql" / "chat").read_text() != before_pg, "the PostgreSQL password did not change"
    after_admin = {key: (SECRETS / key).read_text() for key in before_admin}
    unchanged = [key for key in before_admin if after_admin[key] == before_admin[key]]
    assert unchanged == [], f"admin passwords not rotated: {unchanged}"
    assert not list(SECRETS.rglob("*.previous")), "the former passwords were not dropped"
    print(f"password rotation: {ok[0]} ok / {len(failures)} failed")
    assert ok[0] > 0
    assert failures == [], failures[:5]
    # The former password refused, the new one accepted, by each server, for a service and the
    # admins. Compared as one dict of answers: a failed assert shows answers, never a password.
    answers = {
        "redis voice_interaction former": redis_login("voice_interaction", before["voice_interaction"]),
        "redis voice_interaction new": redis_login("voice_interaction", after["voice_interaction"]),
        "redis admin former": redis_login("admin", before_admin["redis/admin"]),
        "redis admin new": redis_login("admin", after_admin["redis/admin"]),
        "postgresql postgres former": postgres_login("postgres", before_admin["postgresql/postgres"]),
        "postgresql postgres new": postgres_login("postgres", after_admin["postgresql/postgres"]),
        "neo4j neo4j former": neo4j_login(before_admin["neo4j/neo4j"]),
        "neo4j neo4j new": neo4j_login(after_admin["neo4j/neo4j"]),
    }
    assert answers == {
        "redis voice_interaction former": "AuthenticationError", "redis voice_interaction new": "PONG",
        "redis admin former": "AuthenticationError", "redis admin new": "PONG",
        "postgresql postgres former": "refused", "postgresql postgres new": "ok",
        "neo4j neo4j former": "AuthError", "neo4j neo4j new": "ok",
    }
    # Redis loads its new ACL file live (ACL LOAD), PostgreSQL and Neo4j change a password live.
    assert started(CRITICAL + GRAPH) == containers, "a container was restarted by the password rotation"


def test_a_deployment_after_the_password_rotation_changes_nothing() -> None:
    """phase5 right after rotate_passwords.yml: changed=0 on every host, no container recreated.

    The rotated admin passwords reach the containers only as files read on an empty volume
    (POSTGRES_PASSWORD_FILE, NEO4J_AUTH_PATH) or as hashes in Redis's live-loaded ACL file, never
    in a spec, so no spec hash changes; the files already hold the new passwords.
    """
    containers = started(CRITICAL + GRAPH)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    # Without the image prune: which recipe images no container uses any more depends on the
    # earlier tests (a recreate=always run frees the images its replaced containers held), not
    # on the rotation, and removing one is a change on the Docker host.
    deploy = subprocess.run(["ansible-playbook", "-i", "inventories/local", "playbooks/phase5.yml",
                             "-e", "mlstack_prune_images=false"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert deploy.returncode == 0, deploy.stdout[-3000:]
    recap = [line for line in deploy.stdout.splitlines() if " ok=" in line and " changed=" in line]
    changed = [line.split()[0] for line in recap if "changed=0" not in line.split()]
    assert recap and changed == [], f"changed after the rotation: {changed}"
    assert started(CRITICAL + GRAPH) == containers, "a container was recreated by the deployment after the rotation"
