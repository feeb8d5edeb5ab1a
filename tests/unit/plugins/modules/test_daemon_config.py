"""The daemon_config and dockerd_start modules' glue, run in-process against temp paths."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aiops.mlstack.plugins.modules import daemon_config, dockerd_start


def _run(module, args: dict, capsys: pytest.CaptureFixture[str]) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def test_creates_missing_dir_and_file_then_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "etc" / "docker" / "daemon.json"
    args = {"path": str(path), "settings": {"log-opts": {"max-size": "10m"}, "debug": True}}

    first = _run(daemon_config, args, capsys)
    assert first["changed"] is True
    assert first["changed_keys"] == ["debug", "log-opts"]
    assert path.read_text() == '{\n  "debug": true,\n  "log-opts": {\n    "max-size": "10m"\n  }\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert "backup_file" not in first, "nothing to back up when the file did not exist"
    assert first["diff"] == {"before": "", "after": path.read_text()}

    second = _run(daemon_config, args, capsys)
    assert second["changed"] is False
    assert second["changed_keys"] == []


def test_keeps_foreign_keys_and_backs_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    original = '{"data-root": "/srv/docker", "runtimes": {"crun": {"path": "/usr/bin/crun"}}}'
    path.write_text(original)
    result = _run(daemon_config, {"path": str(path), "settings": {"runtimes": {"nvidia": {"path": "n"}}}}, capsys)
    assert result["changed"] is True
    assert result["changed_keys"] == ["runtimes.nvidia"]
    written = json.loads(path.read_text())
    assert written == {
        "data-root": "/srv/docker",
        "runtimes": {"crun": {"path": "/usr/bin/crun"}, "nvidia": {"path": "n"}},
    }
    assert Path(result["backup_file"]).read_text() == original


def test_check_mode_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    path.write_text("{}")
    result = _run(daemon_config, {"path": str(path), "settings": {"debug": True}, "_ansible_check_mode": True}, capsys)
    assert result["changed"] is True
    assert result["diff"]["after"] == '{\n  "debug": true\n}\n'
    assert path.read_text() == "{}"
    assert sorted(os.listdir(tmp_path)) == ["daemon.json"]


def test_invalid_file_fails_and_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true,}')
    result = _run(daemon_config, {"path": str(path), "settings": {"debug": False}}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(f"{path} is not valid JSON")
    assert path.read_text() == '{"debug": true,}'


def test_hosts_clash_with_unit_fails_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    unit_dir = tmp_path / "docker.service.d"
    unit_dir.mkdir()
    (tmp_path / "docker.service").write_text("[Service]\nExecStart=/usr/sbin/dockerd -H fd://\n")
    args = {
        "path": str(path),
        "settings": {"hosts": ["unix:///var/run/docker.sock"]},
        "unit_files": [str(tmp_path / "docker.service"), str(unit_dir / "*.conf")],
    }
    result = _run(daemon_config, args, capsys)
    assert result["failed"] is True
    assert "'-H fd://'" in result["msg"]
    assert not path.exists()

    (unit_dir / "override.conf").write_text("[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd\n")
    result = _run(daemon_config, args, capsys)
    assert result["changed"] is True
    assert json.loads(path.read_text()) == {"hosts": ["unix:///var/run/docker.sock"]}


def test_dockerd_start_check_mode_predicts_a_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "daemon.json"
    config.write_text('{"storage-driver": "vfs"}')
    args = {
        "docker_host": f"unix://{tmp_path}/none.sock",
        "storage_driver": "overlay2",
        "config_file": str(config),
        "pidfile": str(tmp_path / "docker.pid"),
        "log_path": str(tmp_path / "dockerd.log"),
        "executable": "/usr/sbin/dockerd",
        "_ansible_check_mode": True,
    }
    result = _run(dockerd_start, args, capsys)
    assert result["changed"] is True
    assert result["action"] == "start"
    # storage-driver comes from daemon.json, so it is not repeated as a flag
    assert result["argv"] == [
        "/usr/sbin/dockerd",
        f"--config-file={config}",
        f"--host=unix://{tmp_path}/none.sock",
        f"--pidfile={tmp_path}/docker.pid",
    ]
    assert not (tmp_path / "dockerd.log").exists()


def test_dockerd_start_refuses_invalid_daemon_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "daemon.json"
    config.write_text("{")
    args = {
        "docker_host": f"unix://{tmp_path}/none.sock",
        "config_file": str(config),
        "pidfile": str(tmp_path / "docker.pid"),
        "executable": "/usr/sbin/dockerd",
        "_ansible_check_mode": True,
    }
    result = _run(dockerd_start, args, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(f"{config} is not valid JSON")


@pytest.mark.parametrize(("answers", "failed"), [(True, False), (False, True)])
def test_dockerd_start_without_dockerd_here_is_fine_while_the_engine_answers(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        answers: bool, failed: bool) -> None:
    # An execution environment reaches the host's engine through its mounted socket: no dockerd in it.
    monkeypatch.setattr(dockerd_start.AnsibleModule, "get_bin_path", lambda *_a, **_k: None)
    monkeypatch.setattr(dockerd_start, "ping", lambda host: answers)
    result = _run(dockerd_start, {"docker_host": f"unix://{tmp_path}/docker.sock", "_ansible_check_mode": True}, capsys)
    assert result.get("failed", False) is failed
    assert result["msg"].startswith("no dockerd executable here") if failed else result["action"] == "none"
