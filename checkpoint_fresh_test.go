package cruzdb

import (
	"context"
	"errors"
	"testing"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestViewAfterPeerTrim (review item 7): a node opened on a trimmed log
// starts from the newest checkpoint; while its reads are held, another node
// checkpoints and trims past its whole state. A transaction from Begin
// keeps its snapshot, and a read there that needs a trimmed node fails with
// an error wrapping log.ErrTrimmed; View reads the latest state: it catches
// up (re-bootstrapping from the newer checkpoint) and runs its function
// again, so the node's current state is never unreadable.
func TestViewAfterPeerTrim(t *testing.T) {
	l := memlog.New(nil)
	ctx := context.Background()
	a, err := Open("", &Options{Log: l, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	workload(t, a, 1, 150)
	if _, err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	workload(t, a, 2, 50)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	tp := logTrimPoint(t, l)
	hl := &findHeldLog{Log: l, release: make(chan struct{})}
	f, err := Open("", &Options{Log: hl, CheckpointLogRatio: -1, CacheBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if sp := f.SafePoint(); sp.Intention < tp {
		t.Fatalf("the fresh node resumed at %d, below the trim point %d", sp.Intention, tp)
	}
	// Hold F's replay (reads at or above the tail), not its node loads.
	tail, err := l.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hl.mu.Lock()
	hl.from = tail
	hl.mu.Unlock()
	released := false
	release := func() {
		if !released {
			released = true
			close(hl.release)
		}
	}
	defer release()
	workload(t, a, 3, 100)
	info, err := a.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.TrimmedBelow <= f.Stats().Position {
		t.Fatalf("the trim (%d) is not past the fresh node's state (%d)", info.TrimmedBelow, f.Stats().Position)
	}
	// A snapshot taken now is the state the trim passed.
	tx, err := f.Begin(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for range tx.Range(nil, nil) {
	}
	if err := tx.Err(); !errors.Is(err, log.ErrTrimmed) {
		t.Fatalf("a read through a trimmed snapshot: %v, want an error wrapping log.ErrTrimmed", err)
	}
	tx.Rollback()
	runs := 0
	var got string
	err = f.View(ctx, func(tx *Txn) error {
		runs++
		got = ""
		for k, v := range tx.Range(nil, nil) {
			got += string(k) + "=" + string(v) + "\n"
		}
		// F's replay is held: the first run reads the state the trim
		// passed. Then F may catch up.
		release()
		return tx.Err()
	})
	if err != nil {
		t.Fatalf("View of the latest state after the peer's trim: %v", err)
	}
	if runs != 2 {
		t.Fatalf("View ran its function %d times, want 2 (the first met the trim)", runs)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if want := dump(t, a); got != want {
		t.Fatalf("the fresh node's View differs from the writer's state:\n%s\nwant\n%s", got, want)
	}
}
