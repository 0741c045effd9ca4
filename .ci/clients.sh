#!/usr/bin/env bash
# The client packages' smoke scenario against the release binary: builds the Python
# package (clients/python) from this checkout into a fresh venv and runs its unit
# tests, starts `tenancy serve` on a free loopback port over a fresh SQLite file, and
# runs the same scenario with clients/python/examples/smoke.py and with the Rust
# example clients/rust/examples/smoke.rs (after the Rust client's unit tests, and its
# token-verifier bench on a few thousand tokens), and builds clients/node (npm ci,
# generated TypeScript, tsc), runs its unit tests and clients/node/examples/smoke.ts.
# Each scenario ends with a session: sign-in, the access token verified offline by the
# package's verifier, refresh, revoke. Called by .ci/run after the release build;
# by hand: `cargo build --release && bash .ci/clients.sh`.
# Environment: TENANCY_BIN (default target/release/tenancy).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${TENANCY_BIN:-$ROOT/target/release/tenancy}
READY_TIMEOUT=30

fail() {
    printf 'FAIL %s\n' "$*" >&2
    exit 1
}
[ -x "$BIN" ] || fail "no server binary at $BIN (run cargo build --release)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tenancy-clients.XXXXXX")
LOG=$TMP/server.log
SERVER_PID=
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$LOG" ]; then
        echo "---- last 40 lines of the server log ($LOG) ----" >&2
        tail -n 40 "$LOG" >&2
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

echo "== Python: build and install clients/python into a fresh venv"
python3 -m venv "$TMP/venv"
PY=$TMP/venv/bin/python
"$PY" -m pip install -q --disable-pip-version-check "$ROOT/clients/python" grpcio-health-checking==1.85.1
# Run from elsewhere so the installed package, not the source tree, is imported.
(cd "$TMP" && "$PY" -m unittest discover -s "$ROOT/clients/python/tests")

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
KEY=$("$PY" -c 'import secrets; print(secrets.token_hex(20))')
echo "== starting $BIN serve on $ADDR"
env -u TENANCY_TLS_CERT -u TENANCY_TLS_KEY -u TENANCY_TLS_CLIENT_CA \
    TENANCY_ADMIN_KEY="$KEY" \
    "$BIN" serve --listen "$ADDR" --database-url "sqlite://$TMP/tenancy.db?mode=rwc" \
    </dev/null >"$LOG" 2>&1 &
SERVER_PID=$!
waited=0
until "$PY" -c '
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
with grpc.insecure_channel(sys.argv[1]) as channel:
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status
sys.exit(0 if status == health_pb2.HealthCheckResponse.SERVING else 1)' "$ADDR" 2>/dev/null; do
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited before it was SERVING"
    [ "$waited" -lt $((READY_TIMEOUT * 2)) ] || fail "the server is not SERVING after ${READY_TIMEOUT} s"
    sleep 0.5
    waited=$((waited + 1))
done

echo "== Python smoke scenario"
TENANCY_SMOKE_KEY=$KEY "$PY" "$ROOT/clients/python/examples/smoke.py" "$ADDR"

echo "== Rust: tenancy-client's unit tests, the verifier bench, the smoke scenario (clients/rust/examples/smoke.rs)"
# In release, beside the examples: `cargo test` at the root runs the server's tests only,
# and one profile and feature set builds the client's dependencies once.
cargo test --locked --release -q -p tenancy-client --lib
cargo build --locked --release -q -p tenancy-client --example smoke --example verify_bench
"$ROOT/target/release/examples/verify_bench" 5000
TENANCY_SMOKE_KEY=$KEY "$ROOT/target/release/examples/smoke" "http://$ADDR"

echo "== Node: npm ci, generate from proto/ (buf + protoc-gen-es), tsc, unit tests, smoke scenario"
(
    cd "$ROOT/clients/node"
    npm ci --no-audit --no-fund --loglevel=error
    npm run --silent build
    npm test --silent
    TENANCY_SMOKE_KEY=$KEY node dist/examples/smoke.js "http://$ADDR"
)

echo "clients: all checks passed"
