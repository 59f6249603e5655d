package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/seglog"
)

// failingSegLog is a seglog that refuses every failEvery-th append carrying
// an intention (alone or in a batch with riding afterimages), without
// writing it. WaitTail and ReadRange stay visible.
type failingSegLog struct {
	*seglog.Log
	failEvery int64
	n         atomic.Int64
	failed    atomic.Int64
}

var errInjectedAppend = errors.New("injected append error")

func (f *failingSegLog) refuse(data [][]byte) bool {
	for _, d := range data {
		if entryType(d) == entry.TypeIntention {
			if f.n.Add(1)%f.failEvery == 0 {
				f.failed.Add(1)
				return true
			}
			return false
		}
	}
	return false
}

func (f *failingSegLog) Append(ctx context.Context, data []byte) (log.Position, error) {
	if f.refuse([][]byte{data}) {
		return 0, errInjectedAppend
	}
	return f.Log.Append(ctx, data)
}

func (f *failingSegLog) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	if f.refuse(data) {
		return nil, errInjectedAppend
	}
	return f.Log.AppendBatch(ctx, data)
}

// localCommitWork runs writers goroutines of n commits of a unique key each
// (named after prefix)
// and returns the keys acknowledged and the keys whose commit failed.
func localCommitWork(t *testing.T, db *DB, prefix string, writers, n int) (acked, failed []string) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				k := fmt.Sprintf("%s%d-%03d", prefix, w, i)
				err := db.Update(context.Background(), func(tx *Txn) error { return tx.Put([]byte(k), []byte(k)) })
				mu.Lock()
				if err == nil {
					acked = append(acked, k)
				} else if errors.Is(err, errInjectedAppend) && errors.Is(err, ErrCommitUnknown) {
					failed = append(failed, k)
				} else {
					t.Errorf("commit of %s: %v", k, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked, failed
}

// TestCommitsDecidedByCommitters: on seglog (a TailWaiter), concurrent
// committers get their decisions whether they apply their intentions
// themselves (processor.Runner.ApplyLocal) or the processor does; one
// committer alone applies its own; everything acknowledged reads back,
// also after reopening.
func TestCommitsDecidedByCommitters(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, &Options{CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	acked, failed := localCommitWork(t, db, "a", 6, 20)
	if len(failed) != 0 || len(acked) != 120 {
		t.Fatalf("%d acknowledged, %d failed", len(acked), len(failed))
	}
	before := db.runner.LocalApplies()
	more, _ := localCommitWork(t, db, "b", 1, 20)
	acked = append(acked, more...)
	if db.runner.LocalApplies() == before {
		t.Fatal("no commit of a lone committer was applied by its committer")
	}
	reopenHasAll(t, db, dir, acked)
}

// TestCommitAppendErrorsWithLocalApply: committers whose intention's append
// fails end their local commit (the processor is not left waiting for
// them): the others' decisions keep coming, the failed commits report
// ErrCommitUnknown with the cause, a Flush (afterimages the processor must
// see) completes, and what was acknowledged, and only that, is there.
func TestCommitAppendErrorsWithLocalApply(t *testing.T) {
	sl, err := seglog.Open(filepath.Join(t.TempDir(), SegLogDirName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	fl := &failingSegLog{Log: sl, failEvery: 5}
	db, err := Open("", &Options{Log: fl, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	acked, failed := localCommitWork(t, db, "a", 4, 25)
	if len(failed) == 0 || len(acked)+len(failed) != 100 || int64(len(failed)) != fl.failed.Load() {
		t.Fatalf("%d acknowledged, %d failed, %d appends refused", len(acked), len(failed), fl.failed.Load())
	}
	more, _ := localCommitWork(t, db, "b", 1, 9) // a lone committer after the failures
	acked = append(acked, more...)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.WaitLong)
	defer cancel()
	if err := db.Flush(ctx); err != nil {
		t.Fatalf("flush after the failed appends: %v", err)
	}
	for _, k := range acked {
		if v, ok := get(t, db, k); !ok || v != k {
			t.Fatalf("acknowledged %s: %q, %v", k, v, ok)
		}
	}
	for _, k := range failed {
		if v, ok := get(t, db, k); ok {
			t.Fatalf("refused %s: %q, want not found", k, v)
		}
	}
}

// reopenHasAll closes db, opens dir again, and checks that every key of
// acked reads back with itself as its value.
func reopenHasAll(t *testing.T, db *DB, dir string, acked []string) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, &Options{CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, k := range acked {
		if v, ok := get(t, db, k); !ok || v != k {
			t.Fatalf("%s after reopen: %q, %v", k, v, ok)
		}
	}
}
