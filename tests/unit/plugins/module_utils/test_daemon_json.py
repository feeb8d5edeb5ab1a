"""Unit tests for the daemon.json merge, diff, load/dump and the -H clash check."""

from __future__ import annotations

import json

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils._daemon_json import (
    diff_keys,
    dump,
    effective_exec_start,
    hosts_conflict,
    load,
    merge,
    plan,
)

NVIDIA = {"path": "nvidia-container-runtime", "runtimeArgs": []}


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        pytest.param({}, {}, {}, id="empty-into-empty"),
        pytest.param({"debug": True}, {}, {"debug": True}, id="empty-desired-keeps-all"),
        pytest.param(
            {"data-root": "/srv/docker", "dns": ["1.1.1.1"]},
            {"log-driver": "json-file"},
            {"data-root": "/srv/docker", "dns": ["1.1.1.1"], "log-driver": "json-file"},
            id="unknown-keys-kept",
        ),
        pytest.param(
            {"runtimes": {"crun": {"path": "/usr/bin/crun"}}},
            {"runtimes": {"nvidia": NVIDIA}},
            {"runtimes": {"crun": {"path": "/usr/bin/crun"}, "nvidia": NVIDIA}},
            id="runtimes-merge-keeps-other-runtime",
        ),
        pytest.param(
            {"runtimes": {"nvidia": {"path": "old", "runtimeArgs": ["--debug"], "custom": 1}}},
            {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}},
            {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": ["--debug"], "custom": 1}}},
            id="nested-runtime-entry-merged",
        ),
        pytest.param(
            {"insecure-registries": ["a:5000", "b:5000"], "dns": ["8.8.8.8"]},
            {"insecure-registries": ["c:5000"]},
            {"insecure-registries": ["c:5000"], "dns": ["8.8.8.8"]},
            id="list-named-is-replaced-other-list-kept",
        ),
        pytest.param(
            {"log-opts": {"max-size": "10m", "max-file": "3"}},
            {"log-opts": {"max-size": "50m"}},
            {"log-opts": {"max-size": "50m", "max-file": "3"}},
            id="log-opts-merged",
        ),
        pytest.param(
            {"features": "x"}, {"features": {"buildkit": True}}, {"features": {"buildkit": True}}, id="scalar-to-dict"
        ),
        pytest.param({"features": {"buildkit": True}}, {"features": None}, {"features": None}, id="dict-to-null"),
    ],
)
def test_merge(current: dict, desired: dict, expected: dict) -> None:
    snapshot = json.dumps(current, sort_keys=True)
    assert merge(current, desired) == expected
    assert json.dumps(current, sort_keys=True) == snapshot, "merge must not modify its input"


def test_merge_result_does_not_share_nested_objects() -> None:
    desired = {"runtimes": {"nvidia": {"runtimeArgs": []}}}
    result = merge({}, desired)
    result["runtimes"]["nvidia"]["runtimeArgs"].append("x")
    assert desired == {"runtimes": {"nvidia": {"runtimeArgs": []}}}


def test_merge_rejects_non_dicts() -> None:
    with pytest.raises(TypeError):
        merge([], {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param({}, {}, [], id="nothing"),
        pytest.param({"a": 1}, {"a": 1}, [], id="same"),
        pytest.param({"a": 1}, {"a": 2}, ["a"], id="scalar-changed"),
        pytest.param({}, {"a": {"b": 1}}, ["a"], id="added-dict"),
        pytest.param({"a": 1}, {}, ["a"], id="removed"),
        pytest.param(
            {"runtimes": {"crun": {"path": "x"}}},
            {"runtimes": {"crun": {"path": "x"}, "nvidia": NVIDIA}},
            ["runtimes.nvidia"],
            id="nested-added",
        ),
        pytest.param(
            {"log-opts": {"max-size": "10m", "max-file": "3"}},
            {"log-opts": {"max-size": "50m", "max-file": "5"}},
            ["log-opts.max-file", "log-opts.max-size"],
            id="nested-changed-sorted",
        ),
        pytest.param({"dns": ["a", "b"]}, {"dns": ["b", "a"]}, ["dns"], id="list-order-counts"),
        pytest.param({"debug": 1}, {"debug": True}, ["debug"], id="bool-is-not-int"),
    ],
)
def test_diff_keys(before: dict, after: dict, expected: list) -> None:
    assert diff_keys(before, after) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", {}, id="empty-file"),
        pytest.param("  \n", {}, id="blank-file"),
        pytest.param("{}", {}, id="empty-object"),
        pytest.param(
            '{"debug": true, "runtimes": {"nvidia": {"path": "p"}}}',
            {"debug": True, "runtimes": {"nvidia": {"path": "p"}}},
            id="object",
        ),
    ],
)
def test_load_valid(text: str, expected: dict) -> None:
    assert load(text, "/etc/docker/daemon.json") == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param('{"debug": true,}', "line 1 column 16", id="trailing-comma"),
        pytest.param('{\n  "debug": tru\n}', "line 2 column 12", id="bad-literal"),
        pytest.param("{'debug': true}", "Expecting property name enclosed in double quotes", id="single-quotes"),
        pytest.param('["hosts"]', "must hold a JSON object, found list", id="not-an-object"),
        pytest.param("42", "must hold a JSON object, found int", id="number"),
    ],
)
def test_load_invalid_names_file_and_error(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="refusing to overwrite") as info:
        load(text, "/srv/etc/daemon.json")
    message = str(info.value)
    assert message.startswith("/srv/etc/daemon.json ")
    assert fragment in message


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param({}, "{}\n", id="empty"),
        pytest.param({"b": 1, "a": True}, '{\n  "a": true,\n  "b": 1\n}\n', id="sorted"),
        pytest.param(
            {"runtimes": {"z": {}, "nvidia": {"runtimeArgs": [], "path": "p"}}},
            '{\n  "runtimes": {\n    "nvidia": {\n      "path": "p",\n      "runtimeArgs": []\n    },\n'
            '    "z": {}\n  }\n}\n',
            id="nested-sorted-indent-2",
        ),
    ],
)
def test_dump_is_stable(obj: dict, expected: str) -> None:
    assert dump(obj) == expected
    assert dump(json.loads(dump(obj))) == expected


def test_plan_missing_file_and_empty_settings_writes_nothing() -> None:
    result = plan(None, {})
    assert result["changed"] is False
    assert result["write"] is None
    assert result["before"] == "" and result["after"] == ""


def test_plan_missing_file_with_settings_creates_it() -> None:
    result = plan(None, {"debug": True})
    assert result["changed"] is True
    assert result["write"] == '{\n  "debug": true\n}\n'
    assert result["changed_keys"] == ["debug"]


def test_plan_same_content_other_format_is_unchanged() -> None:
    text = '{"runtimes":{"nvidia":{"path":"p"}},   "debug": true}'
    result = plan(text, {"debug": True, "runtimes": {"nvidia": {"path": "p"}}})
    assert result["changed"] is False
    assert result["write"] is None
    assert result["after"] == text


def test_plan_change_keeps_foreign_keys_and_reports_them_unchanged() -> None:
    text = '{"data-root": "/srv/docker", "runtimes": {"crun": {"path": "/usr/bin/crun"}}}'
    result = plan(text, {"runtimes": {"nvidia": NVIDIA}})
    assert result["changed"] is True
    assert result["changed_keys"] == ["runtimes.nvidia"]
    written = json.loads(result["write"])
    assert written["data-root"] == "/srv/docker"
    assert written["runtimes"]["crun"] == {"path": "/usr/bin/crun"}
    assert result["before"] == text


def test_plan_invalid_file_raises() -> None:
    with pytest.raises(ValueError, match="/x/daemon.json is not valid JSON"):
        plan("{nope", {"debug": True}, "/x/daemon.json")


DEBIAN_UNIT = """[Service]
Type=notify
# ExecStart=/usr/sbin/dockerd --host=tcp://commented.out
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS
ExecReload=/bin/kill -s HUP $MAINPID
"""
RESET_OVERRIDE = """[Service]
ExecStart=
ExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock
"""
HOST_OVERRIDE = """[Service]
ExecStart=
ExecStart=/usr/bin/dockerd \\
    --host=tcp://0.0.0.0:2376 \\
    --tlsverify
"""
GLUED_OVERRIDE = """[Service]
ExecStart=
ExecStart=/usr/bin/dockerd -Hunix:///run/d.sock
"""


@pytest.mark.parametrize(
    ("daemon_json", "units", "flag"),
    [
        pytest.param({"hosts": ["unix:///var/run/docker.sock"]}, [DEBIAN_UNIT], "'-H fd://'", id="debian-unit"),
        pytest.param({"hosts": []}, [DEBIAN_UNIT], "'-H fd://'", id="empty-hosts-still-clashes"),
        pytest.param(
            {"hosts": ["tcp://x"]}, [DEBIAN_UNIT, HOST_OVERRIDE], "'--host=tcp://0.0.0.0:2376'", id="continued-override"
        ),
        pytest.param({"hosts": ["tcp://x"]}, [GLUED_OVERRIDE], "'-Hunix:///run/d.sock'", id="glued-flag"),
    ],
)
def test_hosts_conflict_detected(daemon_json: dict, units: list, flag: str) -> None:
    message = hosts_conflict(daemon_json, units)
    assert message is not None
    assert flag in message
    assert "daemon.json sets 'hosts'" in message
    assert "ExecStart=" in message


@pytest.mark.parametrize(
    ("daemon_json", "units"),
    [
        pytest.param({"debug": True}, [DEBIAN_UNIT], id="no-hosts-key"),
        pytest.param({"hosts": ["unix:///var/run/docker.sock"]}, [], id="no-units"),
        pytest.param({"hosts": ["unix:///var/run/docker.sock"]}, [DEBIAN_UNIT, RESET_OVERRIDE], id="override-resets"),
        pytest.param({"hosts": ["tcp://x"]}, ["[Service]\nExecStartPre=/bin/true -H x\n"], id="not-execstart"),
    ],
)
def test_hosts_conflict_absent(daemon_json: dict, units: list) -> None:
    assert hosts_conflict(daemon_json, units) is None


def test_effective_exec_start_follows_resets_and_continuations() -> None:
    assert effective_exec_start([DEBIAN_UNIT, HOST_OVERRIDE]) == [
        "/usr/bin/dockerd --host=tcp://0.0.0.0:2376 --tlsverify",
    ]
    assert effective_exec_start([DEBIAN_UNIT, RESET_OVERRIDE]) == [
        "/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock",
    ]
