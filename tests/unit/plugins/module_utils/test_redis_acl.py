# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A service's Redis permission, derived from its catalog entry (mlstack_redis_acl)."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _redis_acl as acl

DENY = "-@admin -@dangerous -@scripting"


@pytest.mark.parametrize(
    ("value", "rules"),
    [
        (None, f"-@all +@read +@write +@transaction -@blocking -@pubsub +ping +exists {DENY}"),
        ("keyvalue", f"-@all +@read +@write +@transaction -@blocking -@pubsub +ping +exists {DENY}"),
        ("sessions", f"-@all +ping +exists +get +set {DENY}"),
        ("conversations", f"-@all +ping +exists +rpush +ltrim +expire +lrange {DENY}"),
        ("readiness", f"-@all +ping +exists {DENY}"),
        (["PING", " get ", "get"], f"-@all +ping +exists +get {DENY}"),
        # a named blocking / pub/sub command comes after -@blocking/-@pubsub, so it survives them
        (["@read", "blpop", "subscribe"], f"-@all +@read -@blocking -@pubsub +ping +exists +blpop +subscribe {DENY}"),
        (["@list", "@blocking"], f"-@all +@list +@blocking -@pubsub +ping +exists {DENY}"),
        (["@pubsub"], f"-@all +@pubsub -@blocking +ping +exists {DENY}"),
        (["client|setname", "ping"], f"-@all +ping +exists +client|setname {DENY}"),
    ],
)
def test_acl_rules(value: Any, rules: str) -> None:
    assert acl.acl_rules(value) == rules


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("admin", "unit chat: mlstack_redis_acl='admin' is not a profile: use one of ['conversations', 'keyvalue', "
                  "'monitoring', 'readiness', 'sessions']"),
        ("", "unit chat: mlstack_redis_acl='' is not a profile"),
        ([], "unit chat: mlstack_redis_acl must be a profile name or a non-empty list"),
        ({"get": True}, "unit chat: mlstack_redis_acl must be a profile name or a non-empty list"),
        ([1], "unit chat: mlstack_redis_acl: 1 is not a Redis command or @category"),
        (["get key"], "unit chat: mlstack_redis_acl: 'get key' is not a Redis command or @category"),
        (["+get"], "unit chat: mlstack_redis_acl: '+get' is not a Redis command or @category"),
        (["@all"], "unit chat: mlstack_redis_acl: @all is never granted to a service user"),
        (["@scripting"], "unit chat: mlstack_redis_acl: @scripting is never granted"),
        (["@admin"], "unit chat: mlstack_redis_acl: @admin is never granted"),
        (["@dangerous"], "unit chat: mlstack_redis_acl: @dangerous is never granted"),
        (["@strings"], "unit chat: mlstack_redis_acl: @strings is not a Redis 7.0 category"),
        (["gett"], "unit chat: mlstack_redis_acl: 'gett' is not a Redis 7.0 command (Redis would refuse"),
        (["eval"], "unit chat: mlstack_redis_acl: 'eval' is in @scripting, never granted to a service user: remove"),
        (["script"], "unit chat: mlstack_redis_acl: 'script' is in @scripting"),
        (["fcall_ro"], "'fcall_ro' is in @scripting"),
        (["keys"], "'keys' is in @dangerous"),
        (["info"], "'info' is in @dangerous"),
        (["config|set"], "'config|set' is in @admin, @dangerous"),
        # a container command grants every subcommand, client|kill included
        (["client"], "'client' is in @admin, @dangerous"),
        (["flushall"], "'flushall' is in @dangerous"),
    ],
)
def test_permission_errors_name_unit_field_and_fix(value: Any, message: str) -> None:
    errors = acl.permission_errors("chat", value)
    assert any(message in e for e in errors), errors
    with pytest.raises(ValueError, match="mlstack_redis_acl"):
        acl.acl_rules(value, "chat")


@pytest.mark.parametrize("value", [None, *acl.PROFILES, ["get"], ["@read", "blpop"], ["client|setname"]])
def test_good_values_have_no_errors(value: Any) -> None:
    assert acl.permission_errors("chat", value) == []


@pytest.mark.parametrize(
    ("value", "uses"),
    [
        (None, {"blocking": False, "pubsub": False}),
        ("sessions", {"blocking": False, "pubsub": False}),
        (["get", "blpop"], {"blocking": True, "pubsub": False}),
        (["@read", "subscribe"], {"blocking": False, "pubsub": True}),
        # granted, but not the probes' commands: BLPOP and SUBSCRIBE are still refused
        (["get", "brpop"], {"blocking": False, "pubsub": False}),
        (["@list", "publish", "pubsub|numsub"], {"blocking": False, "pubsub": False}),
        (["@blocking", "@pubsub"], {"blocking": True, "pubsub": True}),
    ],
)
def test_uses_says_what_the_checks_may_not_expect_refused(value: Any, uses: dict[str, bool]) -> None:
    assert acl.uses(value) == uses


def test_profiles_name_only_known_commands_and_none_never_granted() -> None:
    for name, entries in acl.PROFILES.items():
        if entries and name != acl.MONITORING_PROFILE:
            assert acl.permission_errors(name, list(entries)) == [], name
        assert "@blocking" not in entries and "@pubsub" not in entries


@pytest.mark.parametrize(
    ("value", "granted"),
    [
        (None, {"set", "get", "del", "exists"}),
        ("sessions", {"set", "get", "exists"}),
        ("conversations", {"exists"}),
        ("readiness", {"exists"}),
        (["@string"], {"set", "get", "exists"}),
        (["@keyspace"], {"del", "exists"}),
    ],
)
def test_grants_tells_which_probe_commands_a_user_has(value: Any, granted: set[str]) -> None:
    assert {c for c in acl.PROBE_CATEGORIES if acl.grants(value, c)} == granted


def test_the_tables_agree_with_redis() -> None:
    # every command of a category table is a Redis command; @admin is a part of @dangerous
    for category, members in acl.CATEGORY_COMMANDS.items():
        assert members <= acl.COMMANDS, category
        assert category in acl.CATEGORIES
    assert acl.CATEGORY_COMMANDS["admin"] <= acl.CATEGORY_COMMANDS["dangerous"]
    assert {"eval", "evalsha", "fcall", "script|load"} <= acl.CATEGORY_COMMANDS["scripting"]
    assert {"blpop", "brpop", "xread"} <= acl.CATEGORY_COMMANDS["blocking"]
    assert {"subscribe", "psubscribe", "publish"} <= acl.CATEGORY_COMMANDS["pubsub"]


def test_monitoring_profile_grants_only_its_read_commands_and_no_category() -> None:
    # INFO and CONFIG GET come by name; nothing else (no key read, no script, no category).
    rules = acl.acl_rules("monitoring", "redis-exporter")
    assert rules == "-@all +ping +exists +info +config|get +latency|latest +slowlog|len"
    assert "@" not in rules.replace("-@all", "")
    assert not acl.grants("monitoring", "get") and not acl.grants("monitoring", "set")
    assert acl.uses("monitoring") == {"blocking": False, "pubsub": False}
    assert all(c in acl.COMMANDS for c in acl.PROFILES["monitoring"])


def test_monitoring_commands_cannot_be_named_in_a_list() -> None:
    # Only the reviewed profile carries INFO / CONFIG GET; a unit's own list may not.
    assert acl.permission_errors("x", ["info", "config|get"])
