package cruzdb

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestCommitsGoOnWhilePeerHoldsItsCut: node B appends a cut while its log
// reads are held, so it cannot replay the cut nor write its image; node A,
// with automatic checkpoints on, replays that cut as a checkpoint under
// way. A's commits must not wait for B's image for ever (review item 3: A
// wedged in checkpointRoom while B's reads were held): A makes a
// checkpoint of its own, which supersedes B's cut. A writes only its own
// deltas (PolicyOriginator), so it cannot take B's image over either.
// Released, B converges.
func TestCommitsGoOnWhilePeerHoldsItsCut(t *testing.T) {
	l := memlog.New(nil)
	ctx := context.Background()
	a, err := Open("", &Options{Log: l, CheckpointLogRatio: 0.5, CheckpointMinLogBytes: 4 << 10, FlushPolicy: flusher.PolicyOriginator})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	hl := &heldLog{Log: l}
	b, err := Open("", &Options{Log: hl, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	workload(t, a, 1, 20)
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	hl.hold()
	released := false
	defer func() {
		if !released {
			hl.release()
		}
	}()
	bDone := make(chan error, 1)
	go func() {
		_, err := b.Checkpoint(ctx)
		bDone <- err
	}()
	// A sees B's cut.
	deadline := time.Now().Add(60 * time.Second)
	for !a.Stats().CheckpointInProgress {
		if time.Now().After(deadline) {
			t.Fatal("A never replayed B's cut")
		}
		workload(t, a, 2, 1)
	}
	// Far more log than the trigger (4 KiB) allows while a checkpoint is
	// under way: each commit must still end.
	done := make(chan error, 1)
	go func() {
		for i := range 400 {
			err := a.Update(ctx, func(tx *Txn) error {
				return tx.Put(fmt.Appendf(nil, "w%03d", i%100), fmt.Appendf(nil, "%0200d", i))
			})
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(120 * time.Second):
		t.Fatalf("A's commits wedged while B holds its cut: %+v", a.Stats())
	}
	st := a.Stats()
	t.Logf("A: %s; waits %d, written %d", summary(st), st.CheckpointWaits, st.CheckpointsWritten)
	hl.release()
	released = true
	if err := <-bDone; err != nil && !skippedCut(err) {
		t.Fatalf("B's checkpoint: %v", err)
	}
	sameState(t, a, b)
}
