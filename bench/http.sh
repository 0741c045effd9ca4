#!/usr/bin/env bash
# HTTP/JSON (issue 30), each figure a ratio measured in this run on one fresh release
# server (SQLite in a temp dir): GET /v1/customers/{id} over HTTP/1.1 keep-alive ÷
# GET /.well-known/jwks.json on the same server (h2load --h1, 16 connections), in
# alternated rounds; and gRPC GetCustomer ÷ Health/Check (h2load, HTTP/2, the shape of
# bench/ratios.sh) for comparison with the gRPC figures.
#
#   bash bench/http.sh          # HTTP_ROUNDS (5), HTTP_SECONDS per h1 run (5, after a
#                               # 1 s warm-up; a fixed request count ended the JWKS
#                               # runs in under half a second, too short to be steady)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${HTTP_ROUNDS:-5}
SECONDS_PER_RUN=${HTTP_SECONDS:-5}
KEY=httpbenchadminkey0123456789abcdefghijklm
PORT=50092
URL="http://127.0.0.1:$PORT"
for tool in h2load curl python3; do
  command -v $tool > /dev/null || { echo "http.sh: $tool is missing" >&2; exit 1; }
done
cargo build --release --quiet --bin tenancy --examples
WORK=$(mktemp -d)
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2> /dev/null || true; wait "$SERVER" 2> /dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc" TENANCY_ADMIN_KEY=$KEY RUST_LOG=warn \
  target/release/tenancy serve --listen "127.0.0.1:$PORT" > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 150); do
  curl -sf -o /dev/null "$URL/.well-known/jwks.json" && break
  sleep 0.2
done
ID=$(curl -sf -X POST "$URL/v1/customers" -H "authorization: Bearer $KEY" \
  -H 'content-type: application/json' \
  -d '{"customer": {"email": "bench@example.com", "firstName": "Ana", "lastName": "Silva", "customerType": "CUSTOMER_TYPE_PERSONAL"}, "password": "correct horse battery staple"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["customer"]["uuid"])')
h1() { # path [header]
  h2load --h1 -D "$SECONDS_PER_RUN" --warm-up-time 1 -c 16 -t 1 ${2:+-H "$2"} "$URL$1" 2>&1 |
    awk '/^finished in/ { gsub(",", ""); rps = $4 } /^status codes:/ { codes = $0 } END { print rps " " codes }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
ratios=""
for round in $(seq 1 "$ROUNDS"); do
  customer=$(h1 "/v1/customers/$ID" "authorization: Bearer $KEY")
  jwks=$(h1 /.well-known/jwks.json)
  echo "  round $round: GET /v1/customers/{id} ${customer}; GET /.well-known/jwks.json ${jwks}"
  ratios="$ratios $(ratio "${customer%% *}" "${jwks%% *}")"
done
median=$(echo "$ratios" | tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
echo "per round:$ratios"
printf '%-58s %s (goal >= 0.5)\n' "GET /v1/customers/{id} h1 / GET jwks h1 (median round)" "$median"

# gRPC on the same server: GetCustomer (by id) and Health, HTTP/2.
python3 - "$WORK" "$ID" << 'PY'
import sys
work, uuid = sys.argv[1], sys.argv[2]
def frame(payload):
    return b"\0" + len(payload).to_bytes(4, "big") + payload
# GetCustomerRequest { customer_id = 1 } (field 1, length-delimited); empty Health request.
body = uuid.encode()
open(f"{work}/get_customer.bin", "wb").write(frame(b"\x0a" + bytes([len(body)]) + body))
open(f"{work}/health.bin", "wb").write(frame(b""))
PY
grpc() { # path body
  h2load -t 1 -c 4 -m 16 -D 10 --warm-up-time 2 -d "$WORK/$2" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $KEY" \
    "$URL$1" 2>&1 | awk '/^finished in/ { gsub(",", ""); print $4 }'
}
health1=$(grpc /grpc.health.v1.Health/Check health.bin)
get=$(grpc /tenancy.v1.CustomerService/GetCustomer get_customer.bin)
health2=$(grpc /grpc.health.v1.Health/Check health.bin)
health=$(awk -v a="$health1" -v b="$health2" 'BEGIN { printf "%.1f", (a + b) / 2 }')
printf '%-58s %s / %s = %s\n' "gRPC GetCustomer / Health (HTTP/2)" "$get" "$health" "$(ratio "$get" "$health")"
