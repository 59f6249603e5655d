package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
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
	awaitCommits(t, done, 2*time.Minute, a, "A's commits wedged while B holds its cut")
	st := a.Stats()
	t.Logf("A: %s; waits %d, written %d", summary(st), st.CheckpointWaits, st.CheckpointsWritten)
	hl.release()
	released = true
	if err := <-bDone; err != nil && !skippedCut(err) {
		t.Fatalf("B's checkpoint: %v", err)
	}
	t.Logf("B: %s", summary(b.Stats()))
	sameState(t, a, b)
}

// TestCheckpointCutSkippedByPeerTrim: node A appends a cut while its
// replay is held; node B checkpoints past it and trims, and writes more.
// A, released, re-bootstraps from B's checkpoint, skipping its own cut:
// its Checkpoint call is satisfied by B's checkpoint, which holds the
// state at A's cut and later (review item 2). (When the re-bootstrap
// resumes from an afterimage instead, with no marker read that covers the
// cut, Checkpoint appends another cut: seen once in 30 runs of
// TestTwoNodeCheckpointMetamorphic, seed 1796610600593824894, not
// reproduced deterministically.)
func TestCheckpointCutSkippedByPeerTrim(t *testing.T) {
	l := memlog.New(nil)
	ctx := context.Background()
	hl := &findHeldLog{Log: l, release: make(chan struct{})}
	a, b, from := heldPair(t, l, hl, 30)
	released := false
	defer func() {
		if !released {
			close(hl.release)
		}
	}()
	type result struct {
		info CheckpointInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		info, err := a.Checkpoint(ctx)
		done <- result{info, err}
	}()
	// A's cut is in the log (A's flusher may append before it).
	cutAt := uint64(0)
	p := uint64(from)
	testutil.WaitFor(t, "A's cut", 60*time.Second, func() bool {
		for {
			data, err := l.Read(ctx, log.Position(p))
			switch {
			case err == nil:
				if isCheckpointKind(data, entry.CheckpointCut) {
					cutAt = p
					return true
				}
				p++
			case errors.Is(err, log.ErrNotWritten):
				return false
			default:
				t.Fatal(err)
			}
		}
	})
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := b.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(info.TrimmedBelow) <= cutAt {
		t.Fatalf("B trimmed below %d, not past A's cut at %d", info.TrimmedBelow, cutAt)
	}
	workload(t, b, 5, 40)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	close(hl.release)
	released = true
	res := <-done
	if res.err != nil {
		t.Fatalf("A's checkpoint after its cut was skipped: %v", res.err)
	}
	if uint64(res.info.Position) <= cutAt || res.info.Marker <= res.info.Position {
		t.Fatalf("A's checkpoint info %+v (its cut was at %d)", res.info, cutAt)
	}
	sameState(t, a, b)
	if st := a.Stats(); st.Rebootstraps == 0 {
		t.Fatalf("A did not re-bootstrap: %s", summary(st))
	}
}
