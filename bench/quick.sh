#!/usr/bin/env bash
# One round of the issue-3 figures on a fresh SQLite server (release build, loopback):
# raw argon2 verify/s, AuthenticateUser rps, GetUser p99 idle and under sign-in load,
# ListUsers latency. Run on a quiet machine; loadgen shares the cores with the server.
set -u; cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet --examples && cargo build --release --quiet
KEY=benchadminkey0123456789abcdefghijklmnopqr
D=$(mktemp -d)
DATABASE_URL="sqlite://$D/a.db?mode=rwc" TENANCY_ADMIN_KEY=$KEY target/release/tenancy serve --listen 127.0.0.1:50081 > $D/server.log 2>&1 &
S=$!; sleep 2
LG="target/release/examples/loadgen --target http://127.0.0.1:50081 --key $KEY --users 64"
pick() { grep -E '^(rpc|mode|verifications_per_s|mean_ms|rps|p50_ms|p99_ms|errors|bg_rps|bg_p99_ms|bg_errors)' | tr '\n' ' '; echo; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo -n "argon2 t2: "; target/release/examples/argon2_bench --threads 2 --duration 10 --warmup 1 | pick
echo -n "auth c8: "; $LG --rpc AuthenticateUser --concurrency 8 --duration 10 --warmup 1 | pick
echo -n "argon2 t2: "; target/release/examples/argon2_bench --threads 2 --duration 10 --warmup 1 | pick
echo -n "getuser idle: "; $LG --rpc GetUser --concurrency 4 --duration 10 --warmup 2 | pick
echo -n "getuser under auth: "; $LG --rpc GetUser --concurrency 4 --duration 10 --warmup 2 --background-rpc AuthenticateUser --background-concurrency 8 | pick
echo -n "listusers c1: "; $LG --rpc ListUsers --concurrency 1 --duration 5 --warmup 1 | pick
kill -TERM $S; wait $S; rm -rf $D
