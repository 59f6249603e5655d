# Sourced by bench/resp.sh, bench/bigdb.sh and cmd/cruzd/smoke.sh (from the
# repository root): builds cruzd into $1 and starts it on free ports with its
# data in $1/cruzd-data, extra flags from the rest of the arguments.
# Sets cruzd_pid, cruzd_addr (RESP) and admin_addr; its log is $1/cruzd.log.
# The caller's EXIT trap should kill "$cruzd_pid".
start_cruzd() {
  local dir=$1; shift
  go build -o "$dir/cruzd" ./cmd/cruzd
  "$dir/cruzd" serve --data-dir "$dir/cruzd-data" --listen-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
    --log-format json "$@" 2>"$dir/cruzd.log" &
  cruzd_pid=$!
  cruzd_addr= admin_addr=
  for _ in $(seq 1 200); do
    cruzd_addr=$(sed -n 's/.*"msg":"resp listening","addr":"\([^"]*\)".*/\1/p' "$dir/cruzd.log" 2>/dev/null)
    admin_addr=$(sed -n 's/.*"msg":"admin listening","addr":"\([^"]*\)".*/\1/p' "$dir/cruzd.log" 2>/dev/null)
    [ -n "$cruzd_addr" ] && [ -n "$admin_addr" ] && return 0
    kill -0 "$cruzd_pid" 2>/dev/null || break
    sleep 0.05
  done
  cat "$dir/cruzd.log" >&2
  echo "cruzd did not start" >&2
  return 1
}
