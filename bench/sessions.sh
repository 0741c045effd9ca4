#!/usr/bin/env bash
# Sessions and the second factor (issues 27 and 28), each figure a ratio measured in
# this run on a fresh release server:
#   - CreateSession ÷ raw argon2id verification at the server's parameters (rounds
#     alternate, each sign-in round divided by the mean of the argon2 runs around it);
#   - CreateSession for users with TOTP ÷ without (same rounds);
#   - RefreshSession at 16 callers ÷ pgbench's UPDATE of one row by primary key in a
#     copy of the sessions table, 16 clients (PostgreSQL), and SQLite's rate;
#   - RSS after 10,000 sessions created and 10,000 refreshes, then again after as many
#     more (cheap argon2 parameters there: the figure is about what sessions keep).
#
#   bash bench/sessions.sh
#
# Knobs: SESSIONS_DURATION (seconds per measurement, 10), SESSIONS_ROUNDS (sign-in
# rounds, 3), SESSIONS_PG_URL (postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${SESSIONS_DURATION:-10}
ROUNDS=${SESSIONS_ROUNDS:-3}
PG_ROOT=${SESSIONS_PG_URL:-postgres://postgres@127.0.0.1:5432}
KEY=sessionsadminkey0123456789abcdefghijklmn
PORT=50098
DB="tenancy_sessions_$$"
MASTER_KEY=$(head -c 32 /dev/urandom | base64)
# Every sign-in of a TOTP round uses a fresh user (a code is accepted once per step).
TOTP_USERS=$((DURATION * 150 + 300))

for tool in pgbench psql; do
  command -v $tool > /dev/null || { echo "sessions.sh: $tool is missing" >&2; exit 1; }
done
echo "building (release)..." >&2
cargo build --release --quiet --bin tenancy --examples

WORK=$(mktemp -d)
SERVER=""
cleanup() {
  stop_server
  psql "$PG_ROOT/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" > /dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

stop_server() {
  if [ -n "$SERVER" ]; then
    kill -TERM "$SERVER" 2> /dev/null || true
    wait "$SERVER" 2> /dev/null || true
    SERVER=""
  fi
}

start_server() { # database-url log [extra flags...]
  local url=$1 log=$2
  shift 2
  DATABASE_URL="$url" TENANCY_ADMIN_KEY=$KEY TENANCY_MASTER_KEY="$MASTER_KEY" \
    RUST_LOG=warn target/release/tenancy serve --listen "127.0.0.1:$PORT" "$@" > "$log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 150); do
    if (exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2> /dev/null; then return 0; fi
    sleep 0.2
  done
  cat "$log" >&2
  echo "server did not listen within 30 s" >&2
  exit 1
}

field() { awk -v k="$1" -F': ' '$1 == k { print $2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
mean() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a + b) / 2 }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
figure() { printf '%-62s %10s / %-10s = %-7s (goal %s)\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "$4"; }
loadgen() { # rpc concurrency [flags...]
  local rpc=$1 c=$2
  shift 2
  timeout 900 target/release/examples/loadgen --target "http://127.0.0.1:$PORT" --key "$KEY" \
    --rpc "$rpc" --concurrency "$c" "$@"
}
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER/status"; }
argon2() { target/release/examples/argon2_bench --duration "$DURATION" --warmup 1 | field verifications_per_s; }

echo "== sign-ins on SQLite, load $(cut -d' ' -f1-3 /proc/loadavg)"
start_server "sqlite://$WORK/signin.db?mode=rwc" "$WORK/signin.log"
prev=$(argon2)
vseen=" $prev"
plain_ratios=""
totp_ratios=""
totp_vs_plain=""
for round in $(seq 1 "$ROUNDS"); do
  loadgen CreateSession 8 --users 64 --duration "$DURATION" --warmup 2 > "$WORK/cs"
  loadgen CreateSessionTotp 8 --users "$TOTP_USERS" --duration "$DURATION" --warmup 2 > "$WORK/cst"
  next=$(argon2)
  vseen="$vseen $next"
  around=$(mean "$prev" "$next")
  cs=$(field rps < "$WORK/cs")
  cst=$(field rps < "$WORK/cst")
  errors="$(field errors < "$WORK/cs")/$(field errors < "$WORK/cst")"
  echo "  round $round: CreateSession $cs/s, with TOTP $cst/s (errors $errors), argon2 around $around/s"
  plain_ratios="$plain_ratios $(ratio "$cs" "$around")"
  totp_ratios="$totp_ratios $(ratio "$cst" "$around")"
  totp_vs_plain="$totp_vs_plain $(ratio "$cst" "$cs")"
  prev=$next
done
stop_server
echo "  argon2_bench verifications/s (threads = cores):$vseen"
echo "  per round CreateSession / argon2:$plain_ratios; with TOTP / argon2:$totp_ratios; with TOTP / without:$totp_vs_plain"
printf '%-62s %s (goal >= 0.8)\n' "[sqlite] CreateSession / argon2 (median round)" "$(echo "$plain_ratios" | median)"
printf '%-62s %s (goal >= 0.95)\n' "[sqlite] CreateSession with TOTP / without (median round)" "$(echo "$totp_vs_plain" | median)"

echo "== RefreshSession"
start_server "sqlite://$WORK/refresh.db?mode=rwc" "$WORK/refresh-sqlite.log"
loadgen RefreshSession 16 --users 16 --duration "$DURATION" --warmup 2 > "$WORK/rs-sqlite"
stop_server
echo "[sqlite] RefreshSession c16: $(field rps < "$WORK/rs-sqlite")/s (p99 $(field p99_ms < "$WORK/rs-sqlite") ms, errors $(field errors < "$WORK/rs-sqlite"))"

if psql "$PG_ROOT/postgres" -qAtc "CREATE DATABASE $DB" > /dev/null 2>&1; then
  URL="$PG_ROOT/$DB"
  start_server "$URL" "$WORK/refresh-pg.log" --db-max-connections 34
  loadgen RefreshSession 16 --users 16 --duration "$DURATION" --warmup 2 > "$WORK/rs-pg"
  stop_server
  # The database's own rate for the same write: one row by primary key, 16 clients,
  # in a copy of the sessions table (its indexes too) holding 10,000 sessions.
  psql "$URL" -qAtc "CREATE TABLE bench_sessions (LIKE sessions INCLUDING ALL);
    INSERT INTO bench_sessions (id, user_id, customer_id, create_time, last_refresh_time,
      expire_time, absolute_expire_time, generation)
    SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid,
      gen_random_uuid(), NULL, 1, 1, 2, 3, 0 FROM generate_series(1, 10000) AS n" > /dev/null
  cat > "$WORK/update.sql" << 'SQL'
\set n random(1, 10000)
UPDATE bench_sessions SET generation = generation + 1, last_refresh_time = :n,
  expire_time = :n + 1, customer_id = NULL
WHERE id = ('00000000-0000-7000-8000-' || lpad(to_hex(:n), 12, '0'))::uuid;
SQL
  pu=$(pgbench -n -c 16 -j 2 -T "$DURATION" -f "$WORK/update.sql" "$URL" 2>&1 | awk '/^tps = / { print $3; exit }')
  echo "  RefreshSession c16: $(field rps < "$WORK/rs-pg")/s (p99 $(field p99_ms < "$WORK/rs-pg") ms, errors $(field errors < "$WORK/rs-pg")); pgbench -n -c 16 -j 2 UPDATE by primary key: $pu tps"
  figure "[postgres] RefreshSession c16 / pgbench UPDATE by key" "$(field rps < "$WORK/rs-pg")" "$pu" ">= 0.5"
else
  echo "[postgres] skipped: cannot create a database at $PG_ROOT"
fi

echo "== RSS (SQLite; argon2 at 1 MiB, 1 iteration, so 10,000 sign-ins take seconds)"
start_server "sqlite://$WORK/rss.db?mode=rwc" "$WORK/rss.log" --argon2-memory-kib 1024 --argon2-iterations 1
sleep 1
rss0=$(rss_mb)
rss=()
for batch in 1 2; do
  loadgen CreateSession 16 --users 64 --requests 10000 --duration 600 --warmup 0 > "$WORK/rss-cs$batch"
  loadgen RefreshSession 16 --users 16 --requests 10000 --duration 600 --warmup 0 > "$WORK/rss-rs$batch"
  sleep 3
  rss+=("$(rss_mb)")
  echo "  batch $batch: CreateSession ok $(field ok < "$WORK/rss-cs$batch"), RefreshSession ok $(field ok < "$WORK/rss-rs$batch"); RSS ${rss[-1]} MB"
done
stop_server
echo "RSS MB at start $rss0; after 10,000 sessions created + 10,000 refreshes: ${rss[0]}; after 20,000 + 20,000: ${rss[1]} (goal: no growth beyond the caches' bounds)"
