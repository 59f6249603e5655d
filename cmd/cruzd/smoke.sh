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
cruzd_pid=
cleanup() {
  if [ -n "$cruzd_pid" ] && kill -0 "$cruzd_pid" 2>/dev/null; then kill -9 "$cruzd_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
. bench/start-cruzd.sh
start_cruzd "$tmp" || { echo "cruzd smoke: cruzd did not start"; exit 1; }
addr=$cruzd_addr
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
kill -TERM "$cruzd_pid"
rc=0
wait "$cruzd_pid" || rc=$?
cruzd_pid=
if [ "$rc" -ne 0 ]; then cat "$tmp/cruzd.log"; echo "cruzd smoke: cruzd exited $rc after SIGTERM"; exit 1; fi
echo "cruzd smoke: ok"
