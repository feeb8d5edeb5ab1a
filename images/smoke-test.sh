#!/usr/bin/env bash
# shellcheck disable=SC2016  # Go templates, SQL and health commands in single quotes are meant literally
# Smoke test of the offline image recipes against the official images' contracts.
#
#   images/smoke-test.sh [redis|postgresql|all]
#
# Needs a Docker engine and root (secret files are chowned to 999). Every
# container, network and volume it creates is named "$PREFIX-*" (default
# helper-img) and removed at the end; images are not touched.
# Env: PREFIX, REDIS_IMAGE (mlstack/redis:recipe),
#      POSTGRES_IMAGE (mlstack/postgresql:recipe), KEEP=1 to keep resources.
set -uo pipefail

PREFIX="${PREFIX:-helper-img}"
REDIS_IMAGE="${REDIS_IMAGE:-mlstack/redis:recipe}"
POSTGRES_IMAGE="${POSTGRES_IMAGE:-mlstack/postgresql:recipe}"
WHAT="${1:-all}"
NET="$PREFIX-net"
WORK="$(mktemp -d "/tmp/$PREFIX.XXXXXX")"
HARDEN=(--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges)

PASS=0
FAIL=0
ok()  { PASS=$((PASS + 1)); printf 'PASS  %s\n' "$*"; }
bad() { FAIL=$((FAIL + 1)); printf 'FAIL  %s\n' "$*"; }
# check "description" command...: pass when the command succeeds
check() { local d="$1"; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi; }
# expect_out "description" "regex" command...: pass when output matches
expect_out() {
	local d="$1" re="$2" out; shift 2
	out="$("$@" 2>&1)"
	if printf '%s' "$out" | grep -Eq -- "$re"; then
		ok "$d  [$(printf '%s' "$out" | grep -E -m1 -- "$re" | cut -c1-90)]"
	else bad "$d  (got: $(printf '%s' "$out" | tail -3 | tr '\n' ' '))"; fi
}

cleanup() {
	[ "${KEEP:-0}" = 1 ] && return
	local c v
	for c in $(docker ps -aq --filter "name=^${PREFIX}-"); do docker rm -f -v "$c" >/dev/null 2>&1; done
	for v in $(docker volume ls -q --filter "name=^${PREFIX}-"); do docker volume rm "$v" >/dev/null 2>&1; done
	docker network rm "$NET" >/dev/null 2>&1
	rm -rf -- "$WORK"
}
trap cleanup EXIT

# stop_check NAME LABEL: docker stop must be fast and leave exit code 0
stop_check() {
	local name="$1" label="$2" t0 t1 rc
	t0=$(date +%s.%N)
	docker stop -t 30 "$name" >/dev/null
	t1=$(date +%s.%N)
	rc=$(docker inspect -f '{{.State.ExitCode}}' "$name")
	local dt; dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	if [ "$rc" = 0 ] && awk -v d="$dt" 'BEGIN { exit !(d < 10) }'; then
		ok "$label: docker stop graceful (exit $rc, ${dt}s)"
	else
		bad "$label: docker stop (exit $rc, ${dt}s)"
	fi
}

docker network create "$NET" >/dev/null

# --------------------------------------------------------------------- redis
test_redis() {
	echo "== redis: $REDIS_IMAGE"
	local etc="$WORK/redis-etc" adm_pw='adm-pw-1' chat_pw='chat-pw-2' hc_pw='hc-pw-3'
	mkdir -p "$etc"
	sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
	cat > "$etc/redis.conf" <<-EOF
		bind * -::*
		port 6379
		aclfile /etc/mlstack/users.acl
		appendonly yes
		dir /data
	EOF
	cat > "$etc/users.acl" <<-EOF
		user default off
		user admin on #$(sha "$adm_pw") ~* &* +@all
		user chat on #$(sha "$chat_pw") ~chat:* resetchannels -@all +@read +@write +@connection
		user health on #$(sha "$hc_pw") resetkeys resetchannels -@all +ping
	EOF
	{ cat "$etc/redis.conf"; echo 'protected-mode yes'; } > "$etc/redis-pm.conf"
	chown -R 999:999 "$etc"; chmod 0500 "$etc"; chmod 0400 "$etc"/*

	expect_out "redis: image user is 999:999" '^999:999$' docker image inspect -f '{{.Config.User}}' "$REDIS_IMAGE"
	expect_out "redis: labels" 'io.mlstack.recipe=redis' \
		docker image inspect -f '{{range $k,$v := .Config.Labels}}{{$k}}={{$v}} {{end}}' "$REDIS_IMAGE"
	expect_out "redis: entrypoint prepends redis-server to --version" '^Redis server v=' docker run --rm "$REDIS_IMAGE" --version
	expect_out "redis: redis-cli present" '^redis-cli ' docker run --rm "$REDIS_IMAGE" redis-cli --version

	local run=(docker run -d --network "$NET" -v "$PREFIX-redisdata:/data" -v "$etc:/etc/mlstack:ro")
	"${run[@]}" --name "$PREFIX-redis" "$REDIS_IMAGE" redis-server /etc/mlstack/redis.conf >/dev/null
	local cli=(docker run --rm --network "$NET" "$REDIS_IMAGE" redis-cli -h "$PREFIX-redis" --no-auth-warning)
	for _ in $(seq 30); do "${cli[@]}" --user health --pass "$hc_pw" ping 2>/dev/null | grep -q PONG && break; sleep 0.5; done

	expect_out "redis: no auth -> refused" 'NOAUTH|WRONGPASS|NOPERM|DENIED' "${cli[@]}" get chat:x
	expect_out "redis: wrong password -> WRONGPASS" 'WRONGPASS' "${cli[@]}" --user admin --pass nope ping
	expect_out "redis: healthcheck user ping (docker exec)" '^PONG$' \
		docker exec "$PREFIX-redis" redis-cli --no-auth-warning --user health --pass "$hc_pw" ping
	expect_out "redis: admin SET voice:1" '^OK$' "${cli[@]}" --user admin --pass "$adm_pw" set voice:1 secret-voice
	expect_out "redis: admin SET chat:1" '^OK$' "${cli[@]}" --user admin --pass "$adm_pw" set chat:1 hello
	expect_out "redis: chat user reads chat:1" '^hello$' "${cli[@]}" --user chat --pass "$chat_pw" get chat:1
	expect_out "redis: chat user writes chat:2" '^OK$' "${cli[@]}" --user chat --pass "$chat_pw" set chat:2 x
	expect_out "redis: chat user cannot read voice:1" 'NOPERM' "${cli[@]}" --user chat --pass "$chat_pw" get voice:1
	expect_out "redis: chat user cannot CONFIG" 'NOPERM' "${cli[@]}" --user chat --pass "$chat_pw" config get dir
	expect_out "redis: appendonly yes" '^yes$' "${cli[@]}" --user admin --pass "$adm_pw" config get appendonly
	expect_out "redis: dir /data" '^/data$' "${cli[@]}" --user admin --pass "$adm_pw" config get dir
	expect_out "redis: protected-mode from config default (not set -> no, like official)" '^no$' \
		"${cli[@]}" --user admin --pass "$adm_pw" config get protected-mode
	expect_out "redis: process runs as uid 999" '^999$' docker exec "$PREFIX-redis" sh -c 'stat -c %u /proc/1'
	expect_out "redis: AOF dir in /data owned by 999" "^999 appendonlydir\$" docker exec "$PREFIX-redis" stat -c "%u %n" appendonlydir
	stop_check "$PREFIX-redis" "redis"
	docker rm -v "$PREFIX-redis" >/dev/null

	"${run[@]}" --name "$PREFIX-redis" "$REDIS_IMAGE" redis-server /etc/mlstack/redis.conf >/dev/null
	for _ in $(seq 30); do "${cli[@]}" --user health --pass "$hc_pw" ping 2>/dev/null | grep -q PONG && break; sleep 0.5; done
	expect_out "redis: data survives container recreation (AOF)" '^secret-voice$' "${cli[@]}" --user admin --pass "$adm_pw" get voice:1
	docker rm -f -v "$PREFIX-redis" >/dev/null

	# hardened: read-only rootfs, no capabilities, no-new-privileges
	"${run[@]}" --name "$PREFIX-redis" "${HARDEN[@]}" "$REDIS_IMAGE" redis-server /etc/mlstack/redis.conf >/dev/null
	for _ in $(seq 30); do "${cli[@]}" --user health --pass "$hc_pw" ping 2>/dev/null | grep -q PONG && break; sleep 0.5; done
	expect_out "redis hardened: old data readable" '^secret-voice$' "${cli[@]}" --user admin --pass "$adm_pw" get voice:1
	expect_out "redis hardened: write works" '^OK$' "${cli[@]}" --user admin --pass "$adm_pw" set voice:2 v2
	expect_out "redis hardened: BGREWRITEAOF works" 'rewriting started' "${cli[@]}" --user admin --pass "$adm_pw" bgrewriteaof
	sleep 1
	expect_out "redis hardened: no persistence errors" '^aof_last_bgrewrite_status:ok' \
		"${cli[@]}" --user admin --pass "$adm_pw" info persistence
	stop_check "$PREFIX-redis" "redis hardened"
	docker rm -v "$PREFIX-redis" >/dev/null

	# hardened without any tmpfs at all
	"${run[@]}" --name "$PREFIX-redis" --read-only --cap-drop ALL --security-opt no-new-privileges \
		"$REDIS_IMAGE" redis-server /etc/mlstack/redis.conf >/dev/null
	for _ in $(seq 30); do "${cli[@]}" --user health --pass "$hc_pw" ping 2>/dev/null | grep -q PONG && break; sleep 0.5; done
	expect_out "redis read-only without any tmpfs: works" '^OK$' "${cli[@]}" --user admin --pass "$adm_pw" set voice:3 v3
	docker rm -f -v "$PREFIX-redis" >/dev/null

	# a config that sets protected-mode itself is left alone by the entrypoint
	docker run -d --network "$NET" --name "$PREFIX-redis-pm" -v "$etc:/etc/mlstack:ro" "$REDIS_IMAGE" /etc/mlstack/redis-pm.conf >/dev/null
	local cli3=(docker run --rm --network "$NET" "$REDIS_IMAGE" redis-cli -h "$PREFIX-redis-pm" --no-auth-warning --user admin --pass "$adm_pw")
	for _ in $(seq 30); do "${cli3[@]}" ping 2>/dev/null | grep -q PONG && break; sleep 0.5; done
	expect_out "redis: entrypoint prepends redis-server to a *.conf arg; config's protected-mode yes kept" '^yes$' \
		"${cli3[@]}" config get protected-mode
	docker rm -f -v "$PREFIX-redis-pm" >/dev/null

	# default CMD (no config): protected mode off like the official image
	docker run -d --network "$NET" --name "$PREFIX-redis-bare" "$REDIS_IMAGE" >/dev/null
	local cli2=(docker run --rm --network "$NET" "$REDIS_IMAGE" redis-cli -h "$PREFIX-redis-bare")
	for _ in $(seq 30); do "${cli2[@]}" ping 2>/dev/null | grep -q PONG && break; sleep 0.5; done
	expect_out "redis bare CMD: remote ping works (protected-mode no, as official)" '^PONG$' "${cli2[@]}" ping
	expect_out "redis bare CMD: writes to WORKDIR /data" '^OK$' "${cli2[@]}" save
	docker rm -f -v "$PREFIX-redis-bare" >/dev/null
}

# ---------------------------------------------------------------- postgresql
test_postgresql() {
	echo "== postgresql: $POSTGRES_IMAGE"
	local pw='S3cr:et\pw"x' user=mlstack db=mlstackdb
	local sec="$WORK/pg-secrets"
	mkdir -p "$sec"
	printf '%s\n' "$pw" > "$sec/postgres_password"
	printf '*:*:*:%s:%s\n' "$user" "$(printf '%s' "$pw" | sed 's/[\\:]/\\&/g')" > "$sec/pgpass.good"
	printf '*:*:*:%s:%s\n' "$user" 'wrong-password' > "$sec/pgpass.bad"
	chown 999:999 "$sec"/*; chmod 0400 "$sec/postgres_password"; chmod 0600 "$sec"/pgpass.*

	expect_out "pg: image user is 999:999" '^999:999$' docker image inspect -f '{{.Config.User}}' "$POSTGRES_IMAGE"
	expect_out "pg: STOPSIGNAL SIGINT" '^SIGINT$' docker image inspect -f '{{.Config.StopSignal}}' "$POSTGRES_IMAGE"
	expect_out "pg: labels" 'io.mlstack.recipe=postgresql' \
		docker image inspect -f '{{range $k,$v := .Config.Labels}}{{$k}}={{$v}} {{end}}' "$POSTGRES_IMAGE"
	expect_out "pg: entrypoint prepends postgres to --version" 'postgres \(PostgreSQL\) 15\.' docker run --rm "$POSTGRES_IMAGE" --version

	# refuses to initialise without a password
	docker volume create "$PREFIX-pgempty" >/dev/null
	expect_out "pg: no password -> refuses to start with a clear message" 'superuser password is not specified' \
		docker run --rm -v "$PREFIX-pgempty:/var/lib/postgresql/data" "$POSTGRES_IMAGE"
	check "pg: ...and leaves PGDATA uninitialised" \
		bash -c "! docker run --rm -v $PREFIX-pgempty:/d --entrypoint ls $POSTGRES_IMAGE /d/PG_VERSION"

	local secret=(-v "$sec/postgres_password:/run/secrets/postgres_password:ro" -e POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password)
	local run=(docker run -d --network "$NET" -v "$PREFIX-pgdata:/var/lib/postgresql/data" "${secret[@]}" -e POSTGRES_USER="$user" -e POSTGRES_DB="$db")
	local ready=(docker exec "$PREFIX-pg" pg_isready -U "$user" -d "$db" -h 127.0.0.1)
	# the init-time temp server listens on the socket only: TCP ready = final server
	wait_tcp() { local _; for _ in $(seq 60); do "${ready[@]}" >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }

	# the role's healthcheck, verbatim (evaluated by the container's sh)
	"${run[@]}" --name "$PREFIX-pg" --health-interval 1s --health-retries 30 \
		--health-cmd 'pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB" -h 127.0.0.1' "$POSTGRES_IMAGE" >/dev/null
	wait_tcp
	expect_out "pg: healthcheck pg_isready -h 127.0.0.1 reports ready" 'accepting connections' "${ready[@]}"
	for _ in $(seq 30); do [ "$(docker inspect -f '{{.State.Health.Status}}' "$PREFIX-pg")" = healthy ] && break; sleep 1; done
	expect_out "pg: docker health status (--health-cmd pg_isready ...)" '^healthy$' docker inspect -f '{{.State.Health.Status}}' "$PREFIX-pg"
	local psql_good=(docker run --rm --network "$NET" -v "$sec/pgpass.good:/pgpass:ro" -e PGPASSFILE=/pgpass "$POSTGRES_IMAGE" psql -h "$PREFIX-pg" -U "$user" -d "$db" -XAtq)
	local psql_bad=(docker run --rm --network "$NET" -v "$sec/pgpass.bad:/pgpass:ro" -e PGPASSFILE=/pgpass "$POSTGRES_IMAGE" psql -h "$PREFIX-pg" -U "$user" -d "$db" -XAtq)
	local psql_none=(docker run --rm --network "$NET" "$POSTGRES_IMAGE" psql -h "$PREFIX-pg" -U "$user" -d "$db" -XAtqw)
	expect_out "pg: TCP from another container, right password" '^1$' "${psql_good[@]}" -c 'select 1'
	expect_out "pg: TCP wrong password refused" 'password authentication failed' "${psql_bad[@]}" -c 'select 1'
	expect_out "pg: TCP no password refused" 'no password supplied' "${psql_none[@]}" -c 'select 1'
	expect_out "pg: TCP as postgres (not created) refused" 'password authentication failed|no password' \
		docker run --rm --network "$NET" -v "$sec/pgpass.good:/pgpass:ro" -e PGPASSFILE=/pgpass "$POSTGRES_IMAGE" psql -h "$PREFIX-pg" -U postgres -XAtqw -c 'select 1'
	expect_out "pg: local socket without password refused (scram on local too)" 'no password supplied' \
		docker exec "$PREFIX-pg" psql -U "$user" -d "$db" -XAtqw -c 'select 1'
	expect_out "pg: SHOW password_encryption = scram-sha-256" '^scram-sha-256$' "${psql_good[@]}" -c 'show password_encryption'
	expect_out "pg: stored verifier is SCRAM-SHA-256" '^SCRAM-SHA-256\$' "${psql_good[@]}" -c "select rolpassword from pg_authid where rolname='$user'"
	expect_out "pg: pg_hba has only scram-sha-256 rules" '^local\|scram-sha-256 host\|scram-sha-256 $' \
		bash -c "$(printf '%q ' "${psql_good[@]}") -c \"select type||'|'||auth_method from pg_hba_file_rules order by line_number\" | tr '\n' ' '"
	expect_out "pg: listen_addresses = *" '^\*$' "${psql_good[@]}" -c 'show listen_addresses'
	expect_out "pg: POSTGRES_DB created, owned by superuser" "^$db\|$user\$" "${psql_good[@]}" -c "select datname||'|'||pg_get_userbyid(datdba) from pg_database where datname='$db'"
	expect_out "pg: server encoding UTF8" '^UTF8$' "${psql_good[@]}" -c 'show server_encoding'
	expect_out "pg: postgres (pid 1) runs as uid 999" '^999$' docker exec "$PREFIX-pg" stat -c %u /proc/1
	check "pg: password not in container logs" bash -c "! docker logs $PREFIX-pg 2>&1 | grep -qF -- $(printf '%q' "$pw")"
	check "pg: password not in any process argv" \
		bash -c "! docker exec $PREFIX-pg sh -c 'cat /proc/[0-9]*/cmdline 2>/dev/null' | tr '\0' '\n' | grep -qF -- $(printf '%q' "$pw")"
	# postgres overwrites /proc/<pid>/environ with its process titles, so ask
	# the server for its real environment (COPY FROM PROGRAM runs a child of it)
	server_env() { "$@" -c "create temp table e(l text); copy e from program 'env | base64 -w0'; select l from e" | base64 -d; }
	local env_out
	env_out="$(server_env "${psql_good[@]}")"
	if grep -q "^PGDATA=" <<<"$env_out" && ! grep -qF -- "$pw" <<<"$env_out"; then
		ok "pg: password not in the server's environment (COPY FROM PROGRAM env)"
	else bad "pg: password not in the server's environment"; fi
	check "pg: no temp secret dir left in /tmp" bash -c "[ -z \"\$(docker exec $PREFIX-pg sh -c 'ls -A /tmp')\" ]"

	"${psql_good[@]}" -c 'create table persist_check(id int primary key, note text); insert into persist_check values (1, $$kept$$)' >/dev/null 2>&1
	stop_check "$PREFIX-pg" "pg"
	check "pg: shutdown was a clean fast shutdown" bash -c "docker logs $PREFIX-pg 2>&1 | grep -q 'received fast shutdown request' && docker logs $PREFIX-pg 2>&1 | tail -1 | grep -q 'database system is shut down'"
	docker rm -v "$PREFIX-pg" >/dev/null

	"${run[@]}" --name "$PREFIX-pg" "$POSTGRES_IMAGE" >/dev/null
	wait_tcp
	expect_out "pg: recreated container on same volume keeps table" '^kept$' "${psql_good[@]}" -c 'select note from persist_check where id=1'
	expect_out "pg: second start skips initialization" 'skipping initialization' docker logs "$PREFIX-pg"
	docker rm -f -v "$PREFIX-pg" >/dev/null

	# hardened on the existing volume (no init, so /tmp is not needed)
	"${run[@]}" --name "$PREFIX-pg" --read-only --tmpfs /var/run/postgresql --cap-drop ALL --security-opt no-new-privileges "$POSTGRES_IMAGE" >/dev/null
	wait_tcp
	expect_out "pg hardened (existing data, tmpfs /var/run/postgresql only): query works" '^kept$' "${psql_good[@]}" -c 'select note from persist_check where id=1'
	stop_check "$PREFIX-pg" "pg hardened"
	docker rm -v "$PREFIX-pg" >/dev/null

	# hardened, first init on a fresh volume
	docker run -d --network "$NET" --name "$PREFIX-pg" -v "$PREFIX-pgdata2:/var/lib/postgresql/data" "${secret[@]}" \
		-e POSTGRES_USER="$user" -e POSTGRES_DB="$db" "${HARDEN[@]}" --tmpfs /var/run/postgresql "$POSTGRES_IMAGE" >/dev/null
	wait_tcp
	expect_out "pg hardened (fresh volume, tmpfs /tmp + /var/run/postgresql): init + TCP query" '^1$' "${psql_good[@]}" -c 'select 1'
	docker rm -f -v "$PREFIX-pg" >/dev/null

	expect_out "pg read-only without tmpfs /var/run/postgresql: clear error" '/var/run/postgresql is not writable' \
		docker run --rm -v "$PREFIX-pgdata:/var/lib/postgresql/data" "${secret[@]}" --read-only --tmpfs /tmp "$POSTGRES_IMAGE"
	expect_out "pg read-only first init without tmpfs /tmp: clear error" 'private temp dir' \
		docker run --rm -v "$PREFIX-pgdata3:/var/lib/postgresql/data" "${secret[@]}" --read-only --tmpfs /var/run/postgresql "$POSTGRES_IMAGE"

	# POSTGRES_PASSWORD (env), defaults user/db=postgres, initdb args, init scripts
	local initd="$WORK/initdb.d"
	mkdir -p "$initd"
	cat > "$initd/01-schema.sql" <<-'EOF'
		create table init_runs(n serial primary key, what text);
		insert into init_runs(what) values ('sql');
	EOF
	cat > "$initd/02-sourced.sh" <<-'EOF'
		# not executable: sourced; sees the entrypoint's shell variables
		psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -c "insert into init_runs(what) values ('sourced:$POSTGRES_DB')"
	EOF
	cat > "$initd/03-exec.sh" <<-'EOF'
		#!/bin/bash
		set -e
		psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -c "insert into init_runs(what) values ('exec')"
	EOF
	printf "insert into init_runs(what) values ('gz');\n" | gzip > "$initd/04-more.sql.gz"
	chmod 0644 "$initd"/*; chmod 0755 "$initd/03-exec.sh" "$initd"
	docker run -d --network "$NET" --name "$PREFIX-pg" -v "$PREFIX-pgdata4:/var/lib/postgresql/data" \
		-v "$initd:/docker-entrypoint-initdb.d:ro" -e POSTGRES_PASSWORD=envpw \
		-e POSTGRES_INITDB_ARGS='--data-checksums --encoding=UTF8' "$POSTGRES_IMAGE" >/dev/null
	ready=(docker exec "$PREFIX-pg" pg_isready -U postgres -d postgres -h 127.0.0.1)
	wait_tcp
	local psql_env=(docker run --rm --network "$NET" -e PGPASSWORD=envpw "$POSTGRES_IMAGE" psql -h "$PREFIX-pg" -U postgres -d postgres -XAtq)
	expect_out "pg: POSTGRES_PASSWORD env + default user/db postgres" '^1$' "${psql_env[@]}" -c 'select 1'
	expect_out "pg: POSTGRES_INITDB_ARGS applied (data_checksums on)" '^on$' "${psql_env[@]}" -c 'show data_checksums'
	expect_out "pg: initdb.d *.sql, sourced *.sh, executable *.sh, *.sql.gz ran in order" '^sql,sourced:postgres,exec,gz$' \
		"${psql_env[@]}" -c "select string_agg(what, ',' order by n) from init_runs"
	env_out="$(server_env "${psql_env[@]}")"
	if grep -q "^PGDATA=" <<<"$env_out" && ! grep -q -e "^POSTGRES_PASSWORD=" -e envpw <<<"$env_out"; then
		ok "pg: POSTGRES_PASSWORD removed from the server's environment"
	else bad "pg: POSTGRES_PASSWORD removed from the server's environment"; fi
	docker restart -t 30 "$PREFIX-pg" >/dev/null
	wait_tcp
	expect_out "pg: initdb.d scripts not re-run on restart" '^4$' "${psql_env[@]}" -c 'select count(*) from init_runs'
	docker rm -f -v "$PREFIX-pg" >/dev/null

	# both set: the file wins
	docker run -d --network "$NET" --name "$PREFIX-pg" -v "$PREFIX-pgdata5:/var/lib/postgresql/data" \
		"${secret[@]}" -e POSTGRES_PASSWORD=ignored -e POSTGRES_USER="$user" -e POSTGRES_DB="$db" "$POSTGRES_IMAGE" >/dev/null
	ready=(docker exec "$PREFIX-pg" pg_isready -U "$user" -d "$db" -h 127.0.0.1)
	wait_tcp
	expect_out "pg: POSTGRES_PASSWORD_FILE wins over POSTGRES_PASSWORD" '^1$' "${psql_good[@]}" -c 'select 1'
	expect_out "pg: ...with a warning in the log" 'both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set' docker logs "$PREFIX-pg"
	docker rm -f -v "$PREFIX-pg" >/dev/null
}

case "$WHAT" in
	redis) test_redis ;;
	postgresql) test_postgresql ;;
	all) test_redis; test_postgresql ;;
	*) echo "usage: $0 [redis|postgresql|all]" >&2; exit 2 ;;
esac

echo "== $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
