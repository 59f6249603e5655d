package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestIntrospection(t *testing.T) {
	s := testServer(t, nil)
	r := dialRaw(t, s)
	other := dialRaw(t, s)
	other.send("CLIENT SETNAME other-conn\r\n")
	other.reply()
	// CLIENT SETNAME refuses what Redis refuses, in Redis's words.
	for _, bad := range []string{`"a b"`, `"a\nb"`, `"\x7f"`} {
		r.send("CLIENT SETNAME " + bad + "\r\n")
		if got := r.reply(); got != "-"+errClientName+"\r\n" {
			t.Errorf("CLIENT SETNAME %s: %q", bad, got)
		}
	}
	r.send("CLIENT SETNAME worker-1\r\nCLIENT INFO\r\nCLIENT LIST\r\nCLIENT LIST TYPE pubsub\r\nCLIENT LIST TYPE bogus\r\n")
	if got := r.reply(); got != "+OK\r\n" {
		t.Fatal(got)
	}
	info := r.reply()
	fields := []string{"id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub", "psub", "ssub", "multi",
		"qbuf", "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp", "obl", "oll", "omem", "tot-mem", "events", "cmd", "user", "redir", "resp"}
	var re strings.Builder
	for i, f := range fields {
		if i > 0 {
			re.WriteString(" ")
		}
		re.WriteString(regexp.QuoteMeta(f) + "=[^ \n]*")
	}
	line := regexp.MustCompile(re.String())
	if !line.MatchString(info) || !strings.Contains(info, " name=worker-1 ") || !strings.Contains(info, " cmd=client ") {
		t.Fatalf("CLIENT INFO = %q", info)
	}
	list := r.reply()
	if n := len(line.FindAllString(list, -1)); n != 2 || !strings.Contains(list, " name=other-conn ") {
		t.Fatalf("CLIENT LIST shows %d clients, want 2: %q", n, list)
	}
	if got := r.reply(); got != "$0\r\n\r\n" {
		t.Fatalf("CLIENT LIST TYPE pubsub = %q", got)
	}
	if got := r.reply(); !strings.HasPrefix(got, "-ERR Unknown client type") {
		t.Fatalf("CLIENT LIST TYPE bogus = %q", got)
	}
	// INFO: every section, with Redis's field names.
	r.send("SET k v EX 100\r\nINFO\r\n")
	r.reply()
	all := r.reply()
	for _, want := range []string{
		"# Server\r\n", "redis_version:", "run_id:", "tcp_port:", "uptime_in_seconds:",
		"# Clients\r\n", "connected_clients:2", "blocked_clients:0",
		"# Memory\r\n", "used_memory:", "used_memory_human:", "maxmemory_policy:noeviction",
		"# Persistence\r\n", "loading:0", "aof_enabled:1",
		"# Stats\r\n", "total_connections_received:", "total_commands_processed:", "expired_keys:0",
		"# CPU\r\n", "used_cpu_sys:", "used_cpu_user:",
		"# Keyspace\r\n", "db0:keys=1,expires=1,avg_ttl=0",
		"# Cruzdb\r\n", "log_tail:",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("INFO lacks %q", want)
		}
	}
	r.send("INFO cpu\r\n")
	if got := r.reply(); !strings.Contains(got, "# CPU") || strings.Contains(got, "# Server") {
		t.Errorf("INFO cpu = %q", got)
	}
	// COMMAND COUNT, INFO and DOCS cover the commands cruzd has.
	r.send("COMMAND COUNT\r\nCOMMAND INFO hset nosuch\r\nCOMMAND DOCS sadd\r\n")
	if got := r.reply(); got != ":"+itoa(len(s.specs))+"\r\n" {
		t.Errorf("COMMAND COUNT = %q, want %d", got, len(s.specs))
	}
	if got := r.reply(); !strings.HasPrefix(got, "*2\r\n*6\r\n$4\r\nhset\r\n:-4\r\n") || !strings.HasSuffix(got, "*-1\r\n") {
		t.Errorf("COMMAND INFO hset nosuch = %q", got)
	}
	if got := r.reply(); !strings.Contains(got, "$4\r\nsadd\r\n") || !strings.Contains(got, "$5\r\ngroup\r\n$3\r\nset\r\n") {
		t.Errorf("COMMAND DOCS sadd = %q", got)
	}
}
