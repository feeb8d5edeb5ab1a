"""Catalog and recipe filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.aiops.mlstack.plugins.filter.catalog import credentials, unit_clients
from ansible_collections.aiops.mlstack.plugins.filter.tree_hash import tree_hash

HOSTVARS = {
    "voice-interaction": {"mlstack_unit_kind": "service", "mlstack_depends_on": ["redis"]},
    "chat": {"mlstack_unit_kind": "service", "mlstack_depends_on": ["redis", "postgresql"]},
    "redis": {"mlstack_unit_kind": "database", "mlstack_depends_on": []},
}


def test_unit_clients_gives_each_service_its_own_identifiers() -> None:
    clients = unit_clients(HOSTVARS, ["voice-interaction", "chat"], "redis")
    assert clients == [
        {"unit": "chat", "name": "chat", "prefix": "chat:", "database": "chat"},
        {"unit": "voice-interaction", "name": "voice_interaction", "prefix": "voice-interaction:",
         "database": "voice_interaction"},
    ]


def test_credentials_add_passwords_and_keep_only_named_fields() -> None:
    clients = unit_clients(HOSTVARS, ["chat"], "postgresql")
    assert credentials(clients, {"chat": "pw"}, ["database"]) == [{"name": "chat", "password": "pw",
                                                                   "database": "chat"}]
    with pytest.raises(ValueError, match="no secret generated for client"):
        credentials(clients, {}, ["database"])


def test_tree_hash_changes_with_content_and_names(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = tree_hash(str(tmp_path))
    assert first == tree_hash(str(tmp_path))
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    second = tree_hash(str(tmp_path))
    (tmp_path / "Dockerfile").rename(tmp_path / "Containerfile")
    assert len({first, second, tree_hash(str(tmp_path))}) == 3


def test_tree_hash_of_missing_recipe_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        tree_hash(str(tmp_path / "nope"))
