#!/usr/bin/env bash
# Smoke test of a freshly built cruzd with the real Redis tools: redis-cli
# SET/GET/INCR, a short redis-benchmark, then SIGTERM and a clean exit.
# Run by .ci/run; installs redis-tools if redis-cli is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; then
  echo "cruzd smoke: installing redis-tools"
  apt-get update -qq && apt-get install -y -qq redis-tools >/dev/null
fi
tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/cruzd" ./cmd/cruzd
"$tmp/cruzd" serve --data-dir "$tmp/data" --listen-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
  --log-format json 2>"$tmp/cruzd.log" &
pid=$!
addr=
for _ in $(seq 1 200); do
  addr=$(sed -n 's/.*"msg":"resp listening","addr":"\([^"]*\)".*/\1/p' "$tmp/cruzd.log" 2>/dev/null)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/cruzd.log"; echo "cruzd smoke: cruzd exited"; exit 1; }
  sleep 0.05
done
[ -n "$addr" ] || { cat "$tmp/cruzd.log"; echo "cruzd smoke: cruzd did not start"; exit 1; }
port=${addr##*:}
cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
expect() {
  local want=$1; shift
  local got; got=$(cli "$@")
  if [ "$got" != "$want" ]; then echo "cruzd smoke: $* gave '$got', want '$want'"; exit 1; fi
}
expect PONG PING
expect OK SET smoke:key hello
expect hello GET smoke:key
expect 1 INCR smoke:n
expect 2 INCR smoke:n
expect 12 INCRBY smoke:n 10
expect 12 GET smoke:n
bench=$(redis-benchmark -h 127.0.0.1 -p "$port" -q -t set,get -n 2000 -P 16 2>&1 | tr '\r' '\n')
echo "$bench" | grep -E '^(SET|GET): [0-9.]+ requests per second' || { echo "$bench"; echo "cruzd smoke: redis-benchmark failed"; exit 1; }
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
if [ "$rc" -ne 0 ]; then cat "$tmp/cruzd.log"; echo "cruzd smoke: cruzd exited $rc after SIGTERM"; exit 1; fi
echo "cruzd smoke: ok"
