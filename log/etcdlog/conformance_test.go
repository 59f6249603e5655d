package etcdlog

import (
	"context"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/logtest"
)

// makeHole appends and then deletes the entry behind the log's back: this
// package never leaves a hole (a position is taken only with its data), but
// the suite checks Read, Fill and Trim on one, as a log written by an older
// or foreign writer might have.
func makeHole(t *testing.T, l log.Log) log.Position {
	t.Helper()
	e := l.(*Log)
	p, err := e.Append(t.Context(), []byte("doomed"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.cli.Delete(t.Context(), e.k.entry(uint64(p)))
	if err != nil || resp.Deleted != 1 {
		t.Fatalf("delete entry %d: %v (%d deleted)", p, err, resp.Deleted)
	}
	// The watch may still deliver the put; once it has delivered the
	// delete, the cache cannot hold the entry.
	waitFor(t, "the watch to see the delete", 10*time.Second, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.seenRev >= resp.Header.Revision
	})
	e.cache.drop(uint64(p))
	return p
}

func TestConformance(t *testing.T) {
	t.Parallel() // logs of its own names; bound by etcd round trips
	cli := newClient(t, sharedEtcd(t))
	open := func(t *testing.T) log.Log { return mustOpen(t, cli, uniqueName(t), nil) }
	reopen := func(t *testing.T, closed log.Log) log.Log {
		return mustOpen(t, cli, closed.(*Log).Name(), nil)
	}
	logtest.Run(t, open, logtest.Persistent(reopen), logtest.Holes(makeHole), logtest.RaceRounds(100))
}

// TestConformanceSmallBatches runs the suite with three entries a
// transaction and the smallest chunks, so that appends and batches contend and
// entries over 256 KiB are chunked (64 chunks for the largest), and with
// the cache off.
func TestConformanceSmallBatches(t *testing.T) {
	t.Parallel() // logs of its own names
	cli := newClient(t, sharedEtcd(t))
	opts := &Options{MaxBatchEntries: 3, MaxBatchBytes: 256 << 10, ChunkSize: 256 << 10, CacheBytes: -1}
	open := func(t *testing.T) log.Log { return mustOpen(t, cli, uniqueName(t), opts) }
	reopen := func(t *testing.T, closed log.Log) log.Log {
		return mustOpen(t, cli, closed.(*Log).Name(), opts)
	}
	logtest.Run(t, open, logtest.Persistent(reopen), logtest.RaceRounds(50))
}

func TestOpenRefusesBadInput(t *testing.T) {
	cli := newClient(t, sharedEtcd(t))
	ctx := context.Background()
	for _, name := range []string{"", "a/b", "tab\there", string(make([]byte, 201))} {
		if _, err := Open(ctx, cli, name, nil); err == nil {
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	if _, err := Open(ctx, nil, "x", nil); err == nil {
		t.Error("Open with a nil client succeeded")
	}
	for _, o := range []Options{{MaxBatchEntries: -1}, {ChunkSize: 2 << 20}, {ChunkSize: 1 << 10}, {ChunkLeaseTTL: time.Millisecond}} {
		if _, err := Open(ctx, cli, "x", &o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
}
