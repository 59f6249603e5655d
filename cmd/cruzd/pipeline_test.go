package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cruzlog/cruzdb"
	"github.com/redis/go-redis/v9"
)

// TestPipelineMixed sends a pipeline of mixed commands in one write: point
// commands batched together, batch boundaries (MULTI, SCAN, KEYS, INFO,
// errors) in between. Every reply must be what running the commands one by
// one gives, in order.
func TestPipelineMixed(t *testing.T) {
	s := testServer(t, nil)
	r := dialRaw(t, s)
	steps := []struct{ cmd, want string }{
		{"SET x 1", "+OK\r\n"},
		{"INCR x", ":2\r\n"},
		{"GET x", "$1\r\n2\r\n"},
		{"APPEND x 0", ":2\r\n"},
		{"INCRBY x 5", ":25\r\n"},
		{"SETNX x 9", ":0\r\n"},
		{"GETSET x 7", "$2\r\n25\r\n"},
		{"NOSUCH", "-ERR unknown command 'NOSUCH', with args beginning with: \r\n"},
		{"DECR x", ":6\r\n"},
		{"GET", "-ERR wrong number of arguments for 'get' command\r\n"},
		{"MSET y 1 z 2", "+OK\r\n"},
		{"MGET x y z w", "*4\r\n$1\r\n6\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n"},
		{"SET s abc", "+OK\r\n"},
		{"INCR s", "-ERR value is not an integer or out of range\r\n"},
		{"GET s", "$3\r\nabc\r\n"},
		{"DEL y w", ":1\r\n"},
		{"EXISTS x y z", ":2\r\n"},
		{"KEYS *", "*3\r\n$1\r\ns\r\n$1\r\nx\r\n$1\r\nz\r\n"},
		{"MULTI", "+OK\r\n"},
		{"INCR x", "+QUEUED\r\n"},
		{"GET x", "+QUEUED\r\n"},
		{"EXEC", "*2\r\n:7\r\n$1\r\n7\r\n"},
		{"STRLEN s", ":3\r\n"},
		{"SET x 100 XX GET", "$1\r\n7\r\n"},
		{"PING", "+PONG\r\n"},
		{"DBSIZE", ":3\r\n"},
		{"GET x", "$3\r\n100\r\n"},
		{"SCAN 0 COUNT 100", "*2\r\n$1\r\n0\r\n*3\r\n$1\r\ns\r\n$1\r\nx\r\n$1\r\nz\r\n"},
		{"DEL x s z", ":3\r\n"},
		{"DBSIZE", ":0\r\n"},
	}
	var all strings.Builder
	for _, st := range steps {
		all.WriteString(st.cmd + "\r\n")
	}
	r.send(all.String())
	for _, st := range steps {
		if got := r.reply(); got != st.want {
			t.Fatalf("%s = %q, want %q", st.cmd, got, st.want)
		}
	}
}

// TestPipelineOneIntention checks that a pipeline of N SETs is committed
// in fewer than N intentions, and that go-redis pipelines get every reply.
func TestPipelineOneIntention(t *testing.T) {
	s := testServer(t, nil)
	ctx := ctxT(t)
	const n = 200
	before := s.db.Stats().IntentionsAppended
	r := dialRaw(t, s)
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$%d\r\nval:%d\r\n", len(fmt.Sprint("key:", i)), i, len(fmt.Sprint("val:", i)), i)
	}
	r.send(b.String())
	for i := range n {
		if got := r.reply(); got != "+OK\r\n" {
			t.Fatalf("SET %d = %q", i, got)
		}
	}
	appended := s.db.Stats().IntentionsAppended - before
	t.Logf("%d pipelined SETs appended %d intentions", n, appended)
	if appended >= n/4 {
		t.Fatalf("%d pipelined SETs appended %d intentions, want fewer than %d", n, appended, n/4)
	}

	// The same through go-redis, mixed with reads.
	c := client(t, s)
	p := c.Pipeline()
	sets := make([]*redis.StatusCmd, n)
	gets := make([]*redis.StringCmd, n)
	incrs := make([]*redis.IntCmd, n)
	for i := range n {
		sets[i] = p.Set(ctx, fmt.Sprint("p:", i), i, 0)
		incrs[i] = p.Incr(ctx, fmt.Sprint("p:", i))
		gets[i] = p.Get(ctx, fmt.Sprint("p:", i))
	}
	before = s.db.Stats().IntentionsAppended
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	appended = s.db.Stats().IntentionsAppended - before
	for i := range n {
		if sets[i].Val() != "OK" || incrs[i].Val() != int64(i+1) || gets[i].Val() != fmt.Sprint(i+1) {
			t.Fatalf("command %d: SET %q INCR %d GET %q", i, sets[i].Val(), incrs[i].Val(), gets[i].Val())
		}
	}
	if appended >= 3*n/4 {
		t.Fatalf("a pipeline of %d commands appended %d intentions", 3*n, appended)
	}
}

// TestPipelineBatchConflictRetry forces a conflict on a batch of plain
// commands: the whole batch is re-run on a newer snapshot, and the replies
// are those of the re-run only.
func TestPipelineBatchConflictRetry(t *testing.T) {
	s := testServer(t, nil)
	ctx := ctxT(t)
	c := client(t, s)
	if err := c.Set(ctx, "n", "10", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	hook := func() {
		if calls.Add(1) == 1 {
			// Another writer (bypassing the daemon's key locks, as another
			// node of a shared log would) bumps n under the batch.
			err := s.db.Update(context.Background(), func(tx *cruzdb.Txn) error { return storeMeta(tx, []byte("n"), meta{value: []byte("100")}) })
			if err != nil {
				t.Error(err)
			}
		}
	}
	s.beforeBatchCommit.Store(&hook)
	defer s.beforeBatchCommit.Store(nil)
	r := dialRaw(t, s)
	r.send("INCR n\r\nINCR n\r\nSET m 1\r\nGET n\r\n")
	r.expect(":101\r\n", ":102\r\n", "+OK\r\n", "$3\r\n102\r\n")
	if n := calls.Load(); n != 2 {
		t.Fatalf("batch ran %d times, want 2", n)
	}
}

// TestCombinedBlindWrites has many clients pipeline blind writes at once,
// which the daemon commits together across connections; every write must
// land, every reply must be right (errors stay with their command), and
// the clients' own orders must hold.
func TestCombinedBlindWrites(t *testing.T) {
	s := testServer(t, nil)
	ctx := ctxT(t)
	const clients, rounds, per = 8, 10, 20
	before := s.db.Stats().IntentionsAppended
	var wg sync.WaitGroup
	for i := range clients {
		c := client(t, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				p := c.Pipeline()
				var cmds []redis.Cmder
				for j := range per {
					cmds = append(cmds, p.Set(ctx, fmt.Sprintf("c%d:%d", i, j), fmt.Sprint(r), 0))
				}
				bad := p.MSet(ctx, "ok", "1", "", "x") // an empty key: an error for this command only
				last := p.Set(ctx, fmt.Sprintf("last:%d", i), fmt.Sprint(r), 0)
				p.Exec(ctx)
				for _, cmd := range cmds {
					if cmd.Err() != nil {
						t.Error(cmd.Err())
						return
					}
				}
				if bad.Err() == nil || !strings.Contains(bad.Err().Error(), "empty keys") {
					t.Errorf("MSET with an empty key: %v", bad.Err())
					return
				}
				if last.Err() != nil {
					t.Error(last.Err())
					return
				}
			}
		}()
	}
	wg.Wait()
	c := client(t, s)
	for i := range clients {
		for j := range per {
			if v := c.Get(ctx, fmt.Sprintf("c%d:%d", i, j)).Val(); v != fmt.Sprint(rounds-1) {
				t.Fatalf("c%d:%d = %q, want %d", i, j, v, rounds-1)
			}
		}
		if v := c.Get(ctx, fmt.Sprintf("last:%d", i)).Val(); v != fmt.Sprint(rounds-1) {
			t.Fatalf("last:%d = %q", i, v)
		}
	}
	if n := c.Exists(ctx, "ok").Val(); n != 0 {
		t.Fatal("a failed MSET wrote")
	}
	t.Logf("%d pipelines appended %d intentions", clients*rounds, s.db.Stats().IntentionsAppended-before)
}
