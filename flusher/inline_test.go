package flusher

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/log/piggyback"
	"github.com/cruzlog/cruzdb/processor"
)

// batchFails is a memlog whose AppendBatch fails while fail is set.
type batchFails struct {
	*memlog.Log
	fail atomic.Bool
}

var errBatch = errors.New("test: batch append fails")

func (b *batchFails) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	if b.fail.Load() {
		return nil, errBatch
	}
	return b.Log.AppendBatch(ctx, data)
}

// inlineRig is a flusher on a piggyback lane, and the state whose deltas
// it is handed, for the tests of inline.go.
type inlineRig struct {
	t    *testing.T
	l    *batchFails
	lane *piggyback.Log
	f    *Flusher
	st   *processor.State
}

// newInlineRig returns a rig whose lane waits window for an intention to
// ride with (waitLong: riding is certain on a loaded machine).
func newInlineRig(t *testing.T, window time.Duration) *inlineRig {
	t.Helper()
	r := &inlineRig{t: t, l: &batchFails{Log: newLog(t, nil)}}
	r.lane = piggyback.NewWindow(r.l, window)
	r.f, r.st = startFlusher(t, Options{Log: r.lane})
	return r
}

// commit appends an intention putting k through the lane, as a committer
// does, and returns its position and the afterimages that rode with it
// (held: the caller releases them).
func (r *inlineRig) commit(k string) (uint64, piggyback.Riders, *intention.Intention) {
	r.t.Helper()
	in := &intention.Intention{Snapshot: 0, Ops: []intention.Op{putOp(k, "v-"+k)}}
	pos, riders, err := r.lane.AppendIntentionHeld(context.Background(), entry.AppendIntention(nil, in))
	if err != nil {
		r.t.Fatal(err)
	}
	return uint64(pos), riders, in
}

// With one local commit under way, Produced encodes the afterimage itself
// and hands it to the lane before it returns: the next intention takes it
// along, and its Release does the bookkeeping a worker would have done.
func TestProducedRidesInline(t *testing.T) {
	r := newInlineRig(t, waitLong)
	end := r.lane.CommitBegins()
	pos, riders, in := r.commit("a")
	if riders.Len() != 0 {
		t.Fatalf("%d riders with the first intention", riders.Len())
	}
	r.f.Produced(mustApply(t, r.st, pos, in), true)
	end()

	// No wait: the afterimage is with the lane already.
	end = r.lane.CommitBegins()
	pos2, riders, _ := r.commit("b")
	if riders.Len() != 1 {
		t.Fatalf("the next intention took %d afterimages, want 1 (handed over by Produced)", riders.Len())
	}
	at, data := riders.At(0)
	if uint64(at) <= pos || uint64(at) >= pos2 {
		t.Fatalf("afterimage at %d, want between %d and %d", at, pos, pos2)
	}
	ai, err := entry.DecodeAfterimageEntry(uint64(at), data)
	if err != nil {
		t.Fatal(err)
	}
	if ai.Intention != pos {
		t.Fatalf("afterimage of intention %d, want %d", ai.Intention, pos)
	}
	if s := r.f.Stats(); s.AfterimagesWritten != 0 || r.f.quiescent() {
		t.Fatalf("before Release: %d written, quiescent %v; want 0, false", s.AfterimagesWritten, r.f.quiescent())
	}
	riders.Release()
	end()
	s := r.f.Stats()
	if s.Inline != 1 || s.AfterimagesWritten != 1 || s.AfterimageBytes != uint64(len(data)) {
		t.Fatalf("after Release: inline %d, written %d (%d bytes); want 1, 1 (%d bytes)", s.Inline, s.AfterimagesWritten, s.AfterimageBytes, len(data))
	}
	if !r.f.quiescent() {
		t.Fatal("not quiescent after the afterimage was released")
	}
}

// With no commit under way, or two, the workers write the afterimage, as
// before.
func TestProducedInlineOnlyWithOneCommit(t *testing.T) {
	for _, committing := range []int{0, 2} {
		r := newInlineRig(t, piggyback.Window) // nothing rides inline, whatever the timing
		var ends []func()
		for range committing {
			ends = append(ends, r.lane.CommitBegins())
		}
		pos, riders, in := r.commit("a")
		riders.Release()
		r.f.Produced(mustApply(t, r.st, pos, in), true)
		for _, end := range ends {
			end()
		}
		testutil.Eventually(t, waitLong, func() bool { return r.f.Stats().AfterimagesWritten == 1 })
		if s := r.f.Stats(); s.Inline != 0 {
			t.Fatalf("%d commits under way: %d afterimages written inline, want 0", committing, s.Inline)
		}
		if got := afterimagesIn(t, r.l.Log); len(got) != 1 {
			t.Fatalf("%d commits under way: %d afterimages in the log, want 1", committing, len(got))
		}
	}
}

// An afterimage written inline whose intention's append fails goes to the
// workers, which append it.
func TestInlineAppendErrorRequeues(t *testing.T) {
	r := newInlineRig(t, waitLong)
	end := r.lane.CommitBegins()
	pos, riders, in := r.commit("a")
	r.f.Produced(mustApply(t, r.st, pos, in), true)
	riders.Release()
	r.l.fail.Store(true)
	in2 := &intention.Intention{Snapshot: 0, Ops: []intention.Op{putOp("b", "b")}}
	if _, err := r.lane.AppendIntention(context.Background(), entry.AppendIntention(nil, in2)); !errors.Is(err, errBatch) {
		t.Fatalf("append: %v, want %v", err, errBatch)
	}
	r.l.fail.Store(false)
	// The worker that took it back rides with a next intention.
	testutil.Eventually(t, waitLong, func() bool {
		_, riders, _ := r.commit("c")
		riders.Release()
		return r.f.Stats().AfterimagesWritten == 1
	})
	end()
	s := r.f.Stats()
	if s.Inline != 0 || s.AppendErrors != 1 {
		t.Fatalf("inline %d, append errors %d; want 0, 1", s.Inline, s.AppendErrors)
	}
	got := afterimagesIn(t, r.l.Log)
	if len(got) != 1 {
		t.Fatalf("%d afterimages in the log, want 1", len(got))
	}
	for _, ai := range got {
		if ai.Intention != pos {
			t.Fatalf("afterimage of intention %d, want %d", ai.Intention, pos)
		}
	}
}
