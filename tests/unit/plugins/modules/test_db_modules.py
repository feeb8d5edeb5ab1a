# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis_check, postgres_check and postgres_provision modules' glue, run in-process
against the fakes of the module_utils tests (patched in at the connect seam)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aiops.mlstack.plugins.module_utils import _postgres_checks, _postgres_provision, _redis_checks
from ansible_collections.aiops.mlstack.plugins.modules import postgres_check, postgres_provision, redis_check


def _load(name: str) -> ModuleType:
    """The fakes live beside the module_utils tests; load that file by path."""
    path = Path(__file__).resolve().parents[1] / "module_utils" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_mlstack_fakes_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


redis_fakes = _load("test_redis")
pg_fakes = _load("test_postgres")


def _run(module: ModuleType, args: dict, capsys: pytest.CaptureFixture[str]) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def redis_server(monkeypatch: pytest.MonkeyPatch) -> object:
    server = redis_fakes.FakeRedisServer()
    monkeypatch.setattr(_redis_checks, "redis_connect", server.connect)
    return server


@pytest.fixture
def pg_server(monkeypatch: pytest.MonkeyPatch) -> object:
    server = pg_fakes.FakePostgres()
    # the seam each job calls, provisioning and checks
    monkeypatch.setattr(_postgres_provision, "pg_connect", server.connect)
    monkeypatch.setattr(_postgres_checks, "pg_connect", server.connect)
    return server


REDIS_ARGS = {
    "unit": "redis",
    "host": "10.0.0.9",
    "admin_password": redis_fakes.ADMIN_PW,
    "users": [
        {"name": "chat", "password": redis_fakes.CHAT_PW, "prefix": "chat:", "redis_acl": ["get", "blpop"]},
        {"name": "voice", "password": redis_fakes.VOICE_PW},
    ],
}


def test_redis_check_returns_evidence(redis_server: object, capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(redis_check, REDIS_ARGS, capsys)
    assert result["changed"] is False
    assert result["ok"] is True
    assert result["msg"] == "redis: 10 of 10 checks ok"
    assert len(result["evidence"]) == 10
    assert {r["unit"] for r in result["evidence"]} == {"redis"}
    assert by_user(result["evidence"], "risky_commands_denied", "chat")["observed"]["must_deny"] == ["script", "pubsub"]
    assert by_user(result["evidence"], "foreign_prefix_denied", "voice")["observed"]["foreign_prefix"] == "chat:"
    text = json.dumps(result)
    assert redis_fakes.ADMIN_PW not in text and redis_fakes.CHAT_PW not in text


def test_redis_check_runs_in_check_mode(redis_server: object, capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(redis_check, dict(REDIS_ARGS, _ansible_check_mode=True), capsys)
    assert result["ok"] is True and result["changed"] is False


def test_redis_check_fails_with_the_evidence(redis_server: object, capsys: pytest.CaptureFixture[str]) -> None:
    redis_server.aof_enabled = 0
    result = _run(redis_check, REDIS_ARGS, capsys)
    assert result["failed"] is True
    assert result["msg"] == "redis: 1 of 10 checks failed: persistence"
    assert len(result["evidence"]) == 10


def test_redis_check_fail_on_error_false_reports_without_failing(
    redis_server: object, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _run(redis_check, dict(REDIS_ARGS, admin_password="wrong", fail_on_error=False), capsys)
    assert "failed" not in result
    assert result["ok"] is False
    assert result["msg"] == "redis: 2 of 10 checks failed: connect (admin), persistence"


def test_redis_check_names_the_bad_field(redis_server: object, capsys: pytest.CaptureFixture[str]) -> None:
    args = dict(REDIS_ARGS, users=[{"name": "chat", "password": "p"}, {"name": "Voice-1", "password": "q"}])
    result = _run(redis_check, args, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("users[1].name: 'Voice-1' is not a valid user name")
    args = dict(REDIS_ARGS, users=[{"name": "chat", "password": "long-pw", "redis_acl": ["get", "eval"]}])
    result = _run(redis_check, args, capsys)
    assert result["failed"] is True
    assert result["msg"] == ("users[0].redis_acl: unit chat: mlstack_redis_acl: 'eval' is in @scripting, never granted "
                             "to a service user: remove it (scripts and administration belong to the admin user)")


def test_redis_check_without_redis_py(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(redis_check, "HAS_REDIS", False)
    monkeypatch.setattr(redis_check, "REDIS_IMPORT_ERROR", "No module named 'redis'")
    result = _run(redis_check, REDIS_ARGS, capsys)
    assert result["failed"] is True
    assert "Failed to import the required Python library (redis)" in result["msg"]


def by_user(records: list[dict], check: str, user: str) -> dict:
    return next(r for r in records if r["check"] == check and r["observed"].get("user") == user)


PG_CLIENTS = [
    {"name": "chat", "password": pg_fakes.CHAT_PW},
    {"name": "voice", "password": pg_fakes.VOICE_PW, "database": "voice_db"},
]
PG_ADMIN = {"host": "10.0.0.5", "admin_password": pg_fakes.ADMIN_PW}


def test_postgres_provision_check_apply_again_check(pg_server: object, capsys: pytest.CaptureFixture[str]) -> None:
    args = dict(PG_ADMIN, clients=PG_CLIENTS)
    check = _run(postgres_provision, dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert check["changed"] is True and len(check["changes"]) == 8
    assert check["diff"]["before"] == {"roles": [], "databases": []}
    assert "voice_db" not in pg_server.databases

    apply = _run(postgres_provision, args, capsys)
    assert apply["changes"] == check["changes"]
    assert "diff" not in apply, "diff only in diff mode"
    assert pg_server.databases["voice_db"]["owner"] == "voice"

    again = _run(postgres_provision, dict(args, _ansible_diff=True), capsys)
    assert again["changed"] is False and again["changes"] == []
    assert again["diff"]["before"] == again["diff"]["after"]

    check_again = _run(postgres_provision, dict(args, _ansible_check_mode=True), capsys)
    assert check_again["changed"] is False
    text = json.dumps([check, apply, again])
    assert pg_fakes.CHAT_PW not in text and "SCRAM-SHA-256$" not in text


def test_postgres_provision_failure_message(pg_server: object, capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(postgres_provision, dict(PG_ADMIN, admin_password="nope", clients=PG_CLIENTS), capsys)
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("admin postgres could not connect: OperationalError: connection failed:")
    assert 'password authentication failed for user "postgres"' in result["msg"]


def test_postgres_provision_names_the_bad_field(pg_server: object, capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(
        postgres_provision, dict(PG_ADMIN, clients=[{"name": "chat", "password": "p", "database": "a b"}]), capsys
    )
    assert result["failed"] is True
    assert result["msg"].startswith("clients[0].database: 'a b' is not a valid name")


def test_postgres_check_after_provision(pg_server: object, capsys: pytest.CaptureFixture[str]) -> None:
    _run(postgres_provision, dict(PG_ADMIN, clients=PG_CLIENTS), capsys)
    result = _run(postgres_check, dict(PG_ADMIN, unit="postgresql", users=PG_CLIENTS), capsys)
    assert result["ok"] is True, result["msg"]
    assert result["msg"] == "postgresql: 10 of 10 checks ok"
    assert by_user(result["evidence"], "foreign_database_denied", "chat")["observed"]["foreign_database"] == "voice_db"


def test_postgres_check_fails_with_the_evidence(pg_server: object, capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(postgres_check, dict(PG_ADMIN, unit="postgresql", users=PG_CLIENTS), capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("postgresql: 6 of 10 checks failed: own_database_access (chat)")
    assert len(result["evidence"]) == 10


def test_postgres_check_without_psycopg(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(postgres_check, "HAS_PSYCOPG", False)
    result = _run(postgres_check, dict(PG_ADMIN, unit="postgresql"), capsys)
    assert result["failed"] is True
    assert "Failed to import the required Python library (psycopg)" in result["msg"]
