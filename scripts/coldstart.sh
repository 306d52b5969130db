#!/usr/bin/env bash
# Measures what grows with history on a generated log (README, "Long
# histories"): writes EVENTS events with genlog into a database of its own,
# starts `eventshop serve` on it and times the projections' catch-up (a
# rebuild of every read model from an empty start) and its peak memory;
# then restarts it and times the start to /readyz and the first order on
# the hot product; then times each role's start to /readyz against the
# running serve's stand-ins. Uses ports 18080-18084, 28017, 19092 and 11025
# and REDIS_KEY_PREFIX coldstart:; drops its database at the end unless
# KEEP=1.
#
# Usage: scripts/coldstart.sh [EVENTS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${1:-1000000}
DB=eventshop_coldstart
PG=postgres://postgres@127.0.0.1:5432
DATA=$(mktemp -d)
export DATABASE_URL="$PG/$DB?sslmode=disable" DATA_DIR="$DATA" HTTP_ADDR=127.0.0.1:18080 \
	MONGO_ADDR=127.0.0.1:28017 KAFKA_ADDR=127.0.0.1:19092 SMTP_SINK_ADDR=127.0.0.1:11025 \
	REDIS_KEY_PREFIX=coldstart: RATE_LIMIT_PER_SECOND=0 AUTH_RATE_LIMIT_PER_MINUTE=0 LOG_LEVEL=warn
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ "${KEEP:-}" = 1 ] || psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
	redis-cli --scan --pattern 'coldstart:*' | xargs -r redis-cli del >/dev/null
	rm -rf "$DATA"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }
# ready ADDR: wait for /readyz on ADDR to answer 200 (at most 10 minutes).
ready() {
	for _ in $(seq 1 60000); do
		curl -sf -o /dev/null "http://$1/readyz" && return 0
		sleep 0.01
	done
	echo "coldstart: $1 never got ready" >&2; return 1
}
# lagging: the projections of /metrics that are not caught up (or not
# reported yet).
lagging() {
	curl -s http://127.0.0.1:18080/metrics | awk '
		/^eventshop_projection_lag_events\{/ { n++; if ($2 != 0) bad++ }
		END { if (n < 4) print "unreported"; else if (bad) print bad }'
}

scripts/services.sh >/dev/null
make -s build >/dev/null
CGO_ENABLED=0 go build -o bin/genlog ./tests/genlog/genlog
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
out=$(bin/genlog -events "$EVENTS" -store "$DATABASE_URL" | tail -1)
echo "$out"
hot=$(sed -n 's/.*hot product \([0-9a-f-]*\) with.*/\1/p' <<<"$out")

# 1. The first start: every projection catches up from nothing.
t=$(now)
bin/eventshop serve >"$DATA/serve1.log" 2>&1 & PIDS+=($!); pid=$!
ready 127.0.0.1:18080
echo "first start: ready in $(since "$t") s"
while [ -n "$(lagging)" ]; do sleep 1; done
echo "first start: projections caught up with $EVENTS events in $(since "$t") s; peak memory $(awk '/VmHWM/ {print $2/1024 " MiB"}' /proc/$pid/status)"
kill -TERM "$pid"; wait "$pid" || true; PIDS=()

# 2. A restart on the caught-up log, and the first command on the hot product.
t=$(now)
bin/eventshop serve >"$DATA/serve2.log" 2>&1 & PIDS+=($!); pid=$!
ready 127.0.0.1:18080
echo "restart: serve ready in $(since "$t") s"
token=$(curl -sf -H 'Content-Type: application/json' -d '{"email":"user-10@genlog.example","password":"Genlog-Passw0rd!"}' \
	http://127.0.0.1:18080/api/auth/login | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
for which in first second; do
	t=$(now)
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		-d "{\"items\":[{\"product_id\":\"$hot\",\"quantity\":1}]}" http://127.0.0.1:18080/api/orders)
	echo "restart: $which order on the hot product answered $code in $(since "$t") s"
done

# 3. Each role alone, against the running serve's stand-ins.
export MONGO_URL=mongodb://127.0.0.1:28017 KAFKA_BROKERS=127.0.0.1:19092 SMTP_ADDR=127.0.0.1:11025 \
	JWT_SECRET=$(head -c 48 /dev/urandom | base64)
port=18081
for role in writeapi readapi projector notifier; do
	t=$(now)
	HTTP_ADDR=127.0.0.1:$port bin/eventshop "$role" >"$DATA/$role.log" 2>&1 & rpid=$!
	ready 127.0.0.1:$port
	echo "role $role: ready in $(since "$t") s"
	kill -TERM "$rpid"; wait "$rpid" || true
	port=$((port + 1))
done
