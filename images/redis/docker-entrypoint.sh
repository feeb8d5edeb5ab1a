#!/bin/sh
# Entrypoint of the mlstack Redis recipe; mirrors the official image's one.
set -e

# first arg is `-f` or `--some-option`, or first arg is `something.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ]; then
	if [ "$(id -u)" = '0' ]; then
		echo "docker-entrypoint.sh: this image runs redis-server as uid 999; do not start it with --user 0" >&2
		exit 1
	fi

	# The official image compiles in `protected-mode no` (ports are only
	# reachable when published). Debian's default is `yes`. Reproduce the
	# official default unless the command line or the given config file
	# (first *.conf argument) sets protected-mode itself.
	want_pm=1
	conf=
	for arg in "$@"; do
		case "$arg" in
			--protected-mode) want_pm= ;;
			*.conf) [ -n "$conf" ] || conf="$arg" ;;
		esac
	done
	if [ -n "$want_pm" ] && [ -n "$conf" ] && [ -r "$conf" ] \
		&& grep -Eqi '^[[:space:]]*protected-mode[[:space:]]' "$conf"; then
		want_pm=
	fi
	if [ -n "$want_pm" ]; then
		set -- "$@" --protected-mode no
	fi
fi

# set an appropriate umask (if one isn't set already), as the official image does
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
