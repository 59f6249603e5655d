package flusher

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

// batchLog records the sizes of the batches appended through it.
type batchLog struct {
	*memlog.Log
	mu      sync.Mutex
	batches []int
}

func (b *batchLog) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	b.mu.Lock()
	b.batches = append(b.batches, len(data))
	b.mu.Unlock()
	return b.Log.AppendBatch(ctx, data)
}

func (b *batchLog) sizes() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.batches...)
}

// gatedRig returns a rig whose flusher has one worker and appends through
// wrap(log) (nil: the log itself), and whose next append, once holdNext is
// set, waits at gate.
func gatedRig(t *testing.T, wrap func(*memlog.Log) log.Log) (r *rig, gate *memlog.Gate, holdNext *atomic.Bool) {
	gate, holdNext = memlog.NewGate(), new(atomic.Bool)
	r = &rig{t: t, next: 1, local: true, deltas: map[uint64]*processor.Delta{}}
	r.l = newLog(t, &memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && holdNext.CompareAndSwap(true, false) {
			return memlog.Fault{Hold: gate}
		}
		return memlog.Fault{}
	}})
	var l log.Log = r.l
	if wrap != nil {
		l = wrap(r.l)
	}
	f, err := New(Options{Log: l, Workers: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	r.f = f
	r.st = processor.NewState(testHeader, cowtree.New(f.Loader()), 0)
	return r, gate, holdNext
}

// TestWorkerAppendsQueuedDeltasInOneBatch: while a worker's append waits,
// the deltas produced meanwhile queue; the worker takes all of them when it
// comes back and appends their afterimages in one batch (one wait), each a
// valid afterimage of its own intention, confirmed in order, and the tree
// reads back from the log alone.
func TestWorkerAppendsQueuedDeltasInOneBatch(t *testing.T) {
	var bl *batchLog
	r, gate, holdNext := gatedRig(t, func(l *memlog.Log) log.Log { bl = &batchLog{Log: l}; return bl })
	f := r.f

	p1 := r.intent(sevenOps()...)
	var later []uint64
	for _, k := range []string{"h", "a", "i", "b"} {
		later = append(later, r.intent(putOp(k, "v"+k)))
	}
	holdNext.Store(true)
	r.stepTo(p1) // the worker takes delta 1 alone; its append waits at the gate
	<-gate.Held()
	r.stepTo(later[len(later)-1])
	gate.Release()
	last := uint64(0)
	for _, p := range append([]uint64{p1}, later...) {
		a, ai := r.awaitAfterimage(p)
		if ai.Intention != p {
			t.Fatalf("afterimage at %d is of intention %d, want %d", a, ai.Intention, p)
		}
		last = max(last, a)
	}
	if got := bl.sizes(); len(got) != 1 || got[0] != len(later) {
		t.Fatalf("batches appended: %v; want one of the %d deltas queued behind the held append", got, len(later))
	}
	r.stepTo(last)
	testutil.Eventually(t, waitLong, func() bool { return f.Stats().Confirmed == 5 })
	if s := f.Stats(); s.AfterimagesWritten != 5 || s.PendingDeltas != 0 || s.UnflushedBytes != 0 {
		t.Fatalf("stats %+v", s)
	}
	if got, want := loadFrom(t, r.l, last), treeDump(t, r.st.Tree()); got != want {
		t.Fatalf("tree from the log:\n%s\nwant\n%s", got, want)
	}
}

// TestImageGoesBeforeQueuedAfterimages: a cut's delta does not queue behind
// the afterimages produced before it: while the one worker's append waits,
// four deltas and then a cut are produced; the worker comes back for the
// cut's image first, and the four afterimages follow it.
func TestImageGoesBeforeQueuedAfterimages(t *testing.T) {
	r, gate, holdNext := gatedRig(t, nil)

	p1 := r.intent(sevenOps()...)
	var later []uint64
	for _, k := range []string{"h", "a", "i", "b"} {
		later = append(later, r.intent(putOp(k, "v"+k)))
	}
	cutAt, err := r.l.Append(context.Background(), entry.AppendCut(nil, 1, &testHeader))
	if err != nil {
		t.Fatal(err)
	}
	cut := uint64(cutAt)
	holdNext.Store(true)
	r.stepTo(p1) // the worker takes delta 1 alone; its append waits at the gate
	<-gate.Held()
	r.stepTo(cut)
	gate.Release()
	first := uint64(0)
	for _, p := range later {
		a, _ := r.awaitAfterimage(p)
		if first == 0 || a < first {
			first = a
		}
	}
	chunk := uint64(0)
	for p := cut + 1; p < first && chunk == 0; p++ {
		data, err := r.l.Read(context.Background(), log.Position(p))
		if err != nil {
			t.Fatalf("read %d: %v", p, err)
		}
		if typ, payload, err := entry.Decode(p, data); err == nil && typ == entry.TypeCheckpoint {
			if k, _ := entry.CheckpointKind(payload); k == entry.CheckpointChunk {
				chunk = p
			}
		}
	}
	if chunk == 0 {
		t.Fatalf("no chunk of the cut at %d before the first afterimage queued ahead of it (at %d)", cut, first)
	}
}
