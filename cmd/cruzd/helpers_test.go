package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/resp"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/redis/go-redis/v9"
)

// testServer starts a cruzd in-process on 127.0.0.1:0 with a memlog (or,
// if mod sets DataDir, a NoSync bbolt log there) and shuts it down at the
// end of the test.
func testServer(t testing.TB, mod func(*config)) *server {
	t.Helper()
	cfg := defaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.DataDir = ""
	cfg.NoSync = true
	cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	if cfg.DataDir == "" && cfg.log == nil {
		ml := memlog.New(nil)
		t.Cleanup(func() { ml.Close() })
		cfg.log = ml
	}
	s, err := newServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// client is a go-redis client of s.
func client(t testing.TB, s *server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:         s.Addr().String(),
		Protocol:     2,
		MaxRetries:   -1,
		ReadTimeout:  20 * time.Second,
		WriteTimeout: 20 * time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a plain TCP connection for speaking RESP by hand.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, s *server) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// bulkReply is s as a RESP bulk string.
func bulkReply(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }

// respCommand is args as a RESP array of bulk strings, as a client sends a
// command.
func respCommand(args ...string) string {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString(bulkReply(a))
	}
	return b.String()
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(r.nc, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// reply reads one whole reply and returns it in RESP form.
func (r *rawConn) reply() string {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := readReply(r.br)
	if err != nil {
		r.t.Fatalf("read reply: %v (got %q)", err, s)
	}
	return s
}

// expect reads one reply per want and fails the test at the first that
// differs.
func (r *rawConn) expect(wants ...string) {
	r.t.Helper()
	for _, want := range wants {
		if got := r.reply(); got != want {
			r.t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// expectClosed checks that the server closes the connection (after any
// replies still unread).
func (r *rawConn) expectClosed() {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(r.br)
	if errors.Is(err, syscall.ECONNRESET) {
		// Closed with unread input left on the server side: a reset.
		err = nil
	}
	if err != nil {
		r.t.Fatalf("connection not closed: %v (read %q)", err, rest)
	}
	if len(rest) > 0 {
		r.t.Fatalf("unexpected data before close: %q", rest)
	}
}

func readReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return line, err
	}
	switch line[0] {
	case '+', '-', ':':
		return line, nil
	case '$':
		n, ok := resp.ParseInt([]byte(strings.TrimSuffix(line[1:], "\r\n")))
		if !ok || n < 0 {
			return line, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return line, err
		}
		return line + string(buf), nil
	case '*':
		n, ok := resp.ParseInt([]byte(strings.TrimSuffix(line[1:], "\r\n")))
		if !ok || n < 0 {
			return line, nil
		}
		out := line
		for range n {
			s, err := readReply(br)
			out += s
			if err != nil {
				return out, err
			}
		}
		return out, nil
	}
	return line, nil
}

// ctxT is a test's context: a guard against a hang, not a timing. It is
// generous because CI runs the race detector with every package's tests at
// once on two cores: TestLargeValues (4 MiB values) takes ~6 s alone and
// once took 21 s there.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
