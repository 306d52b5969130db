#!/usr/bin/env bash
# Makes sure the services eventshop's tests and local run need are up:
# PostgreSQL on 127.0.0.1:5432 (trust auth for user postgres) and Redis on
# 127.0.0.1:6379. Starts them if installed but stopped; on Debian as root,
# installs them if absent; otherwise says what to install and fails.
# Also installs kcat, the outside Kafka client some tests read the
# published topics with, and nginx, which the gateway tests run
# deploy/nginx's configuration on, when it can (best effort: without them
# those tests skip).
# Set EVENTSHOP_SKIP_SERVICES=1 to manage them yourself.
#
# Usage: services.sh [--cc] [DATABASE...]
#   --cc       also make sure a C compiler is there (the race detector needs cgo)
#   DATABASE   create these databases for the local run if missing
set -euo pipefail

[ "${EVENTSHOP_SKIP_SERVICES:-}" = 1 ] && exit 0

PGHOST=127.0.0.1 PGPORT=5432 REDIS_PORT=6379

say() { echo "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
	for _ in $(seq 1 100); do
		port_open "$1" && return 0
		sleep 0.1
	done
	return 1
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

apt_updated=
apt_install() {
	if [ -z "$apt_updated" ]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
		apt_updated=1
	fi
	say "installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

postgres_up() {
	port_open "$PGPORT" && return 0
	if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
		if ! can_install; then
			say "PostgreSQL is not running on $PGHOST:$PGPORT and is not installed."
			say "Install PostgreSQL 15+ with trust auth for user postgres on 127.0.0.1, or point TEST_DATABASE_URL/DATABASE_URL at a server."
			exit 1
		fi
		apt_install postgresql
		local hba
		hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n1)
		# A server this script installed is a local development server:
		# trust connections from this machine, as the defaults expect.
		sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/; s/^(local\s+all\s+(postgres|all)\s+)\S+/\1trust/' "$hba"
	fi
	local version
	version=$(ls /etc/postgresql | sort -V | tail -n1)
	say "starting PostgreSQL $version"
	if command -v pg_ctlcluster >/dev/null; then
		# The package may have started the cluster before the trust
		# edit above: reload it, or start it if it is down.
		pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null ||
			pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
	fi
	wait_port "$PGPORT" || { say "PostgreSQL did not come up on $PGHOST:$PGPORT"; exit 1; }
}

redis_up() {
	port_open "$REDIS_PORT" && return 0
	if ! command -v redis-server >/dev/null; then
		if ! can_install; then
			say "Redis is not running on 127.0.0.1:$REDIS_PORT and is not installed. Install Redis 7."
			exit 1
		fi
		apt_install redis-server
	fi
	say "starting Redis"
	mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
	redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
		--dir /var/lib/redis --logfile /var/log/redis/eventshop.log
	wait_port "$REDIS_PORT" || { say "Redis did not come up on 127.0.0.1:$REDIS_PORT"; exit 1; }
}

# ensure_db NAME creates a database for the local run if it is missing.
ensure_db() {
	command -v psql >/dev/null || return 0
	if ! psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'" | grep -q 1; then
		say "creating database $1"
		psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -qc "CREATE DATABASE $1"
	fi
}

# cc_up makes sure cgo has a C compiler, which `go test -race` needs.
cc_up() {
	local cc
	cc=$(go env CC 2>/dev/null || true)
	cc=${cc%% *} # CC may carry arguments, as in "ccache gcc"
	command -v "${cc:-gcc}" >/dev/null && return 0
	if ! can_install; then
		say "no C compiler (${cc:-gcc}) found: the race detector needs one. Install gcc."
		exit 1
	fi
	apt_install gcc libc6-dev
}

# kcat_up installs kcat when it is missing and can be installed; it never
# fails the script.
kcat_up() {
	command -v kcat >/dev/null && return 0
	if ! can_install; then
		say "kcat not found: the tests that read Kafka topics with it will skip (install kcat to run them)"
		return 0
	fi
	apt_install kcat || say "could not install kcat: the tests that read Kafka topics with it will skip"
}

# nginx_up installs nginx when it is missing and can be installed; it never
# fails the script. The tests start nginx themselves, on a port and a
# directory of their own: the package's service is not started here
# (RUNLEVEL=1 keeps invoke-rc.d from starting it where there is no systemd).
nginx_up() {
	if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
		return 0
	fi
	if ! can_install; then
		say "nginx not found: the gateway tests will skip (install nginx to run them)"
		return 0
	fi
	RUNLEVEL=1 apt_install nginx || RUNLEVEL=1 apt_install nginx-light ||
		say "could not install nginx: the gateway tests will skip"
}

databases=()
for arg in "$@"; do
	case "$arg" in
	--cc) cc_up ;;
	*) databases+=("$arg") ;;
	esac
done
postgres_up
redis_up
kcat_up
nginx_up
for db in ${databases[@]+"${databases[@]}"}; do ensure_db "$db"; done
