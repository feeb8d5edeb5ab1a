#!/usr/bin/env bash
# Entrypoint of the mlstack PostgreSQL recipe.
#
# Follows the contract of the official postgres image's docker-entrypoint.sh:
#   POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE  superuser password (needed for
#                                  the first start unless the auth method is trust)
#   POSTGRES_USER[_FILE]          superuser name (default postgres)
#   POSTGRES_DB[_FILE]            database created on first start (default = user)
#   POSTGRES_INITDB_ARGS[_FILE]   extra initdb arguments (shell-quoted, eval'd)
#   POSTGRES_INITDB_WALDIR        initdb --waldir
#   POSTGRES_HOST_AUTH_METHOD     pg_hba method (default scram-sha-256)
#   PGDATA                        data directory
#   /docker-entrypoint-initdb.d/  on the first start only: *.sh (run if
#                                 executable, else sourced), *.sql, *.sql.gz
#                                 (psql); *.sql.xz / *.sql.zst only where
#                                 xz-utils / zstd are installed (they are not)
# Differences from the official script:
#   * runs as the postgres user (999) from the start; no root, no gosu;
#   * pg_hba.conf has exactly `local all all <method>` and
#     `host all all all <method>`: with the default method the local socket
#     asks for a password too (the official image trusts local connections);
#   * when both VAR and VAR_FILE are set, VAR_FILE wins (with a warning; the
#     official script refuses to start);
#   * the superuser password never appears in process arguments or logs:
#     initdb reads it from a file in a private temp dir (mode 0700, removed
#     afterwards), psql during init reads it from a .pgpass there, and it is
#     removed from the environment before postgres is exec'd.
set -Eeo pipefail

log() {
	printf '%s [docker-entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2
}
die() {
	log "error: $*"
	exit 1
}

# usage: file_env VAR [DEFAULT]
# Sets VAR from the file named by VAR_FILE when that is set (the file wins),
# else keeps VAR, else uses DEFAULT. Trailing newlines of the file are
# dropped, like the official image does. The value is exported so that
# executed init scripts see it, as with the official image.
file_env() {
	local var="$1" def="${2:-}"
	local fvar="${var}_FILE"
	local val="$def"
	if [ -n "${!fvar:-}" ]; then
		if [ -n "${!var:-}" ]; then
			log "warning: both $var and $fvar are set; using $fvar"
		fi
		[ -r "${!fvar}" ] || die "$fvar points to '${!fvar}', which is not readable by uid $(id -u) (make it owned by 999 or group-readable)"
		val="$(< "${!fvar}")"
	elif [ -n "${!var:-}" ]; then
		val="${!var}"
	fi
	export "$var"="$val"
	unset "$fvar"
}

# true when the arguments only ask postgres for help/version/config
want_help() {
	local arg
	for arg; do
		case "$arg" in
			-'?'|--help|--describe-config|-V|--version) return 0 ;;
		esac
	done
	return 1
}

setup_env() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER 'postgres'
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
	export PGDATA POSTGRES_HOST_AUTH_METHOD
	DATABASE_ALREADY_EXISTS=
	if [ -s "$PGDATA/PG_VERSION" ]; then
		DATABASE_ALREADY_EXISTS=1
	fi
}

create_db_directories() {
	mkdir -p "$PGDATA" 2>/dev/null || true
	[ -d "$PGDATA" ] || die "PGDATA '$PGDATA' does not exist and cannot be created by uid $(id -u)"
	[ -w "$PGDATA" ] || die "PGDATA '$PGDATA' is not writable by uid $(id -u); it must be owned by 999:999 (a fresh named volume is; a bind mount needs chown 999:999)"
	# postgres refuses a group/world-accessible data directory
	chmod 00700 "$PGDATA" 2>/dev/null || true
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		chmod 00700 "$POSTGRES_INITDB_WALDIR" 2>/dev/null || true
	fi
	[ -w /var/run/postgresql ] || die "/var/run/postgresql is not writable (under --read-only add --tmpfs /var/run/postgresql)"
}

verify_minimum_env() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
		cat >&2 <<-'EOE'
			Error: Database is uninitialized and superuser password is not specified.
			       Set POSTGRES_PASSWORD_FILE to a file holding the password (preferred)
			       or POSTGRES_PASSWORD to a non-empty value for the superuser. For
			       example, "-e POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password"
			       on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.
		EOE
		exit 1
	fi
	if [ "$POSTGRES_HOST_AUTH_METHOD" = 'trust' ]; then
		log "warning: POSTGRES_HOST_AUTH_METHOD=trust: every connection is accepted without a password"
	fi
}

# private scratch dir for the password file and .pgpass
make_secret_dir() {
	SECRET_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pg-init.XXXXXXXX" 2>/dev/null)" \
		|| die "cannot create a private temp dir under ${TMPDIR:-/tmp} (under --read-only add --tmpfs /tmp)"
	chmod 0700 "$SECRET_DIR"
	trap 'rm -rf -- "$SECRET_DIR"' EXIT
}

remove_secret_dir() {
	rm -rf -- "$SECRET_DIR"
	trap - EXIT
	unset SECRET_DIR
}

pgpass_escape() {
	local s="$1"
	s="${s//\\/\\\\}"
	s="${s//:/\\:}"
	printf '%s' "$s"
}

init_database_dir() {
	local method="$POSTGRES_HOST_AUTH_METHOD"
	local -a args=(--username="$POSTGRES_USER" --auth-local="$method" --auth-host="$method")
	if [ -n "$POSTGRES_PASSWORD" ]; then
		# printf is a shell builtin: the password is never in a process argv
		(umask 077; printf '%s\n' "$POSTGRES_PASSWORD" > "$SECRET_DIR/pwfile")
		args+=(--pwfile="$SECRET_DIR/pwfile")
	fi
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		args+=(--waldir="$POSTGRES_INITDB_WALDIR")
	fi
	# POSTGRES_INITDB_ARGS is shell-quoted text, like in the official image
	eval 'initdb "${args[@]}" '"$POSTGRES_INITDB_ARGS"
	rm -f -- "$SECRET_DIR/pwfile"
}

setup_hba_conf() {
	local method="$POSTGRES_HOST_AUTH_METHOD"
	{
		echo "# Written by docker-entrypoint.sh (mlstack postgresql recipe)."
		echo "# Only $method is accepted, on the local socket as well as over TCP."
		echo "# TYPE  DATABASE  USER  ADDRESS  METHOD"
		printf 'local   all       all            %s\n' "$method"
		printf 'host    all       all   all      %s\n' "$method"
	} > "$PGDATA/pg_hba.conf"
}

temp_server_start() {
	if [ -n "$POSTGRES_PASSWORD" ]; then
		(umask 077; printf '*:*:*:%s:%s\n' "$(pgpass_escape "$POSTGRES_USER")" "$(pgpass_escape "$POSTGRES_PASSWORD")" > "$SECRET_DIR/pgpass")
		export PGPASSFILE="$SECRET_DIR/pgpass"
	fi
	# unix socket only while the init scripts run
	PGUSER="${PGUSER:-$POSTGRES_USER}" \
		pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
}

temp_server_stop() {
	PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -m fast -w stop
	unset PGPASSFILE
}

# psql as the superuser over the socket, stopping on the first error
process_sql() {
	local -a query_runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ -n "$POSTGRES_DB" ]; then
		query_runner+=(--dbname "$POSTGRES_DB")
	fi
	PGHOST='' PGHOSTADDR='' "${query_runner[@]}" "$@"
}

setup_db() {
	local db="$POSTGRES_DB" exists
	# connect to the maintenance database "postgres" to create $db
	exists="$(POSTGRES_DB='postgres' process_sql --tuples-only --no-align --set db="$db" <<-'EOSQL'
		SELECT 1 FROM pg_database WHERE datname = :'db' ;
	EOSQL
	)"
	if [ -z "$exists" ]; then
		POSTGRES_DB='postgres' process_sql --set db="$db" <<-'EOSQL'
			CREATE DATABASE :"db" ;
		EOSQL
		log "created database $db"
	fi
}

process_init_files() {
	local f
	for f; do
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then
					log "running $f"
					"$f"
				else
					log "sourcing $f"
					# shellcheck disable=SC1090
					. "$f"
				fi
				;;
			*.sql)     log "running $f"; process_sql -f "$f" ;;
			*.sql.gz)  log "running $f"; gunzip -c "$f" | process_sql ;;
			*.sql.xz)  log "running $f"; xzcat "$f" | process_sql ;;
			*.sql.zst) log "running $f"; zstd -dc "$f" | process_sql ;;
			*)         log "ignoring $f" ;;
		esac
	done
}

main() {
	# first arg is `-f` or `--some-option`
	if [ "${1:0:1}" = '-' ]; then
		set -- postgres "$@"
	fi

	if [ "$1" = 'postgres' ] && ! want_help "$@"; then
		if [ "$(id -u)" = '0' ]; then
			die "this image runs PostgreSQL as uid 999 and has no way to drop root; do not start it with --user 0"
		fi
		setup_env
		create_db_directories

		if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
			verify_minimum_env
			make_secret_dir
			init_database_dir
			setup_hba_conf
			temp_server_start
			setup_db
			shopt -s nullglob
			process_init_files /docker-entrypoint-initdb.d/*
			shopt -u nullglob
			temp_server_stop
			remove_secret_dir
			log "PostgreSQL init process complete; ready for start up."
		else
			log "PostgreSQL database directory appears to contain a database; skipping initialization"
		fi
		# nothing after this point needs the password
		unset POSTGRES_PASSWORD PGPASSWORD
	fi

	exec "$@"
}

main "$@"
