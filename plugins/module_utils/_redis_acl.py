# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Redis ACL permissions of a service user, derived from its catalog entry.

A service's ``mlstack_redis_acl`` is a profile name or a list of Redis commands
(``get``, ``client|setname``) and command categories (``@read``); unset, it is
:data:`DEFAULT_PROFILE`. Every service user may also PING and EXISTS (:data:`BASELINE`).
:func:`acl_rules` turns it into the command rules of the user's ACL line,
:func:`permission_errors` says what is wrong with it (preflight). Standard library only, so
pytest and the services' tests reach it without Ansible.

Never granted: ``@admin``, ``@dangerous`` and ``@scripting`` (one ``EVAL "while true do
end" 0`` makes Redis answer ``BUSY`` to every client). ``@blocking`` and ``@pubsub`` only
when the service names them (the category, or the commands themselves).
"""

from __future__ import annotations

import re
from typing import Any

# What the reference services (images/mlstack-services) issue, read from redis_store.py and
# seen with MONITOR against Redis 7.0. redis-py's connect sends HELLO 3 AUTH, which Redis
# lets every user run (no-auth commands), so nothing grants them; the services turn off
# CLIENT SETINFO and CLIENT MAINT_NOTIFICATIONS, which these users would be refused (and each
# refusal logged in ACL LOG; Redis 7.0 does not even know them).
# Every service user may PING and EXISTS: the service contract's /ready probe (authenticated
# PING, then EXISTS <prefix>ready-probe), also redis-py's health check and the verify role's
# probe of the user's key pattern. Neither reaches beyond the user's own keys.
BASELINE = ("ping", "exists")
PROFILES: dict[str, tuple[str, ...]] = {
    "readiness": (),
    # voice-interaction's SessionStore: SET <prefix>session:<id> ... EX, GET
    "sessions": ("get", "set"),
    # chat's ConversationStore: RPUSH, LTRIM, EXPIRE then LRANGE of <prefix>conv:<id>
    "conversations": ("rpush", "ltrim", "expire", "lrange"),
    # A service image whose commands are not declared: plain reads and writes of its own keys,
    # MULTI/EXEC, still without blocking, pub/sub, scripts, admin or dangerous commands.
    "keyvalue": ("@read", "@write", "@transaction"),
}
DEFAULT_PROFILE = "keyvalue"
# The Redis exporter's (prometheus-redis-exporter): what it reads to export Redis' state, no
# key or value (INFO's keyspace section counts keys per database; it names none). INFO and
# CONFIG GET are in @admin/@dangerous, which a service profile never grants: this fixed,
# reviewed list is the one exception (:func:`acl_rules`), and it cannot be named as a list.
MONITORING_PROFILE = "monitoring"
PROFILES[MONITORING_PROFILE] = ("info", "config|get", "latency|latest", "slowlog|len")
FIELD = "mlstack_redis_acl"

# Categories no service user gets; subtracted last so that nothing granted before survives.
DENIED_CATEGORIES = ("admin", "dangerous", "scripting")
# Categories a service gets only when it names them (or names their commands).
OPT_IN_CATEGORIES = ("blocking", "pubsub")
CATEGORIES = frozenset((
    "admin bitmap blocking connection dangerous fast geo hash hyperloglog keyspace list pubsub read "
    "scripting set slow sortedset stream string transaction write"
).split())

# Redis 7.0 (Debian bookworm, the offline recipe): COMMAND LIST and ACL CAT <category>.
# A name Redis does not know makes ACL LOAD fail, so preflight refuses it first.
COMMANDS = frozenset((
    "acl acl|cat acl|deluser acl|dryrun acl|genpass acl|getuser acl|help acl|list acl|load acl|log "
    "acl|save acl|setuser acl|users acl|whoami append asking auth bgrewriteaof bgsave bitcount bitfield "
    "bitfield_ro bitop bitpos blmove blmpop blpop brpop brpoplpush bzmpop bzpopmax bzpopmin client "
    "client|caching client|getname client|getredir client|help client|id client|info client|kill "
    "client|list client|no-evict client|pause client|reply client|setname client|tracking "
    "client|trackinginfo client|unblock client|unpause cluster cluster|addslots cluster|addslotsrange "
    "cluster|bumpepoch cluster|count-failure-reports cluster|countkeysinslot cluster|delslots "
    "cluster|delslotsrange cluster|failover cluster|flushslots cluster|forget cluster|getkeysinslot "
    "cluster|help cluster|info cluster|keyslot cluster|links cluster|meet cluster|myid cluster|nodes "
    "cluster|replicas cluster|replicate cluster|reset cluster|saveconfig cluster|set-config-epoch "
    "cluster|setslot cluster|shards cluster|slaves cluster|slots command command|count command|docs "
    "command|getkeys command|getkeysandflags command|help command|info command|list config config|get "
    "config|help config|resetstat config|rewrite config|set copy dbsize debug decr decrby del discard "
    "dump echo eval eval_ro evalsha evalsha_ro exec exists expire expireat expiretime failover fcall "
    "fcall_ro flushall flushdb function function|delete function|dump function|flush function|help "
    "function|kill function|list function|load function|restore function|stats geoadd geodist geohash "
    "geopos georadius georadius_ro georadiusbymember georadiusbymember_ro geosearch geosearchstore get "
    "getbit getdel getex getrange getset hdel hello hexists hget hgetall hincrby hincrbyfloat hkeys hlen "
    "hmget hmset hrandfield hscan hset hsetnx hstrlen hvals incr incrby incrbyfloat info keys lastsave "
    "latency latency|doctor latency|graph latency|help latency|histogram latency|history latency|latest "
    "latency|reset lcs lindex linsert llen lmove lmpop lolwut lpop lpos lpush lpushx lrange lrem lset "
    "ltrim memory memory|doctor memory|help memory|malloc-stats memory|purge memory|stats memory|usage "
    "mget migrate module module|help module|list module|load module|loadex module|unload monitor move "
    "mset msetnx multi object object|encoding object|freq object|help object|idletime object|refcount "
    "persist pexpire pexpireat pexpiretime pfadd pfcount pfdebug pfmerge pfselftest ping psetex "
    "psubscribe psync pttl publish pubsub pubsub|channels pubsub|help pubsub|numpat pubsub|numsub "
    "pubsub|shardchannels pubsub|shardnumsub punsubscribe quit randomkey readonly readwrite rename "
    "renamenx replconf replicaof reset restore restore-asking role rpop rpoplpush rpush rpushx sadd save "
    "scan scard script script|debug script|exists script|flush script|help script|kill script|load sdiff "
    "sdiffstore select set setbit setex setnx setrange shutdown sinter sintercard sinterstore sismember "
    "slaveof slowlog slowlog|get slowlog|help slowlog|len slowlog|reset smembers smismember smove sort "
    "sort_ro spop spublish srandmember srem sscan ssubscribe strlen subscribe substr sunion sunionstore "
    "sunsubscribe swapdb sync time touch ttl type unlink unsubscribe unwatch wait watch xack xadd "
    "xautoclaim xclaim xdel xgroup xgroup|create xgroup|createconsumer xgroup|delconsumer xgroup|destroy "
    "xgroup|help xgroup|setid xinfo xinfo|consumers xinfo|groups xinfo|help xinfo|stream xlen xpending "
    "xrange xread xreadgroup xrevrange xsetid xtrim zadd zcard zcount zdiff zdiffstore zincrby zinter "
    "zintercard zinterstore zlexcount zmpop zmscore zpopmax zpopmin zrandmember zrange zrangebylex "
    "zrangebyscore zrangestore zrank zrem zremrangebylex zremrangebyrank zremrangebyscore zrevrange "
    "zrevrangebylex zrevrangebyscore zrevrank zscan zscore zunion zunionstore "
).split())
CATEGORY_COMMANDS: dict[str, frozenset[str]] = {
    "admin": frozenset((
        "acl|deluser acl|dryrun acl|getuser acl|list acl|load acl|log acl|save acl|setuser acl|users "
        "bgrewriteaof bgsave client|kill client|list client|no-evict client|pause client|unblock "
        "client|unpause cluster|addslots cluster|addslotsrange cluster|bumpepoch "
        "cluster|count-failure-reports cluster|delslots cluster|delslotsrange cluster|failover "
        "cluster|flushslots cluster|forget cluster|meet cluster|replicas cluster|replicate cluster|reset "
        "cluster|saveconfig cluster|set-config-epoch cluster|setslot cluster|slaves config|get "
        "config|resetstat config|rewrite config|set debug failover lastsave latency|doctor latency|graph "
        "latency|histogram latency|history latency|latest latency|reset module|list module|load module|loadex "
        "module|unload monitor pfdebug pfselftest psync replconf replicaof role save shutdown slaveof "
        "slowlog|get slowlog|len slowlog|reset sync "
    ).split()),
    "dangerous": frozenset((
        "acl|deluser acl|dryrun acl|getuser acl|list acl|load acl|log acl|save acl|setuser acl|users "
        "bgrewriteaof bgsave client|kill client|list client|no-evict client|pause client|unblock "
        "client|unpause cluster|addslots cluster|addslotsrange cluster|bumpepoch "
        "cluster|count-failure-reports cluster|delslots cluster|delslotsrange cluster|failover "
        "cluster|flushslots cluster|forget cluster|meet cluster|replicas cluster|replicate cluster|reset "
        "cluster|saveconfig cluster|set-config-epoch cluster|setslot cluster|slaves config|get "
        "config|resetstat config|rewrite config|set debug failover flushall flushdb info keys lastsave "
        "latency|doctor latency|graph latency|histogram latency|history latency|latest latency|reset migrate "
        "module|list module|load module|loadex module|unload monitor pfdebug pfselftest psync replconf "
        "replicaof restore restore-asking role save shutdown slaveof slowlog|get slowlog|len slowlog|reset "
        "sort sort_ro swapdb sync "
    ).split()),
    "scripting": frozenset((
        "eval eval_ro evalsha evalsha_ro fcall fcall_ro function|delete function|dump function|flush "
        "function|help function|kill function|list function|load function|restore function|stats script|debug "
        "script|exists script|flush script|help script|kill script|load "
    ).split()),
    "blocking": frozenset((
        "blmove blmpop blpop brpop brpoplpush bzmpop bzpopmax bzpopmin xread xreadgroup "
    ).split()),
    "pubsub": frozenset((
        "psubscribe publish pubsub|channels pubsub|numpat pubsub|numsub pubsub|shardchannels "
        "pubsub|shardnumsub punsubscribe spublish ssubscribe subscribe sunsubscribe unsubscribe "
    ).split()),
}

ENTRY_RE = re.compile(r"^(@[a-z]+|[a-z][a-z0-9_-]*(\|[a-z][a-z0-9_-]*)?)$")


def _forbidden(command: str) -> list[str]:
    """The never-granted categories ``command`` (or, for a container, a subcommand) is in."""
    found = []
    for category in DENIED_CATEGORIES:
        members = CATEGORY_COMMANDS[category]
        if command in members or any(m.startswith(f"{command}|") for m in members):
            found.append(category)
    return found


def permission_errors(unit: str, value: Any) -> list[str]:
    """What is wrong with a unit's ``mlstack_redis_acl``; each message names unit, field and fix."""
    where = f"unit {unit}: {FIELD}"
    if value is None:
        return []
    if isinstance(value, str):
        if value in PROFILES:
            return []
        return [f"{where}={value!r} is not a profile: use one of {sorted(PROFILES)} or a list of Redis commands "
                "and @categories"]
    if not isinstance(value, (list, tuple)) or not value:
        return [f"{where} must be a profile name or a non-empty list of Redis commands and @categories, "
                "e.g. [get, set] (readiness: PING and EXISTS only)"]
    errors: list[str] = []
    for entry in value:
        name = str(entry).strip().lower() if isinstance(entry, str) else None
        if name is None or not ENTRY_RE.match(name):
            errors.append(f"{where}: {entry!r} is not a Redis command or @category: write it like get, "
                          "client|setname or @read")
        elif name.startswith("@"):
            category = name[1:]
            if category == "all" or category in DENIED_CATEGORIES:
                errors.append(f"{where}: {name} is never granted to a service user (no @all, "
                              f"{', '.join('@' + c for c in DENIED_CATEGORIES)}): list the commands it uses")
            elif category not in CATEGORIES:
                errors.append(f"{where}: {name} is not a Redis 7.0 category: use one of "
                              f"{sorted('@' + c for c in CATEGORIES - set(DENIED_CATEGORIES))}")
        elif name not in COMMANDS:
            errors.append(f"{where}: {name!r} is not a Redis 7.0 command (Redis would refuse the ACL file): "
                          "correct or remove it")
        elif _forbidden(name):
            errors.append(f"{where}: {name!r} is in {', '.join('@' + c for c in _forbidden(name))}, never granted "
                          "to a service user: remove it (scripts and administration belong to the admin user)")
    return errors


def resolve(value: Any) -> list[str]:
    """The commands and @categories a unit's ``mlstack_redis_acl`` grants (the default when unset)."""
    if value is None:
        value = DEFAULT_PROFILE
    if isinstance(value, str):
        if value not in PROFILES:
            raise ValueError(f"{FIELD}={value!r} is not a profile: use one of {sorted(PROFILES)}")
        value = PROFILES[value]
    return list(dict.fromkeys([*BASELINE, *(str(e).strip().lower() for e in value)]))


def acl_rules(value: Any, unit: str = "") -> str:
    """The command rules of a service user's ACL line, for ``mlstack_redis_acl`` = ``value``.

    ``-@all``, the granted categories, ``-@blocking``/``-@pubsub`` unless granted, the granted
    commands (after, so a named BLPOP or SUBSCRIBE survives ``-@blocking``/``-@pubsub``), and
    last ``-@admin -@dangerous -@scripting``: Redis applies rules left to right, so no grant
    before them can bring back a script or an administrative command. Raises ValueError on a
    value preflight refuses, so a bad value can never be rendered.
    """
    errors = permission_errors(unit or "?", value)
    if errors:
        raise ValueError("; ".join(errors))
    entries = resolve(value)
    if value == MONITORING_PROFILE:
        # Granted by name after -@all, with no category: nothing beyond the list comes with it.
        return " ".join(["-@all", *(f"+{c}" for c in entries)])
    categories = [e[1:] for e in entries if e.startswith("@")]
    commands = [e for e in entries if not e.startswith("@")]  # the baseline first
    rules = ["-@all", *(f"+@{c}" for c in categories)]
    if categories:
        rules += [f"-@{c}" for c in OPT_IN_CATEGORIES if c not in categories]
    rules += [f"+{c}" for c in commands]
    rules += [f"-@{c}" for c in DENIED_CATEGORIES]
    return " ".join(rules)


def uses(value: Any) -> dict[str, bool]:
    """Whether the permission grants the verify role's blocking probe (BLPOP) and pub/sub probe
    (SUBSCRIBE): by name, or by ``@blocking`` / ``@pubsub`` (another category that holds them,
    such as ``@list``, does not: ``-@blocking``/``-@pubsub`` follow it)."""
    entries = resolve(value)
    return {"blocking": "blpop" in entries or "@blocking" in entries,
            "pubsub": "subscribe" in entries or "@pubsub" in entries}


# The categories of the commands the verify role's probe may use (Redis 7.0 COMMAND INFO).
PROBE_CATEGORIES = {"set": ("write", "string"), "get": ("read", "string"), "del": ("write", "keyspace"),
                    "exists": ("read", "keyspace")}


def grants(value: Any, command: str) -> bool:
    """Whether ``mlstack_redis_acl`` = ``value`` grants ``command``, one of :data:`PROBE_CATEGORIES`."""
    entries = resolve(value)
    return command in entries or any(f"@{c}" in entries for c in PROBE_CATEGORIES[command])
