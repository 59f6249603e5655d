package main

import (
	"bytes"
	"strings"
	"testing"
)

// A complete command followed by the start of another is answered at once,
// as Redis does; the partial one is answered once its rest arrives.
func TestPartialCommandDoesNotHoldReplies(t *testing.T) {
	s := testServer(t, nil)
	r := dialRaw(t, s)
	r.send("PING\r\nPI")
	if got := r.reply(); got != "+PONG\r\n" {
		t.Fatalf("PING before a partial command: %q", got)
	}
	r.send("NG\r\n*2\r\n$4\r\nECHO\r\n$3\r\nab")
	if got := r.reply(); got != "+PONG\r\n" {
		t.Fatalf("the completed PING: %q", got)
	}
	r.send("c\r\n")
	if got := r.reply(); got != "$3\r\nabc\r\n" {
		t.Fatalf("the completed ECHO: %q", got)
	}
}

// --client-query-buffer-limit bounds one command's arguments together: a
// command over it is refused before its bulks are read, and the connection
// is closed; one under it runs.
func TestClientQueryBufferLimit(t *testing.T) {
	s := testServer(t, func(c *config) { c.ClientQueryBufferLimit = 1 << 20 })
	big := string(bytes.Repeat([]byte("x"), 600<<10))
	ok := dialRaw(t, s)
	ok.send(string(encodeCommand([][]byte{[]byte("EXISTS"), []byte(big)})))
	if got := ok.reply(); got != ":0\r\n" {
		t.Fatalf("EXISTS with 600 KiB under a 1 MiB limit: %q", got)
	}
	over := dialRaw(t, s)
	// The second bulk's header is enough to refuse: its bytes need not come.
	over.send("*3\r\n$6\r\nEXISTS\r\n$614400\r\n" + big + "\r\n$614400\r\n")
	got := over.reply()
	if !strings.HasPrefix(got, "-ERR Protocol error: query buffer limit reached (more than the 1048576 bytes --client-query-buffer-limit allows)") {
		t.Fatalf("EXISTS with 2 x 600 KiB over a 1 MiB limit: %q", got)
	}
	over.expectClosed()
	if cfg := defaultConfig(); cfg.ClientQueryBufferLimit != 1<<30 {
		t.Fatalf("default --client-query-buffer-limit %d, want 1 GiB as Redis", cfg.ClientQueryBufferLimit)
	}
}

// Every HELP subcommand Redis has for a command cruzd serves answers with
// a usage line and pairs of subcommand and description lines.
func TestHelpSubcommands(t *testing.T) {
	s := testServer(t, nil)
	r := dialRaw(t, s)
	for _, cmd := range []string{"CLIENT", "CONFIG", "COMMAND", "OBJECT", "MEMORY", "FUNCTION"} {
		r.send(cmd + " HELP\r\n")
		got := r.reply()
		if !strings.HasPrefix(got, "*") || !strings.Contains(got, "+"+cmd+" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n") || !strings.Contains(got, "+HELP\r\n+    Print this help.\r\n") {
			t.Errorf("%s HELP: %q", cmd, got)
		}
		r.send(cmd + " help\r\n")
		if again := r.reply(); again != got {
			t.Errorf("%s help (lower case) differs: %q", cmd, again)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 || out.String() != "cruzd "+version+"\n" {
			t.Errorf("cruzd %v: exit %d, %q %q", args, code, out.String(), errOut.String())
		}
	}
}
