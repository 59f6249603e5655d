package main

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
)

// TestBadInput sends every kind of malformed or refused input over raw
// connections. A protocol error gets an error reply and closes that
// connection only; a command error gets an error reply and the connection
// carries on. A bystander connection keeps working throughout.
func TestBadInput(t *testing.T) {
	s := testServer(t, func(c *config) {
		c.MaxBulkLen = 1024
		c.MaxArgs = 8
	})
	bystander := dialRaw(t, s)
	bystander.send("SET by 1\r\n")
	if got := bystander.reply(); got != "+OK\r\n" {
		t.Fatal(got)
	}
	check := func() {
		t.Helper()
		bystander.send("INCR by\r\n")
		if got := bystander.reply(); !strings.HasPrefix(got, ":") {
			t.Fatalf("bystander: %q", got)
		}
	}

	protocolErrors := []struct{ name, send, want string }{
		{"not a bulk", "*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"},
		{"bad multibulk length", "*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"multibulk length with plus", "*+1\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"bad bulk length", "*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"negative bulk length", "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk over --max-bulk-len", "*2\r\n$3\r\nSET\r\n$1025\r\n", "-ERR Protocol error: invalid bulk length (more than the 1024 bytes --max-bulk-len allows)\r\n"},
		{"too many arguments", "*9\r\n", "-ERR Protocol error: invalid multibulk length (more than the 8 arguments --max-args allows)\r\n"},
		{"too many inline arguments", "a b c d e f g h i\r\n", "-ERR Protocol error: invalid multibulk length (more than the 8 arguments --max-args allows)\r\n"},
		{"no CRLF after bulk", "*1\r\n$4\r\nPINGxx", "-ERR Protocol error: expected CRLF after a bulk string\r\n"},
		{"LF only header", "*1\n", "-ERR Protocol error: expected CRLF at the end of a header line\r\n"},
		{"huge count", "*" + strings.Repeat("9", 40) + "\r\n", "-ERR Protocol error: too big mbulk count string\r\n"},
		{"unbalanced quotes", "SET \"a b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		{"garbage after quote", "SET \"a\"b c\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		{"inline too long", strings.Repeat("x", 70<<10), "-ERR Protocol error: too big inline request\r\n"},
	}
	for _, tc := range protocolErrors {
		r := dialRaw(t, s)
		r.send(tc.send)
		if got := r.reply(); got != tc.want {
			t.Fatalf("%s: got %q, want %q", tc.name, got, tc.want)
		}
		r.expectClosed()
		check()
	}

	// Commands before a protocol error in the same batch still run and
	// get their replies first.
	r := dialRaw(t, s)
	r.send("*1\r\n$4\r\nPING\r\nSET before 1\r\n*1\r\n:1\r\n")
	r.expect("+PONG\r\n", "+OK\r\n", "-ERR Protocol error: expected '$', got ':'\r\n")
	r.expectClosed()

	// Command errors leave the connection open.
	r = dialRaw(t, s)
	for _, tc := range []struct{ send, want string }{
		{"FOO bar", "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n"},
		{"GET", "-ERR wrong number of arguments for 'get' command\r\n"},
		{"SET s abc", "+OK\r\n"},
		{"INCR s", "-ERR value is not an integer or out of range\r\n"},
		{"INCRBY s 1.5", "-ERR value is not an integer or out of range\r\n"},
		{"EXEC", "-ERR EXEC without MULTI\r\n"},
		{"SET a b EX 0", "-ERR invalid expire time in 'set' command\r\n"},
		{"SELECT 2", "-ERR DB index is out of range\r\n"},
		{"*0\r\n*-1\r\n\r\n   \r\nPING", "+PONG\r\n"}, // empty commands are skipped
	} {
		r.send(tc.send + "\r\n")
		if got := r.reply(); got != tc.want {
			t.Fatalf("%q: got %q, want %q", tc.send, got, tc.want)
		}
	}
	r = dialRaw(t, s)
	for _, tc := range []struct{ send, want string }{
		{"ECHO \"a\\x41\\n\"", "$3\r\naA\n\r\n"},
		{"ECHO 'it\\'s'", "$4\r\nit's\r\n"},
		{"SET \"two words\" 'v'", "+OK\r\n"},
		{"GET \"two words\"", "$1\r\nv\r\n"},
	} {
		r.send(tc.send + "\n") // inline, LF only
		if got := r.reply(); got != tc.want {
			t.Fatalf("%q: got %q, want %q", tc.send, got, tc.want)
		}
	}
	// A client that goes away mid-frame.
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(nc, "*2\r\n$3\r\nGET\r\n$10\r\nabc")
	nc.Close()
	check()
}

func TestMaxClients(t *testing.T) {
	s := testServer(t, func(c *config) { c.MaxClients = 2 })
	a, b := dialRaw(t, s), dialRaw(t, s)
	for _, r := range []*rawConn{a, b} {
		r.send("PING\r\n")
		if got := r.reply(); got != "+PONG\r\n" {
			t.Fatal(got)
		}
	}
	c := dialRaw(t, s)
	if got := c.reply(); got != "-ERR max number of clients reached\r\n" {
		t.Fatalf("third client: %q", got)
	}
	c.expectClosed()
	a.send("QUIT\r\n")
	if got := a.reply(); got != "+OK\r\n" {
		t.Fatal(got)
	}
	a.expectClosed()
	// The slot frees once the server has seen a go.
	testutil.Eventually(t, testutil.WaitLong, func() bool { return s.nclients.Load() <= 1 })
	d := dialRaw(t, s)
	d.send("PING\r\n")
	if got := d.reply(); got != "+PONG\r\n" {
		t.Fatalf("client after a slot freed: %q", got)
	}
	b.send("PING\r\n")
	if got := b.reply(); got != "+PONG\r\n" {
		t.Fatal(got)
	}
}

// TestIdleTimeout: a connection that says nothing for --idle-timeout is
// closed without a reply, as Redis does; one that keeps talking is not.
// Whether the client did keep talking is measured on its side: an attempt
// with a round trip slower than half the timeout (a stalled machine) proves
// nothing either way and is made again, so the test does not race the
// timeout against the machine's speed.
func TestIdleTimeout(t *testing.T) {
	t.Parallel() // waits for the idle timeout most of the time
	const timeout = time.Second
	s := testServer(t, func(c *config) { c.IdleTimeout = timeout })
	idle := dialRaw(t, s)
	idle.send("PING\r\n")
	idle.reply()
	idle.expectClosed()

	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			t.Fatal("five attempts all saw a round trip over half the idle timeout")
		}
		busy := dialRaw(t, s)
		start, last := time.Now(), time.Now()
		conclusive := true
		for time.Since(start) < timeout*3/2 {
			if time.Since(last) > timeout/2 {
				conclusive = false
				break
			}
			last = time.Now()
			busy.send("PING\r\n")
			busy.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := readReply(busy.br)
			if err != nil || got != "+PONG\r\n" {
				if time.Since(last) > timeout/2 {
					conclusive = false
					break
				}
				t.Fatalf("a connection talking every %v was closed by a %v idle timeout: %q, %v", time.Since(last), timeout, got, err)
			}
		}
		busy.nc.Close()
		if conclusive {
			return
		}
	}
}
