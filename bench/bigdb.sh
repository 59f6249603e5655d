#!/usr/bin/env bash
# cruzd with a database larger than its node cache, under redis-benchmark:
# rounds of SETs over 2M random keys with the default 256 MiB CacheBytes,
# printing per round the SETs/s, the cache's evictions and loads so far, and
# the live heap after a forced GC (the figures of bench/RESULTS.md, "A
# database larger than its cache").
#
#   bench/bigdb.sh                     # 6 rounds of 400000 SETs
#   ROUNDS=4 N=200000 bench/bigdb.sh
#   CRUZD_CACHE_BYTES=64MiB bench/bigdb.sh   # cruzd flags via CRUZD_* variables
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-6}
N=${N:-400000}
R=${R:-2000000}

command -v redis-benchmark >/dev/null || {
  echo "installing redis-tools" >&2
  apt-get update -qq && apt-get install -y -qq redis-tools >/dev/null
}
tmp=$(mktemp -d)
cruzd_pid=
cleanup() {
  [ -n "$cruzd_pid" ] && kill -9 "$cruzd_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
. bench/start-cruzd.sh
start_cruzd "$tmp"
admin=$admin_addr addr=$cruzd_addr

metric() { curl -s "http://$admin/metrics" | awk -v m="$1" '$1 == m { printf "%.0f", $2 }'; }
echo "| round | SETs/s | evictions | node loads | live heap MB |"
echo "|---|---:|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  rps=$(redis-benchmark -h 127.0.0.1 -p "${addr##*:}" -t set -n "$N" -c 50 -P 16 -r "$R" -d 100 -q 2>&1 |
    tr '\r' '\n' | awk '/requests per second/ { print $2 }' | tail -1)
  curl -s -o /dev/null "http://$admin/debug/pprof/heap?gc=1" # forces a GC
  heap=$(metric go_memstats_heap_alloc_bytes)
  echo "| $round | $rps | $(metric cruzdb_node_evictions_total) | $(metric cruzdb_node_loads_total) | $((heap / 1000000)) |"
done
kill -TERM "$cruzd_pid"
wait "$cruzd_pid" || { echo "cruzd exited non-zero" >&2; exit 1; }
cruzd_pid=
