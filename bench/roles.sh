#!/usr/bin/env bash
# Issue 29's ratios in one run, on a fresh release server (SQLite in a temp dir):
# CheckAccess through a role / Health, BatchCheckAccess of 20 checks / Health, and
# ListAccessibleResources (first page, a user with 1,000 memberships) / GetUser. Same
# h2load shape as bench/ratios.sh (-t 1 -c 4 -m 16), Health measured before and after.
#
#   bash bench/roles.sh        # ROLES_DURATION (seconds per figure, default 10)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION=${ROLES_DURATION:-10}
MEMBERSHIPS=${ROLES_MEMBERSHIPS:-1000}
KEY=rolesbenchadminkey0123456789abcdefghijklm
PORT=50094
URL="http://127.0.0.1:$PORT"
cargo build --release --quiet --bin tenancy --example roles_bodies
WORK=$(mktemp -d)
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2> /dev/null || true; wait "$SERVER" 2> /dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
DATABASE_URL="sqlite://$WORK/bench.db" TENANCY_ADMIN_KEY=$KEY RUST_LOG=warn \
  target/release/tenancy serve --listen "127.0.0.1:$PORT" > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 150); do
  if (exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2> /dev/null; then break; fi
  sleep 0.2
done
timeout 900 target/release/examples/roles_bodies --target "$URL" --key "$KEY" \
  --out "$WORK" --memberships "$MEMBERSHIPS" >&2
# Each body must be answered OK (h2load counts any HTTP 200, gRPC errors included).
status() { # path body
  nghttp -v -d "$WORK/$2" -H ':method: POST' -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "authorization: Bearer $KEY" "$URL$1" 2>&1 | awk '/recv.*grpc-status:/ { print $NF; exit }'
}
for pair in UserService/CheckAccess:check_access_role.bin UserService/BatchCheckAccess:batch20.bin \
  UserService/ListAccessibleResources:list_accessible.bin UserService/GetUser:get_user.bin; do
  code=$(status "/tenancy.v1.${pair%%:*}" "${pair##*:}")
  [ "$code" = 0 ] || { echo "${pair%%:*} answered grpc-status $code" >&2; exit 1; }
done
rps() { # path body
  h2load -t 1 -c 4 -m 16 -D "$DURATION" --warm-up-time 2 -d "$WORK/$2" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $KEY" \
    "$URL$1" 2>&1 | awk '/^finished in/ { gsub(",", ""); print $4 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
h1=$(rps /grpc.health.v1.Health/Check health.bin)
ca=$(rps /tenancy.v1.UserService/CheckAccess check_access_role.bin)
batch=$(rps /tenancy.v1.UserService/BatchCheckAccess batch20.bin)
list=$(rps /tenancy.v1.UserService/ListAccessibleResources list_accessible.bin)
getuser=$(rps /tenancy.v1.UserService/GetUser get_user.bin)
h2=$(rps /grpc.health.v1.Health/Check health.bin)
health=$(awk -v a="$h1" -v b="$h2" 'BEGIN { printf "%.1f", (a + b) / 2 }')
printf 'Health/Check req/s: %s (before %s, after %s)\n' "$health" "$h1" "$h2"
printf 'CheckAccess via role / Health:            %s / %s = %s (goal >= 0.7)\n' "$ca" "$health" "$(ratio "$ca" "$health")"
printf 'BatchCheckAccess(20) / Health:            %s / %s = %s (goal >= 0.25)\n' "$batch" "$health" "$(ratio "$batch" "$health")"
printf 'ListAccessibleResources p1 / GetUser:     %s / %s = %s (goal >= 0.5)\n' "$list" "$getuser" "$(ratio "$list" "$getuser")"
