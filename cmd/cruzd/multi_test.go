package main

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cruzlog/cruzdb"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
)

func TestMultiExec(t *testing.T) {
	s := testServer(t, nil)
	r := dialRaw(t, s)

	// Queued commands run in one transaction; runtime errors are per
	// command inside EXEC's reply.
	r.send("*1\r\n$5\r\nMULTI\r\n")
	if got := r.reply(); got != "+OK\r\n" {
		t.Fatalf("MULTI = %q", got)
	}
	for _, cmd := range []string{"SET a 1", "INCR a", "SET s abc", "INCR s", "GET a", "PING", "DBSIZE", "KEYS *"} {
		r.send(cmd + "\r\n")
		if got := r.reply(); got != "+QUEUED\r\n" {
			t.Fatalf("%s in MULTI = %q", cmd, got)
		}
	}
	r.send("EXEC\r\n")
	want := "*8\r\n+OK\r\n:2\r\n+OK\r\n-ERR value is not an integer or out of range\r\n$1\r\n2\r\n+PONG\r\n:2\r\n*2\r\n$1\r\na\r\n$1\r\ns\r\n"
	if got := r.reply(); got != want {
		t.Fatalf("EXEC = %q, want %q", got, want)
	}

	// Errors at queue time: EXECABORT, nothing runs.
	for _, step := range []struct{ send, want string }{
		{"MULTI", "+OK\r\n"},
		{"MULTI", "-ERR MULTI calls can not be nested\r\n"},
		{"SET a 100", "+QUEUED\r\n"},
		{"NOSUCH x", "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"},
		{"GET", "-ERR wrong number of arguments for 'get' command\r\n"},
		{"EXEC", "-EXECABORT Transaction discarded because of previous errors.\r\n"},
		{"GET a", "$1\r\n2\r\n"},
		{"EXEC", "-ERR EXEC without MULTI\r\n"},
		{"DISCARD", "-ERR DISCARD without MULTI\r\n"},
		{"MULTI", "+OK\r\n"},
		{"WATCH a", "-ERR WATCH inside MULTI is not allowed\r\n"},
		{"SET a 5", "+QUEUED\r\n"},
		{"DISCARD", "+OK\r\n"},
		{"GET a", "$1\r\n2\r\n"},
		{"MULTI", "+OK\r\n"},
		{"EXEC", "*0\r\n"},
	} {
		r.send(step.send + "\r\n")
		if got := r.reply(); got != step.want {
			t.Fatalf("%s = %q, want %q", step.send, got, step.want)
		}
	}
}

func TestWatchTwoConnections(t *testing.T) {
	s := testServer(t, nil)
	ctx := ctxT(t)
	a, b := dialRaw(t, s), dialRaw(t, s)
	do := func(r *rawConn, cmd, want string) {
		t.Helper()
		r.send(cmd + "\r\n")
		if got := r.reply(); got != want {
			t.Fatalf("%s = %q, want %q", cmd, got, want)
		}
	}
	cases := []struct {
		name  string
		other string // what b does between a's WATCH and EXEC ("" nothing)
		abort bool
	}{
		{"untouched", "", false},
		{"other key written", "SET other 1", false},
		{"watched key written", "SET k 2", true},
		{"watched key rewritten with the same value", "SET k 1", true},
		{"watched key deleted", "DEL k", true},
	}
	for _, tc := range cases {
		do(a, "SET k 1", "+OK\r\n")
		do(a, "WATCH k", "+OK\r\n")
		do(a, "GET k", "$1\r\n1\r\n")
		if tc.other != "" {
			b.send(tc.other + "\r\n")
			b.reply()
		}
		do(a, "MULTI", "+OK\r\n")
		do(a, "SET k from-a", "+QUEUED\r\n")
		if tc.abort {
			do(a, "EXEC", "*-1\r\n")
			if v, _ := client(t, s).Get(ctx, "k").Result(); v == "from-a" {
				t.Fatalf("%s: aborted EXEC wrote", tc.name)
			}
		} else {
			do(a, "EXEC", "*1\r\n+OK\r\n")
		}
	}

	// A watched key that does not exist yet and is then created.
	do(a, "WATCH fresh", "+OK\r\n")
	do(b, "SET fresh 1", "+OK\r\n")
	do(a, "MULTI", "+OK\r\n")
	do(a, "GET fresh", "+QUEUED\r\n")
	do(a, "EXEC", "*-1\r\n")
	// UNWATCH forgets; DISCARD and EXEC unwatch too.
	do(a, "WATCH k", "+OK\r\n")
	do(b, "SET k 3", "+OK\r\n")
	do(a, "UNWATCH", "+OK\r\n")
	do(a, "MULTI", "+OK\r\n")
	do(a, "GET k", "+QUEUED\r\n")
	do(a, "EXEC", "*1\r\n$1\r\n3\r\n")
	do(a, "WATCH k", "+OK\r\n")
	do(b, "SET k 4", "+OK\r\n")
	do(a, "MULTI", "+OK\r\n")
	do(a, "DISCARD", "+OK\r\n")
	do(a, "MULTI", "+OK\r\n")
	do(a, "GET k", "+QUEUED\r\n")
	do(a, "EXEC", "*1\r\n$1\r\n4\r\n")
}

// TestWatchOptimisticIncrement runs the classic WATCH/GET/MULTI/SET/EXEC
// loop from several clients; every increment that EXEC acknowledged must
// be counted once.
func TestWatchOptimisticIncrement(t *testing.T) {
	s := testServer(t, nil)
	ctx := ctxT(t)
	const clients, perClient = 6, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	aborts := 0
	for range clients {
		c := client(t, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < perClient; {
				err := c.Watch(ctx, func(tx *redis.Tx) error {
					n, err := tx.Get(ctx, "counter").Int()
					if err != nil && !errors.Is(err, redis.Nil) {
						return err
					}
					_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
						p.Set(ctx, "counter", strconv.Itoa(n+1), 0)
						return nil
					})
					return err
				}, "counter")
				switch {
				case err == nil:
					done++
				case errors.Is(err, redis.TxFailedErr):
					mu.Lock()
					aborts++
					mu.Unlock()
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n, err := client(t, s).Get(ctx, "counter").Int()
	if err != nil {
		t.Fatal(err)
	}
	if n != clients*perClient {
		t.Fatalf("counter = %d, want %d (%d aborts)", n, clients*perClient, aborts)
	}
	t.Logf("%d WATCH aborts", aborts)
}

// TestExecConflictRetry checks EXEC's handling of a conflict found at
// commit: on a key that is not watched (a range read here) EXEC is re-run;
// on a watched key it replies nil and is not re-run.
func TestExecConflictRetry(t *testing.T) {
	s := testServer(t, nil)
	ctx := ctxT(t)
	c := client(t, s)
	if err := c.Set(ctx, "w", "0", 0).Err(); err != nil {
		t.Fatal(err)
	}
	write := func(k, v string) {
		if err := s.db.Update(context.Background(), func(tx *cruzdb.Txn) error { return storeMeta(tx, []byte(k), meta{value: []byte(v)}) }); err != nil {
			t.Error(err)
		}
	}

	// Unwatched: another writer adds a key inside the KEYS range between
	// EXEC's run and its commit, once.
	var attempts atomic.Int32
	hook := func() {
		if attempts.Add(1) == 1 {
			write("r:2", "x")
		}
	}
	s.beforeExecCommit.Store(&hook)
	r := dialRaw(t, s)
	r.send("WATCH w\r\nMULTI\r\nKEYS r:*\r\nSET r:1 y\r\nEXEC\r\n")
	r.expect("+OK\r\n", "+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n")
	// The re-run sees r:2.
	if got, want := r.reply(), "*2\r\n*1\r\n$3\r\nr:2\r\n+OK\r\n"; got != want {
		t.Fatalf("EXEC = %q, want %q", got, want)
	}
	if n := attempts.Load(); n != 2 {
		t.Fatalf("EXEC ran %d times, want 2", n)
	}
	if n := counterValue(s.metrics.retries); n != 1 {
		t.Fatalf("retries = %v, want 1", n)
	}

	// Watched: the watched key is written after EXEC checked it, before
	// its commit: nil, and no re-run.
	attempts.Store(0)
	hook2 := func() {
		attempts.Add(1)
		write("w", "changed")
	}
	s.beforeExecCommit.Store(&hook2)
	r.send("WATCH w\r\nMULTI\r\nSET r:3 z\r\nEXEC\r\n")
	r.expect("+OK\r\n", "+OK\r\n", "+QUEUED\r\n", "*-1\r\n")
	if n := attempts.Load(); n != 1 {
		t.Fatalf("EXEC ran %d times, want 1", n)
	}
	if n := counterValue(s.metrics.retries); n != 1 {
		t.Fatalf("a conflict on a watched key was retried (retries = %v)", n)
	}
	if n := counterValue(s.metrics.watchAborts); n != 1 {
		t.Fatalf("watch aborts = %v, want 1", n)
	}
	if n := c.Exists(ctx, "r:3").Val(); n != 0 {
		t.Fatal("an EXEC that replied nil wrote")
	}
	s.beforeExecCommit.Store(nil)
}

// TestConcurrentIncr: plain INCRs from many clients, pipelined and not,
// never fail and never lose an increment.
func TestConcurrentIncr(t *testing.T) {
	s := testServer(t, nil)
	ctx := ctxT(t)
	const clients, rounds, pipe = 8, 20, 5
	var wg sync.WaitGroup
	for i := range clients {
		c := client(t, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if i%2 == 0 {
					if err := c.Incr(ctx, "hot").Err(); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				p := c.Pipeline()
				for range pipe {
					p.Incr(ctx, "hot")
					p.Get(ctx, "hot")
				}
				if _, err := p.Exec(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := clients / 2 * rounds * (1 + pipe)
	if n, err := client(t, s).Get(ctx, "hot").Int(); err != nil || n != want {
		t.Fatalf("hot = %d, %v; want %d", n, err, want)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
