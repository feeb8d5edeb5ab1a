#!/bin/bash
# Entry point of the mlstack Neo4j recipe: the official image's variables,
# without root. See the Dockerfile header for the contract.
set -euo pipefail

lib=/var/lib/neo4j/lib
conf_dir=/tmp/neo4j/conf

if [ "${1:-}" != neo4j ]; then
    exec "$@"
fi

mkdir -p "$conf_dir" /tmp/neo4j/run
cp /var/lib/neo4j/conf/neo4j.conf "$conf_dir/neo4j.conf"
# NEO4J_server_memory_heap_max__size=512m -> server.memory.heap.max_size=512m
# (as the official image maps them).
while IFS='=' read -r name value; do
    case "$name" in
        NEO4J_AUTH|NEO4J_AUTH_PATH|NEO4J_HOME|NEO4J_CONF|NEO4J_ACCEPT_LICENSE_AGREEMENT) continue ;;
        NEO4J_*) ;;
        *) continue ;;
    esac
    setting="${name#NEO4J_}"
    setting="${setting//__/@}"
    setting="${setting//_/.}"
    setting="${setting//@/_}"
    # Neo4j refuses a setting declared twice: replace the baked line.
    grep -v -F -e "$setting=" "$conf_dir/neo4j.conf" > "$conf_dir/neo4j.conf.new" || true
    printf '%s=%s\n' "$setting" "$value" >> "$conf_dir/neo4j.conf.new"
    mv "$conf_dir/neo4j.conf.new" "$conf_dir/neo4j.conf"
done < <(env)

# Heap flags go to the JVM directly: there is no neo4j launcher script here.
setting() { grep -E "^$1=" "$conf_dir/neo4j.conf" | tail -n1 | cut -d= -f2-; }
heap_init="$(setting server.memory.heap.initial_size)"
heap_max="$(setting server.memory.heap.max_size)"

auth=""
if [ -n "${NEO4J_AUTH_PATH:-}" ]; then
    [ -r "$NEO4J_AUTH_PATH" ] || { echo "NEO4J_AUTH_PATH=$NEO4J_AUTH_PATH is not a readable file" >&2; exit 1; }
    auth="$(cat "$NEO4J_AUTH_PATH")"
elif [ -n "${NEO4J_AUTH:-}" ]; then
    auth="$NEO4J_AUTH"
    # Not inherited by the server's JVM.
    unset NEO4J_AUTH
fi

if [ "$auth" = none ]; then
    sed -i 's/^dbms.security.auth_enabled=.*/dbms.security.auth_enabled=false/' "$conf_dir/neo4j.conf"
elif [ -n "$auth" ]; then
    user="${auth%%/*}"
    password="${auth#*/}"
    if [ "$user" != neo4j ] || [ "$password" = "$auth" ]; then
        echo "NEO4J_AUTH must be neo4j/<password> or none" >&2
        exit 1
    fi
    if [ ${#password} -lt 8 ]; then
        echo "NEO4J_AUTH: the password must be at least 8 characters" >&2
        exit 1
    fi
    # Like the official image: only before the first start; later starts keep
    # the stored password (change it with ALTER CURRENT USER).
    if [ ! -f /data/dbms/auth.ini ]; then
        # The password is an argument of a short-lived JVM inside the container
        # only; it never reaches the server's environment.
        NEO4J_CONF="$conf_dir" java -XX:-UsePerfData -Xmx128m -cp "$lib/*" \
            org.neo4j.cli.AdminTool dbms set-initial-password "$password"
    fi
fi
unset auth password

export NEO4J_CONF="$conf_dir"
exec java -XX:-UsePerfData -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
    -Djna.nosys=false -Djna.boot.library.path=/var/lib/neo4j/native \
    ${heap_init:+-Xms$heap_init} ${heap_max:+-Xmx$heap_max} \
    -Dfile.encoding=UTF-8 -cp "$lib/*" \
    org.neo4j.server.CommunityEntryPoint --home-dir=/var/lib/neo4j --config-dir="$conf_dir"
