# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""config_paths: a component's configuration files as unit_reconcile's directories and files."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aiops.mlstack.plugins.filter.service import config_paths


def test_the_directory_and_each_subdirectory_come_before_the_files() -> None:
    paths = config_paths({"prometheus.yml": "a", "rules/x.yml": "b", "rules/y.yml": "c"}, "/d/config-1", 65534)
    assert [d["path"] for d in paths["directories"]] == ["/d/config-1", "/d/config-1/rules"]
    assert {f["path"]: f["content"] for f in paths["files"]} == {
        "/d/config-1/prometheus.yml": "a", "/d/config-1/rules/x.yml": "b", "/d/config-1/rules/y.yml": "c"}
    assert {(e["owner"], e["mode"]) for e in paths["directories"]} == {(65534, "0500")}
    assert {(e["owner"], e["mode"]) for e in paths["files"]} == {(65534, "0400")}


def test_no_files_no_entries() -> None:
    assert config_paths({}, "/d/config-1", 65534) == {"directories": [], "files": []}


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape.yml", "rules/../../x"])
def test_a_name_outside_the_directory_is_refused(name: str) -> None:
    with pytest.raises(AnsibleFilterError, match="must be relative and stay in /d/config-1"):
        config_paths({name: "x"}, "/d/config-1", 65534)
