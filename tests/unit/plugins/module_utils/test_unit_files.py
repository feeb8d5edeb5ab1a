"""A unit's directories and files as aiops.mlstack.unit_reconcile writes them in-process.

Real files in a temporary directory, owned by the test's own uid: created, left alone when
right (no change reported, nothing rewritten), corrected when content, mode or owner drift,
check mode writes nothing, a secret's content never appears in the diff, bad input names its field.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _unit_files as files
from ansible_collections.aiops.mlstack.plugins.plugin_utils._secrets import (
    SecretError,
    file_content,
    rotate,
    unit_secret_files,
)

UID, GID = os.getuid(), os.getgid()


def wants(root: Path, password: str = "s3cret-value-of-forty-characters-xxxxxx") -> list[files.Want]:
    return files.wants_of(
        [{"path": f"{root}/run", "owner": UID, "mode": "0755"},
         {"path": f"{root}/run/secrets", "owner": UID, "group": GID, "mode": "0700"}],
        [{"path": f"{root}/run/secrets/redis_password", "owner": UID, "content": password, "secret": True},
         {"path": f"{root}/run/secrets/jwt_public.pem", "owner": UID, "content": "PEM\n", "mode": "0444"}])


def test_a_fresh_unit_gets_its_directories_and_files(tmp_path: Path) -> None:
    changes = files.apply_local(wants(tmp_path), check_mode=False)
    assert [c.what for c in changes] == [("created",)] * 4
    secret = tmp_path / "run/secrets/redis_password"
    assert secret.read_text() == "s3cret-value-of-forty-characters-xxxxxx"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o400
    assert stat.S_IMODE((tmp_path / "run/secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "run/secrets/jwt_public.pem").stat().st_mode) == 0o444


def test_missing_parents_of_a_directory_are_made(tmp_path: Path) -> None:
    # A fresh Docker host has no runtime root yet: the unit's directory's parents come first.
    root = tmp_path / "var/lib/mlstack/runtime"
    changes = files.apply_local(wants(root), check_mode=False)
    assert [c.what for c in changes] == [("created",)] * 4
    assert (root / "run/secrets/jwt_public.pem").read_text() == "PEM\n"


def test_a_second_run_changes_nothing_and_rewrites_nothing(tmp_path: Path) -> None:
    files.apply_local(wants(tmp_path), check_mode=False)
    before = (tmp_path / "run/secrets/redis_password").stat().st_ino
    assert files.apply_local(wants(tmp_path), check_mode=False) == []
    assert (tmp_path / "run/secrets/redis_password").stat().st_ino == before


def test_drift_is_corrected_and_named(tmp_path: Path) -> None:
    files.apply_local(wants(tmp_path), check_mode=False)
    (tmp_path / "run/secrets/jwt_public.pem").chmod(0o644)
    changes = files.apply_local(wants(tmp_path, password="a-rotated-password-of-forty-characters-x"), False)
    assert {c.path.rsplit("/", 1)[1]: c.what for c in changes} == {
        "redis_password": ("content",), "jwt_public.pem": ("mode 0644 -> 0444",)}
    assert (tmp_path / "run/secrets/redis_password").read_text() == "a-rotated-password-of-forty-characters-x"
    assert stat.S_IMODE((tmp_path / "run/secrets/jwt_public.pem").stat().st_mode) == 0o444


def test_check_mode_reports_and_writes_nothing(tmp_path: Path) -> None:
    changes = files.apply_local(wants(tmp_path), check_mode=True)
    assert len(changes) == 4
    assert not (tmp_path / "run").exists()


def test_a_secret_never_appears_in_the_diff(tmp_path: Path) -> None:
    files.apply_local(wants(tmp_path), check_mode=False)
    changes = files.apply_local(wants(tmp_path, password="another-password-of-forty-characters-xxx"), False)
    shown = repr(files.diff_of(changes))
    assert "another-password" not in shown and "s3cret" not in shown
    assert files.HIDDEN in shown


def test_a_public_file_shows_its_content_in_the_diff(tmp_path: Path) -> None:
    diff = files.diff_of(files.apply_local(wants(tmp_path), check_mode=True))
    assert {"before_header": f"{tmp_path}/run/secrets/jwt_public.pem (created)",
            "after_header": f"{tmp_path}/run/secrets/jwt_public.pem", "before": "",
            "after": f"# mode 0444, owner {os.getuid()}:{os.getgid()}\nPEM\n"} in diff


def test_a_mode_change_alone_shows_in_the_diff_text(tmp_path: Path) -> None:
    files.apply_local(wants(tmp_path), check_mode=False)
    secret = tmp_path / "run/secrets/redis_password"
    secret.chmod(0o600)
    [change] = files.apply_local(wants(tmp_path), check_mode=False)
    [entry] = files.diff_of([change])
    # Ansible prints a diff entry only where before and after differ as text.
    assert entry["before"] != entry["after"]
    assert "mode 0600" in entry["before"] and "mode 0400" in entry["after"]
    assert stat.S_IMODE(secret.stat().st_mode) == 0o400


@pytest.mark.parametrize(("entry", "field"), [
    ({"path": "relative/x", "owner": 1}, "path='relative/x' must be an absolute path"),
    ({"path": "/x", "owner": "root"}, "owner='root' must be a numeric id"),
    ({"path": "/x", "owner": 1, "mode": "rw"}, "mode='rw' is not an octal mode"),
])
def test_bad_input_names_its_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(files.FilesError, match=rf"files\[0\]: {field}"):
        files.wants_of([], [entry])


def test_a_directory_where_a_file_belongs_is_refused_before_anything_changes(tmp_path: Path) -> None:
    (tmp_path / "run/secrets/redis_password").mkdir(parents=True)
    with pytest.raises(files.FilesError, match="is a directory: remove it"):
        files.apply_local(wants(tmp_path), check_mode=False)


def test_the_remote_arguments_keep_a_secrets_content_apart_and_come_back_whole(tmp_path: Path) -> None:
    args = files.as_args(wants(tmp_path))
    # Only the no_log option holds the secret: the target's log of the invocation never sees it.
    assert "s3cret" not in repr(args["wants"])
    password = "s3cret-value-of-forty-characters-xxxxxx"
    assert args["secret_contents"] == {f"{tmp_path}/run/secrets/redis_password": password}
    assert files.from_args(args["wants"], args["secret_contents"]) == wants(tmp_path)


def test_a_secret_without_its_content_is_refused(tmp_path: Path) -> None:
    args = files.as_args(wants(tmp_path))
    with pytest.raises(files.FilesError, match="redis_password: secret file without its content"):
        files.from_args(args["wants"], {})


def test_the_unit_files_module_writes_them_on_its_host_without_showing_the_secret(tmp_path: Path) -> None:
    """The module as the remote path runs it (ansible localhost -m, a module start of its own)."""
    root = Path(__file__).resolve().parents[4]
    args = json.dumps(files.as_args(wants(tmp_path)))
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(root / ".ansible" / "collections")
    command = [str(Path(sys.executable).parent / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-o",
               "-e", f"ansible_python_interpreter={sys.executable}", "-m", "aiops.mlstack.unit_files",
               "-a", args, "--diff", "-vvv"]  # -vvv: the invocation too
    first = subprocess.run(command, capture_output=True, text=True, env=env, cwd="/", check=False, timeout=120)
    assert first.returncode == 0 and "CHANGED" in first.stdout, first.stdout + first.stderr
    assert "s3cret" not in first.stdout + first.stderr
    assert files.HIDDEN in first.stdout  # the secret's diff, hidden
    assert (tmp_path / "run/secrets/redis_password").read_text() == "s3cret-value-of-forty-characters-xxxxxx"
    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd="/", check=False, timeout=120)
    assert again.returncode == 0 and "SUCCESS" in again.stdout and '"changed": false' in again.stdout, again.stdout


def test_secret_files_are_generated_once_and_hold_both_values_while_rotating(tmp_path: Path) -> None:
    entries = {"redis_password": ["redis", "chat"], "neo4j_password": ["neo4j", "neo4j"]}
    first = unit_secret_files(tmp_path, entries, ["neo4j_password"])
    assert first == unit_secret_files(tmp_path, entries, ["neo4j_password"]), "generated once"
    new = rotate(tmp_path, "neo4j", "neo4j")
    rotating = unit_secret_files(tmp_path, entries, ["neo4j_password"])
    assert rotating["neo4j_password"] == f"{first['neo4j_password']}\n{new}"
    assert rotating["redis_password"] == first["redis_password"]


def test_only_a_rotation_file_holds_the_former_value() -> None:
    assert file_content("new", "old", rotating=True) == "old\nnew"
    assert file_content("new", "old", rotating=False) == "new"
    assert file_content("same", "same", rotating=True) == "same"


def test_a_prefixed_secret_file_holds_the_prefix_then_the_value(tmp_path: Path) -> None:
    contents = unit_secret_files(tmp_path, {"neo4j_auth": ["neo4j", "neo4j", "neo4j/"]}, [])
    value = (tmp_path / "neo4j" / "neo4j").read_text(encoding="utf-8").strip()
    assert contents == {"neo4j_auth": f"neo4j/{value}"}


def test_a_malformed_secret_entry_names_its_file() -> None:
    with pytest.raises(SecretError, match=r"secret_files.entries.x: \['neo4j'\] must be \[unit, name\]"):
        unit_secret_files(Path("/nonexistent"), {"x": ["neo4j"]}, [])


def test_only_directories_no_container_mounts_and_not_kept_are_pruned(tmp_path: Path) -> None:
    for name in ("config-a", "config-b", "config-c", "config-d", "acl"):
        (tmp_path / name).mkdir()
    (tmp_path / "config-file").write_text("not a directory")
    found = files.local_dirs(str(tmp_path), "config-*")
    assert found == [str(tmp_path / f"config-{x}") for x in "abcd"]
    doomed = files.stale(found, mounted=[f"{tmp_path}/config-a", "/var/lib/docker/volumes/x/_data"],
                         keep=[f"{tmp_path}/config-c/"])
    assert doomed == [str(tmp_path / "config-b"), str(tmp_path / "config-d")]
