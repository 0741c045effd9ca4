#!/usr/bin/env bash
# Write throughput on PostgreSQL (issue 17) and the NATS relay (issue 18), each figure
# a ratio measured in this run: CreateUser (no password) and CreateCustomer at 16
# callers ÷ pgbench's plain INSERT of a row of the same shape (a copy of the table with
# its indexes, in the same database), on one instance and on two instances sharing the
# database; the visibility lag (a create's answer to its event's arrival on a
# StreamEvents stream) p99 under that load; SQLite's CreateUser rate; the relay's
# throughput on a backlog of 100,000 events and its lag under the write load.
#
#   bash bench/writes.sh
#
# Knobs: WRITES_DURATION (seconds per measurement, 10), WRITES_DB_CONNECTIONS (per
# instance, 34: half serve point reads, so 17 write connections for 16 callers),
# WRITES_SERVER (the server binary, target/release/tenancy: point it at an older
# build to compare before and after with the same load generator),
# WRITES_BACKLOG (relay backlog, 100000; 0 skips the relay), WRITES_PG_URL
# (postgres://postgres@127.0.0.1:5432), WRITES_NATS_URL (nats://127.0.0.1:4222).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${WRITES_DURATION:-10}
CONNECTIONS=${WRITES_DB_CONNECTIONS:-34}
BACKLOG=${WRITES_BACKLOG:-100000}
PG_ROOT=${WRITES_PG_URL:-postgres://postgres@127.0.0.1:5432}
NATS_URL=${WRITES_NATS_URL:-nats://127.0.0.1:4222}
KEY=writesadminkey0123456789abcdefghijklmnop
SERVER_BIN=${WRITES_SERVER:-target/release/tenancy}
MASTER_KEY=$(head -c 32 /dev/urandom | base64)
PORT_A=50095
PORT_B=50096
METRICS_PORT=50097
DB="tenancy_writes_$$"

for tool in pgbench psql curl; do
  command -v $tool > /dev/null || { echo "writes.sh: $tool is missing" >&2; exit 1; }
done
echo "building (release)..." >&2
cargo build --release --quiet --bin tenancy --examples

WORK=$(mktemp -d)
SERVERS=()
cleanup() {
  stop_servers
  psql "$PG_ROOT/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" > /dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

stop_servers() {
  for pid in "${SERVERS[@]}"; do
    kill -TERM "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  done
  SERVERS=()
}

start_server() { # port database-url log [extra flags...]
  local port=$1 url=$2 log=$3
  shift 3
  DATABASE_URL="$url" TENANCY_ADMIN_KEY=$KEY TENANCY_MASTER_KEY=$MASTER_KEY RUST_LOG=info \
    "$SERVER_BIN" serve --listen "127.0.0.1:$port" \
    --db-max-connections "$CONNECTIONS" "$@" > "$log" 2>&1 &
  SERVERS+=($!)
  for _ in $(seq 1 150); do
    if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then return 0; fi
    sleep 0.2
  done
  cat "$log" >&2
  echo "server on $port did not listen within 30 s" >&2
  exit 1
}

field() { awk -v k="$1" -F': ' '$1 == k { print $2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }
figure() { printf '%-62s %10s / %-10s = %-7s (goal %s)\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "$4"; }
loadgen() { # port rpc concurrency [flags...]
  local port=$1 rpc=$2 c=$3
  shift 3
  timeout 600 target/release/examples/loadgen --target "http://127.0.0.1:$port" --key "$KEY" \
    --rpc "$rpc" --concurrency "$c" --duration "$DURATION" --warmup 2 "$@"
}
pgbench_insert() { # table script-file
  pgbench -n -c 16 -j 2 -T "$DURATION" -f "$2" "$PG_ROOT/$DB" 2>&1 | awk '/^tps = / { print $3; exit }'
}

psql "$PG_ROOT/postgres" -qAtc "CREATE DATABASE $DB" > /dev/null
URL="$PG_ROOT/$DB"
echo "== PostgreSQL $(psql "$URL" -qAtc 'show server_version'), $CONNECTIONS connections per instance, load $(cut -d' ' -f1-3 /proc/loadavg)"

# One instance.
start_server $PORT_A "$URL" "$WORK/a.log"
loadgen $PORT_A CreateUser 16 --event-lag > "$WORK/u1" &
other=$!
# What the database's sessions wait on meanwhile (what serialises writes shows here).
sleep 3
for _ in $(seq 1 $((DURATION * 4))); do
  psql "$URL" -qAtc "SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, '-')
    FROM pg_stat_activity WHERE datname = current_database() AND state = 'active'
    AND pid <> pg_backend_pid()" >> "$WORK/waits" || true
  sleep 0.2
done
wait $other
loadgen $PORT_A CreateCustomer 16 --event-lag > "$WORK/c1"
u1=$(field rps < "$WORK/u1")
c1=$(field rps < "$WORK/c1")
echo "  one instance: CreateUser $u1/s (p99 $(field p99_ms < "$WORK/u1") ms, errors $(field errors < "$WORK/u1")), visibility lag p50 $(field event_lag_p50_ms < "$WORK/u1") ms p99 $(field event_lag_p99_ms < "$WORK/u1") ms over $(field event_lag_events < "$WORK/u1") events"
echo "  wait events of active sessions under CreateUser c16 (samples): $(sort "$WORK/waits" | uniq -c | sort -rn | head -8 | awk '{ printf "%s %s; ", $1, $2 }')"
echo "  one instance: CreateCustomer $c1/s (p99 $(field p99_ms < "$WORK/c1") ms, errors $(field errors < "$WORK/c1")), visibility lag p99 $(field event_lag_p99_ms < "$WORK/c1") ms"

# Two instances on the database, 8 callers each.
start_server $PORT_B "$URL" "$WORK/b.log"
loadgen $PORT_A CreateUser 8 --event-lag > "$WORK/u2a" &
other=$!
loadgen $PORT_B CreateUser 8 > "$WORK/u2b"
wait $other
u2=$(sum "$(field rps < "$WORK/u2a")" "$(field rps < "$WORK/u2b")")
loadgen $PORT_A CreateCustomer 8 > "$WORK/c2a" &
other=$!
loadgen $PORT_B CreateCustomer 8 > "$WORK/c2b"
wait $other
c2=$(sum "$(field rps < "$WORK/c2a")" "$(field rps < "$WORK/c2b")")
echo "  two instances: CreateUser $u2/s, visibility lag on A p99 $(field event_lag_p99_ms < "$WORK/u2a") ms; CreateCustomer $c2/s"
stop_servers

# The plain INSERTs, same shape: copies of the tables with their indexes.
psql "$URL" -qAtc "CREATE TABLE bench_users (LIKE users INCLUDING ALL);
  CREATE TABLE bench_customers (LIKE customers INCLUDING ALL)" > /dev/null
cat > "$WORK/users.sql" << 'SQL'
INSERT INTO bench_users (id, email, first_name, last_name, first_name_lower, last_name_lower,
  language, status, create_time, update_time, revision)
VALUES (gen_random_uuid(), 'pg-' || gen_random_uuid() || '@example.com', 'Ana', 'Silva', 'ana',
  'silva', 'en', 'ACTIVE', 1, 1, 1);
SQL
cat > "$WORK/customers.sql" << 'SQL'
\set n random(1, 1000000000)
INSERT INTO bench_customers (id, tenant_id, customer_key, customer_prefix, status, email,
  first_name, last_name, company_name, first_name_lower, last_name_lower, company_name_lower,
  customer_type, subdomain, language, delinquent, allowed_domains_origins,
  allowed_domains_registration, settings, metadata, limits, addresses, telephones,
  legal_documents, owner_user_id, create_time, update_time, revision)
VALUES (gen_random_uuid(), '', 'k' || gen_random_uuid(), 'p' || :n, 'ACTIVE',
  'pg-' || gen_random_uuid() || '@example.com', 'Load', 'Generator', '', 'load', 'generator',
  '', 'PERSONAL', 's' || gen_random_uuid(), 'en', false, '[]', '[]', '{}', '{}', '{}', '[]',
  '[]', '[]', gen_random_uuid(), 1, 1, 1);
SQL
pu=$(pgbench_insert bench_users "$WORK/users.sql")
pc=$(pgbench_insert bench_customers "$WORK/customers.sql")
echo "  pgbench -n -c 16 -j 2 -T $DURATION plain INSERT: users shape $pu tps, customers shape $pc tps"

figure "[postgres] CreateUser 1 instance / plain INSERT" "$u1" "$pu" ">= 0.5"
figure "[postgres] CreateUser 2 instances / plain INSERT" "$u2" "$pu" ">= the 1-instance figure"
figure "[postgres] CreateCustomer 1 instance / plain INSERT" "$c1" "$pc" "-"
figure "[postgres] CreateCustomer 2 instances / plain INSERT" "$c2" "$pc" "-"
figure "[postgres] CreateUser 2 instances / 1 instance" "$u2" "$u1" ">= 1"
echo "[postgres] visibility lag p99 under CreateUser c16: $(field event_lag_p99_ms < "$WORK/u1") ms (goal <= 50)"

# SQLite, for comparison.
start_server $PORT_A "sqlite://$WORK/writes.db?mode=rwc" "$WORK/s.log"
loadgen $PORT_A CreateUser 16 --event-lag > "$WORK/s1"
echo "[sqlite] CreateUser c16: $(field rps < "$WORK/s1")/s, visibility lag p99 $(field event_lag_p99_ms < "$WORK/s1") ms"
stop_servers

if [ "$BACKLOG" -gt 0 ]; then
  head=$(psql "$URL" -qAtc "SELECT last_sequence FROM event_log_state")
  start_server $PORT_A "$URL" "$WORK/a.log"
  if [ "$head" -lt "$BACKLOG" ]; then
    timeout 1200 target/release/examples/loadgen --target "http://127.0.0.1:$PORT_A" --key "$KEY" \
      --rpc CreateUser --concurrency 16 --warmup 0 --duration 1200 \
      --requests $((BACKLOG - head)) > "$WORK/seed"
  fi
  stop_servers
  head=$(psql "$URL" -qAtc "SELECT last_sequence FROM event_log_state")
  stream="BENCH_WRITES_$$"
  start_server $PORT_A "$URL" "$WORK/r.log" --events-nats-url "$NATS_URL" \
    --events-nats-stream "$stream" --events-nats-subject-prefix "bench.writes$$" \
    --metrics-listen "127.0.0.1:$METRICS_PORT"
  started=$(date +%s.%N)
  acked=0
  while [ "$acked" -lt "$head" ]; do
    acked=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" |
      awk '/^tenancy_relay_acknowledged_sequence / { print int($2) }')
    acked=${acked:-0}
    awk -v s="$started" -v n="$(date +%s.%N)" 'BEGIN { exit !(n - s > 600) }' &&
      { echo "the relay did not catch up within 600 s ($acked of $head)" >&2; break; }
    sleep 0.1
  done
  took=$(awk -v s="$started" -v n="$(date +%s.%N)" 'BEGIN { printf "%.2f", n - s }')
  echo "[relay] backlog of $head events published and acknowledged in $took s (server start included): $(awk -v h="$head" -v t="$took" 'BEGIN { printf "%.0f", h / t }') events/s"
  # Lag under the write load: the gauge sampled every 100 ms.
  loadgen $PORT_A CreateUser 16 > "$WORK/rl" &
  other=$!
  : > "$WORK/lag"
  end=$((SECONDS + DURATION + 2))
  while [ $SECONDS -lt $end ]; do
    curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" |
      awk '/^tenancy_relay_lag_events / { print int($2) }' >> "$WORK/lag"
    sleep 0.1
  done
  wait $other
  echo "[relay] under CreateUser c16 ($(field rps < "$WORK/rl")/s): relay lag in events, p50 $(sort -n "$WORK/lag" | awk '{ v[NR] = $1 } END { print v[int(NR * 0.5) + 1] }'), p99 $(sort -n "$WORK/lag" | awk '{ v[NR] = $1 } END { i = int(NR * 0.99) + 1; if (i > NR) i = NR; print v[i] }') over $(wc -l < "$WORK/lag") samples"
  stop_servers
fi
