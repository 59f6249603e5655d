#!/usr/bin/env bash
# Runs units of Redis's own Tcl test suite against a fresh cruzd each and
# prints the ok/err counts per unit.
#
#   cmd/cruzd/redis-suite.sh REDIS_DIR [unit ...]
#
# REDIS_DIR is a checkout (or export) of the Redis repository holding
# tests/ (tag 7.0.15 is what cruzd is compared with); it needs tclsh. The
# units default to those cruzd's commands cover. Tests tagged as needing
# DEBUG, replication, config changes, SAVE, RESET or a local server process
# are skipped by tag, as the suite does for any external server; so are the
# tests whose body calls a command cruzd does not serve (COMMAND LIST), found
# by scanning the unit for "r <command>" (an unknown command would end the
# whole unit with an exception). The rest run unmodified with --singledb.
# Logs and the skip lists: $OUT (default /tmp/cruzd-redis-suite).
set -euo pipefail

redis_dir=${1:?usage: $0 REDIS_DIR [unit ...]}
shift
units=("$@")
if [ ${#units[@]} -eq 0 ]; then
	units=(unit/type/string unit/type/incr unit/keyspace unit/expire unit/type/hash
		unit/type/set unit/multi unit/protocol unit/scan unit/other)
fi
[ -f "$redis_dir/tests/test_helper.tcl" ] || { echo "no tests/test_helper.tcl in $redis_dir" >&2; exit 2; }
command -v tclsh >/dev/null || { echo "tclsh not found" >&2; exit 2; }

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/cruzd-redis-suite}
mkdir -p "$out"
work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/cruzd" ./cmd/cruzd)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

tags="-needs:debug -needs:repl -needs:config-maxmemory -needs:save -needs:reset -needs:local-process -needs:other-server"
printf '%-20s %5s %5s %7s %s\n' unit ok err skipped other
total_ok=0 total_err=0
for unit in "${units[@]}"; do
	port=$(free_port)
	rm -rf "$work/data"
	"$work/cruzd" --data-dir "$work/data" --listen-addr "127.0.0.1:$port" --admin-addr "" \
		--no-sync --log-level warn 2>"$out/$(echo "$unit" | tr / _).cruzd.log" &
	pid=$!
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
		sleep 0.1
	done
	log="$out/$(echo "$unit" | tr / _).log"
	skip="$out/$(echo "$unit" | tr / _).skip"
	python3 - "$port" "$redis_dir/tests/$unit.tcl" >"$skip" <<'PY'
import re, socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"*2\r\n$7\r\nCOMMAND\r\n$4\r\nLIST\r\n")
buf = b""
while True:
    buf += s.recv(65536)
    lines = buf.split(b"\r\n")
    n = int(lines[0][1:])
    if len(lines) >= 2 * n + 2:
        break
served = {lines[2 + 2 * i].decode().lower() for i in range(n)}
client_side = {"read", "write", "flush", "close", "readraw", "deferred", "attributes", "reconnect", "channel", "blocking"}
test_re = re.compile(r'^\s*test\s+[{"](.+?)[}"]\s+\{')
cmd_re = re.compile(r'(?:^|[\s\[{])(?:r|\$rd|\$r|\$rd1|\$rd2|\$master|\$replica)\s+(?:-?\d+\s+)?([A-Za-z][A-Za-z_]*)')
name, bad = None, set()
for line in open(path, encoding="utf-8", errors="replace"):
    m = test_re.match(line)
    if m:
        name = m.group(1)
    if name and re.search(r'\bhello\s+3', line):
        bad.add(name)  # RESP3: cruzd speaks RESP2 only
    for c in cmd_re.findall(line):
        c = c.lower()
        if name and c not in served and c not in client_side:
            bad.add(name)
for n in sorted(bad):
    # A name made in a loop ("... - $enc") is skipped as a pattern.
    print("/^" + re.sub(r'\\\$\w+', '.*', re.escape(n)) + "$" if "$" in n else n)
PY
	(cd "$redis_dir" && timeout 900 tclsh tests/test_helper.tcl --host 127.0.0.1 --port "$port" \
		--singledb --single "$unit" --tags "$tags" --ignore-encoding --ignore-digest --skipfile "$skip" \
		--timeout 120 >"$log" 2>&1) || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
	sed -i 's/\x1b\[[0-9;]*m//g' "$log"
	ok=$(grep -c '^\[ok\]' "$log" || true)
	err=$(grep -c '^\[err\]' "$log" || true)
	other=$(grep -m1 -E '^\[(exception|timeout)\]|^Killing|I/O error' "$log" || true)
	skipped=$(wc -l <"$skip")
	printf '%-20s %5d %5d %7d %s\n' "$unit" "$ok" "$err" "$skipped" "$other"
	total_ok=$((total_ok + ok))
	total_err=$((total_err + err))
done
printf '%-20s %5d %5d\n' total "$total_ok" "$total_err"
echo "logs: $out"
