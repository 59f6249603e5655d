#!/usr/bin/env bash
# cruzd against a durable redis-server under redis-benchmark, in one run.
#
#   bench/resp.sh                 # the full run (200000 requests per test)
#   N=20000 bench/resp.sh         # shorter
#   CRUZD_CACHE_BYTES=4GiB bench/resp.sh   # cruzd flags via CRUZD_* variables
#   PROFILE=1 bench/resp.sh       # also save a 10 s CPU profile of cruzd
#                                 # under the pipelined SET test
#   ROUNDS=5 bench/resp.sh        # 5 interleaved rounds (cruzd, redis, cruzd,
#                                 # ...): the table shows each figure's median
#                                 # and range; on a shared VM single runs of
#                                 # the same build differ by up to +-20 %
#
# Both servers are durable: cruzd fsyncs its log (group commit), redis-server
# runs with --appendonly yes --appendfsync always. Each runs
#   redis-benchmark -t set,get,hset,sadd -n N -c 50 -P 16 -r 100000 -d 100
# plus "HGET myhash element:__rand_int__" and "SISMEMBER myset
# element:__rand_int__" (the keys HSET and SADD filled), and the same with
# -P 1; TESTS="set get" runs only those. Targets: cruzd SET >= 0.8x (issue
# 20; issue 6 asked 1.0x) and GET >= 0.75x redis-server with -P 16 (issue
# 20: no worse than when it was filed; bench/journal/2026-12-07-get20.md
# says where a GET's CPU goes). A second table shows, per cruzd test, what
# its writes cost the log (from INFO before and after the test): afterimage
# and checkpoint-image bytes per request, requests per commit, automatic
# checkpoints and the commits they held back (see
# bench/journal/2026-12-07-resp20.md: automatic checkpoints are a third of
# cruzd's CPU per SET here). Installs redis-tools and redis-server with
# apt-get if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}
C=${C:-50}
R=${R:-100000}
D=${D:-100}
ROUNDS=${ROUNDS:-1}
TESTS=${TESTS:-set get hset hget sadd sismember}
case $ROUNDS in '' | *[!0-9]* | 0) echo "ROUNDS must be a positive integer, not '$ROUNDS'" >&2; exit 2 ;; esac

if ! command -v redis-benchmark >/dev/null || ! command -v redis-server >/dev/null; then
  echo "installing redis-tools and redis-server" >&2
  apt-get update -qq && apt-get install -y -qq redis-tools redis-server >/dev/null
fi

tmp=$(mktemp -d)
cruzd_pid=
redis_pid=
cleanup() {
  for p in $cruzd_pid $redis_pid; do
    kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

. bench/start-cruzd.sh
start_cruzd "$tmp"
cruzd_port=${cruzd_addr##*:}

# A free port for redis-server.
redis_port=
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 30000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then redis_port=$p; break; fi
done
[ -n "$redis_port" ] || { echo "no free port" >&2; exit 1; }
mkdir -p "$tmp/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --appendonly yes --appendfsync always --save '' \
  --dir "$tmp/redis" --daemonize no --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 1 200); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.05
done

# bench PORT PIPELINE PID [cruzd]: prints "SET <rps> <p50> <cpu>" and "GET ..."
# lines, cpu being the server's (PID's) CPU time per request in
# microseconds; with "cruzd", each line goes on with the log figures of
# cruzd_log.
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# cruzd_info PORT: commits, afterimage_bytes, checkpoint_bytes,
# auto_checkpoints and checkpoint_commit_waits from cruzd's INFO, in that order.
cruzd_info() {
  { redis-cli -p "$1" info cruzdb; redis-cli -p "$1" info checkpoint; } | tr -d '\r' | awk -F: '
    $1 == "commits" { c = $2 } $1 == "afterimage_bytes" { a = $2 } $1 == "checkpoint_bytes" { b = $2 }
    $1 == "auto_checkpoints" { k = $2 } $1 == "checkpoint_commit_waits" { w = $2 }
    END { print c + 0, a + 0, b + 0, k + 0, w + 0 }'
}
# cruzd_log BEFORE AFTER N: afterimage bytes per request, checkpoint bytes
# per request, requests per commit, automatic checkpoints, commits held back.
cruzd_log() {
  awk -v b="$1" -v a="$2" -v n="$3" 'BEGIN {
    split(b, x, " "); split(a, y, " ")
    c = y[1] - x[1]
    printf "%.0f %.0f %s %d %d\n", (y[2] - x[2]) / n, (y[3] - x[3]) / n, (c > 0 ? sprintf("%.0f", n / c) : "-"), y[4] - x[4], y[5] - x[5]
  }'
}
bench() {
  local t before after info0=
  for t in $TESTS; do
    local args
    case $t in
      hget) args=(HGET myhash 'element:__rand_int__') ;;
      sismember) args=(SISMEMBER myset 'element:__rand_int__') ;;
      *) args=(-t "$t") ;;
    esac
    [ "${4:-}" = cruzd ] && info0=$(cruzd_info "$1")
    before=$(cpu_ticks "$3")
    printf '%s ' "$(tr a-z A-Z <<<"$t")"
    redis-benchmark -h 127.0.0.1 -p "$1" -n "$N" -c "$C" -P "$2" -r "$R" -d "$D" -q "${args[@]}" 2>&1 |
      tr '\r' '\n' | grep 'requests per second' | tail -n 1 |
      sed -E 's/.*: ([0-9.]+) requests per second.*p50=([0-9.]+).*/\1 \2/; s/.*: ([0-9.]+) requests per second.*/\1 -/' | tr '\n' ' '
    after=$(cpu_ticks "$3")
    awk -v d="$((after - before))" -v t="$tck" -v n="$N" 'BEGIN { printf "%.1f", d * 1e6 / t / n }'
    if [ -n "$info0" ]; then
      printf ' %s' "$(cruzd_log "$info0" "$(cruzd_info "$1")" "$N")"
    fi
    echo
  done
}

echo "redis-benchmark ($TESTS) -n $N -c $C -r $R -d $D; cruzd on 127.0.0.1:$cruzd_port, redis-server $(redis-server --version | awk '{print $3}') (appendfsync always) on 127.0.0.1:$redis_port"
declare -A rps p50 cpu aib ckb rpc ckn ckw
# Each round runs both servers, so slow spells of the machine hit both. Each
# test is its own redis-benchmark run, so that the server's CPU time can be
# charged to it.
for round in $(seq 1 "$ROUNDS"); do
  for P in 16 1; do
    if [ "$round" = 1 ] && [ "$P" = 16 ] && [ -n "${PROFILE:-}" ] && [ -n "$admin_addr" ]; then
      curl -s -o "$tmp/cpu.pprof" "http://$admin_addr/debug/pprof/profile?seconds=10" &
      prof_pid=$!
    fi
    while read -r t v l u ai cb rc kn kw; do
      rps[cruzd,$P,$t]+="$v "; p50[cruzd,$P,$t]+="$l "; cpu[cruzd,$P,$t]+="$u "
      aib[$P,$t]+="$ai "; ckb[$P,$t]+="$cb "; rpc[$P,$t]+="$rc "; ckn[$P,$t]+="$kn "; ckw[$P,$t]+="$kw "
    done < <(bench "$cruzd_port" "$P" "$cruzd_pid" cruzd)
    if [ -n "${prof_pid:-}" ]; then
      wait "$prof_pid" || true
      prof_pid=
      mkdir -p bench/results
      cp "$tmp/cpu.pprof" bench/results/cruzd-resp-cpu.pprof
      echo "CPU profile: bench/results/cruzd-resp-cpu.pprof (go tool pprof -top $tmp/cruzd bench/results/cruzd-resp-cpu.pprof)"
      go tool pprof -top -nodecount=25 "$tmp/cruzd" "$tmp/cpu.pprof" 2>/dev/null | head -35 || true
    fi
    while read -r t v l u; do rps[redis,$P,$t]+="$v "; p50[redis,$P,$t]+="$l "; cpu[redis,$P,$t]+="$u "; done < <(bench "$redis_port" "$P" "$redis_pid")
  done
done

# median LIST: the median of the numbers in LIST (the lower middle one of an
# even count); range LIST: "min-max".
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }
# median_or_dash LIST: the median of the numbers in LIST, "-" if it has none.
median_or_dash() { if tr ' ' '\n' <<<"$1" | grep -q '^[0-9]'; then median "$(tr ' ' '\n' <<<"$1" | grep '^[0-9]' | tr '\n' ' ')"; else echo -; fi; }
range() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.0f-%.0f", v[1], v[NR] }'; }

printf '\n%s round(s); req/s, p50 and CPU are medians, ranges are min-max of the rounds\n' "$ROUNDS"
printf '\n| test | -P | cruzd req/s | cruzd range | cruzd p50 ms | cruzd CPU µs/req | redis-server req/s | redis range | redis p50 ms | redis CPU µs/req | cruzd / redis | target |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
for P in 16 1; do
  for t in $(tr a-z A-Z <<<"$TESTS"); do
    c=$(median "${rps[cruzd,$P,$t]:-}")
    r=$(median "${rps[redis,$P,$t]:-}")
    ratio=$(awk -v c="$c" -v r="$r" 'BEGIN { if (r > 0) printf "%.2fx", c / r; else print "-" }')
    target=-
    if [ "$P" = 16 ] && { [ "$t" = SET ] || [ "$t" = GET ]; }; then
      if [ "$t" = SET ]; then target=">= 0.8x"; else target=">= 0.75x"; fi
    fi
    printf '| %s | %s | %.0f | %s | %s | %s | %.0f | %s | %s | %s | %s | %s |\n' "$t" "$P" \
      "$c" "$(range "${rps[cruzd,$P,$t]:-}")" "$(median "${p50[cruzd,$P,$t]:-}")" "$(median "${cpu[cruzd,$P,$t]:-}")" \
      "$r" "$(range "${rps[redis,$P,$t]:-}")" "$(median "${p50[redis,$P,$t]:-}")" "$(median "${cpu[redis,$P,$t]:-}")" "$ratio" "$target"
  done
done

# What cruzd's writes cost its log, per test (medians of the rounds): bytes
# of afterimages and of checkpoint images per request (a read-only test
# writes none), requests per commit (pipelined commands of many connections
# commit together), automatic checkpoints and commits held back because the
# log outgrew them (cruzdb Stats.CheckpointWaits).
printf '\n| test | -P | afterimage B/req | checkpoint B/req | req/commit | checkpoints | commits held back |\n'
printf '|---|---|---|---|---|---|---|\n'
for P in 16 1; do
  for t in $(tr a-z A-Z <<<"$TESTS"); do
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$P" "$(median "${aib[$P,$t]:-}")" "$(median "${ckb[$P,$t]:-}")" \
      "$(median_or_dash "${rpc[$P,$t]:-}")" "$(median "${ckn[$P,$t]:-}")" "$(median "${ckw[$P,$t]:-}")"
  done
done

echo
redis-cli -p "$cruzd_port" info cruzdb | tr -d '\r' | grep -E '^(commits|aborts|intentions_appended|afterimages_written|processor_position|log_tail):' | paste -sd' ' - | sed 's/^/cruzd: /'
kill -TERM "$cruzd_pid"
wait "$cruzd_pid" || { echo "cruzd exited non-zero" >&2; exit 1; }
cruzd_pid=
kill -TERM "$redis_pid" 2>/dev/null || true
wait "$redis_pid" 2>/dev/null || true
redis_pid=
