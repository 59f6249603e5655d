package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestCommandDurationsPerCommand: a pipeline mixing runs of point
// commands, an unknown command and a non-point command observes one
// duration per command of each name (runBatch reads the clock once a
// command, each duration running from the previous command's end).
func TestCommandDurationsPerCommand(t *testing.T) {
	s := testServer(t, nil)
	r := dialRaw(t, s)
	cmd := respCommand
	var p []string
	for i := range 3 {
		p = append(p, cmd("SET", fmt.Sprint("k", i), "v"))
	}
	for i := range 16 {
		p = append(p, cmd("GET", fmt.Sprint("k", i%5)))
	}
	p = append(p, cmd("NOSUCHCOMMAND"), cmd("PING"), cmd("GET", "k1"), cmd("GET", "k2"))
	r.send(strings.Join(p, ""))
	for i := range p {
		rep := r.reply()
		if i == len(p)-4 && !strings.HasPrefix(rep, "-ERR unknown command") {
			t.Fatalf("reply %d: %q", i, rep)
		}
	}
	code, body := httpGet(t, "http://"+s.AdminAddr().String()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`cruzdb_command_duration_seconds_count{cmd="set"} 3`,
		`cruzdb_command_duration_seconds_count{cmd="get"} 18`,
		`cruzdb_command_duration_seconds_count{cmd="ping"} 1`,
		`cruzdb_commands_total{cmd="get"} 18`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
