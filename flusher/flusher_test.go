package flusher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

// rig plays the processor by hand: the test decides when each log position
// is replayed, so when each delta is produced and each afterimage confirmed.
type rig struct {
	t      *testing.T
	l      *memlog.Log
	f      *Flusher
	st     *processor.State
	next   uint64 // next position to replay
	local  bool   // Produced(d, local)
	deltas map[uint64]*processor.Delta
}

func newRig(t *testing.T, o Options, lo *memlog.Options) *rig {
	t.Helper()
	r := &rig{t: t, l: newLog(t, lo), next: 1, local: true, deltas: map[uint64]*processor.Delta{}}
	o.Log = r.l
	r.f, r.st = startFlusher(t, o)
	return r
}

// startFlusher starts a flusher with o, stopped when the test ends, and a
// state whose tree loads through it.
func startFlusher(t *testing.T, o Options) (*Flusher, *processor.State) {
	t.Helper()
	f, err := New(o, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f, processor.NewState(testHeader, cowtree.New(f.Loader()), 0)
}

// intent appends an intention that will commit (blind writes).
func (r *rig) intent(ops ...intention.Op) uint64 {
	r.t.Helper()
	return appendIntention(r.t, r.l, &intention.Intention{Snapshot: 0, Ops: ops})
}

// aborted appends an intention that will abort (invalid snapshot).
func (r *rig) aborted() uint64 {
	r.t.Helper()
	return appendIntention(r.t, r.l, &intention.Intention{Snapshot: 1 << 40, Ops: []intention.Op{putOp("x", "x")}})
}

// stepTo replays every position up to pos, in order, waiting for
// positions not yet written.
func (r *rig) stepTo(pos uint64) {
	r.t.Helper()
	ctx := context.Background()
	for r.next <= pos {
		var data []byte
		var err error
		testutil.Eventually(r.t, waitLong, func() bool {
			data, err = r.l.Read(ctx, log.Position(r.next))
			return !errors.Is(err, log.ErrNotWritten)
		})
		if err != nil {
			r.t.Fatal(err)
		}
		typ, payload, err := entry.Decode(r.next, data)
		if err != nil {
			r.t.Fatal(err)
		}
		switch typ {
		case entry.TypeIntention:
			in, err := intention.Decode(payload)
			if err != nil {
				r.t.Fatal(err)
			}
			d, delta, err := r.st.Apply(r.next, in)
			if err != nil {
				r.t.Fatal(err)
			}
			if d.Outcome == processor.Committed {
				r.deltas[r.next] = delta
				r.f.Produced(delta, r.local)
			}
		case entry.TypeAfterimage:
			ai, err := afterimage.Decode(payload)
			if err != nil {
				r.t.Fatal(err)
			}
			r.st.Skip(r.next)
			r.f.Saw(r.next, ai.Intention)
		case entry.TypeCheckpoint:
			if k, _ := entry.CheckpointKind(payload); k == entry.CheckpointCut {
				delta, err := r.st.Cut(r.next)
				if err != nil {
					r.t.Fatal(err)
				}
				r.deltas[r.next] = delta
				r.f.Produced(delta, r.local)
			} else {
				r.st.Skip(r.next)
			}
		default:
			r.st.Skip(r.next)
		}
		r.next++
	}
}

// findAfterimage returns the first afterimage of in at or after from, or 0.
func (r *rig) findAfterimage(in, from uint64) (uint64, *afterimage.Afterimage) {
	r.t.Helper()
	ctx := context.Background()
	tail, _ := r.l.Tail(ctx)
	for p := from; p < uint64(tail); p++ {
		data, err := r.l.Read(ctx, log.Position(p))
		if err != nil {
			continue
		}
		if typ, _, _ := entry.Decode(p, data); typ != entry.TypeAfterimage {
			continue
		}
		if ai := readAfterimage(r.t, r.l, p); ai.Intention == in {
			return p, ai
		}
	}
	return 0, nil
}

// awaitAfterimage waits for the flusher to append an afterimage of in.
func (r *rig) awaitAfterimage(in uint64) (uint64, *afterimage.Afterimage) {
	r.t.Helper()
	var p uint64
	var ai *afterimage.Afterimage
	testutil.Eventually(r.t, waitLong, func() bool {
		p, ai = r.findAfterimage(in, in+1)
		return p != 0
	})
	return p, ai
}

// flushed commits an intention of ops, replays it, waits for its
// afterimage and replays that too: it returns both positions.
func (r *rig) flushed(ops ...intention.Op) (p, a uint64) {
	r.t.Helper()
	p = r.intent(ops...)
	r.stepTo(p)
	a, _ = r.awaitAfterimage(p)
	r.stepTo(a)
	return p, a
}

// noAfterimage checks that no afterimage of in is written: it waits until
// the flusher is at rest (nothing queued, no write under way), when every
// afterimage it decided to write is in the log and it writes no other
// until the test gives it work.
func (r *rig) noAfterimage(in uint64) {
	r.t.Helper()
	testutil.Eventually(r.t, waitLong, r.f.quiescent)
	r.notWritten(in)
}

// serialHeld checks that the serial writer holds the write of held back
// until a confirmation arrives, and that no afterimage of any of ins is in
// the log meanwhile (the one writer cannot write it while it waits).
func (r *rig) serialHeld(held uint64, ins ...uint64) {
	r.t.Helper()
	testutil.Eventually(r.t, waitLong, func() bool { return r.f.serialWaitingOn() == held })
	r.notWritten(ins...)
}

func (r *rig) notWritten(ins ...uint64) {
	r.t.Helper()
	for _, in := range ins {
		if p, _ := r.findAfterimage(in, in+1); p != 0 {
			r.t.Fatalf("afterimage of %d written at %d", in, p)
		}
	}
}

func ptrKinds(ai *afterimage.Afterimage) (intent, phys []afterimage.Ptr) {
	for _, nd := range ai.Nodes {
		for _, p := range []afterimage.Ptr{nd.Left, nd.Right} {
			switch p.Kind {
			case afterimage.PtrIntention:
				intent = append(intent, p)
			case afterimage.PtrAfterimage:
				phys = append(phys, p)
			}
		}
	}
	return intent, phys
}

// loadFrom reads the tree at the afterimage at, through a fresh flusher
// that knows nothing but the log.
func loadFrom(t *testing.T, l log.Log, at uint64) string {
	t.Helper()
	ai := readAfterimage(t, l, at)
	f, err := New(Options{Log: l, Policy: PolicyOriginator}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	if len(ai.Nodes) == 0 {
		return ""
	}
	return treeDump(t, cowtree.FromRoot(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: at, Off: uint32(len(ai.Nodes) - 1)}, f.Loader()))
}

func sevenOps() []intention.Op {
	var ops []intention.Op
	for _, k := range "abcdefg" {
		ops = append(ops, putOp(string(k), "v"+string(k)))
	}
	return ops
}

// TestParallelPointers: a delta written before the afterimage of the delta
// it shares nodes with is confirmed points at it by intention; once that is
// confirmed, by position.
func TestParallelPointers(t *testing.T) {
	r := newRig(t, Options{Workers: 4}, nil)
	p1 := r.intent(sevenOps()...)
	p2 := r.intent(putOp("h", "vh"))
	r.stepTo(p2) // both produced, neither confirmed
	a1, ai1 := r.awaitAfterimage(p1)
	a2, ai2 := r.awaitAfterimage(p2)
	if in, ph := ptrKinds(ai1); len(in)+len(ph) != 0 {
		t.Fatalf("afterimage of the first delta has cross pointers %v %v", in, ph)
	}
	in2, ph2 := ptrKinds(ai2)
	if len(in2) != 2 || len(ph2) != 0 {
		t.Fatalf("second afterimage: intention pointers %v, physical %v; want 2 intention pointers", in2, ph2)
	}
	for _, p := range in2 {
		if p.Pos != p1 {
			t.Fatalf("intention pointer %v, want into %d", p, p1)
		}
	}
	r.stepTo(max(a1, a2))
	if a, ok := r.f.Index(p1); !ok || a != a1 {
		t.Fatalf("index of %d: %d %v", p1, a, ok)
	}
	p3 := r.intent(putOp("i", "vi"), putOp("a", "new"))
	r.stepTo(p3)
	a3, ai3 := r.awaitAfterimage(p3)
	in3, ph3 := ptrKinds(ai3)
	if len(in3) != 0 || len(ph3) == 0 {
		t.Fatalf("after confirmation: intention pointers %v, physical %v", in3, ph3)
	}
	for _, p := range ph3 {
		if p.Pos != a1 && p.Pos != a2 {
			t.Fatalf("physical pointer %v, want into %d or %d", p, a1, a2)
		}
	}
	r.stepTo(a3)
	s := r.f.Stats()
	if s.AfterimagesWritten != 3 || s.Confirmed != 3 || s.PointersIntention != 2 || s.PointersPhysical != uint64(len(ph3)) || s.PendingDeltas != 0 || s.UnflushedBytes != 0 {
		t.Fatalf("stats %+v", s)
	}
	// The afterimages, with both pointer kinds, make the tree from the log
	// alone.
	if got, want := loadFrom(t, r.l, a3), treeDump(t, r.st.Tree()); got != want {
		t.Fatalf("tree from the log:\n%s\nwant\n%s", got, want)
	}
	if got := loadFrom(t, r.l, a2); got != "a=va b=vb c=vc d=vd e=ve f=vf g=vg h=vh " {
		t.Fatalf("tree at 2: %s", got)
	}
}

// TestSerialWaitsAndWritesPhysical: serial mode writes one afterimage at a
// time, after the previous one is confirmed, with physical pointers only.
func TestSerialWaitsAndWritesPhysical(t *testing.T) {
	r := newRig(t, Options{Serial: true}, nil)
	p1 := r.intent(sevenOps()...)
	p2 := r.intent(putOp("h", "vh"))
	p3 := r.intent(putOp("0", "v0"))
	r.stepTo(p3)
	a1, _ := r.awaitAfterimage(p1)
	r.serialHeld(p1, p2, p3)
	r.stepTo(a1)
	a2, ai2 := r.awaitAfterimage(p2)
	r.serialHeld(p2, p3)
	in2, ph2 := ptrKinds(ai2)
	if len(in2) != 0 || len(ph2) != 2 {
		t.Fatalf("serial afterimage: intention pointers %v, physical %v", in2, ph2)
	}
	for _, p := range ph2 {
		if p.Pos != a1 {
			t.Fatalf("pointer %v, want into %d", p, a1)
		}
	}
	r.stepTo(a2)
	a3, ai3 := r.awaitAfterimage(p3)
	if in3, _ := ptrKinds(ai3); len(in3) != 0 {
		t.Fatalf("intention pointers %v", in3)
	}
	r.stepTo(a3)
	if s := r.f.Stats(); s.PointersIntention != 0 || s.Confirmed != 3 {
		t.Fatalf("stats %+v", s)
	}
	for _, ai := range []*afterimage.Afterimage{readAfterimage(t, r.l, a1), ai2, ai3} {
		if ai.Base != ai.Intention {
			t.Fatalf("serial afterimage of %d with base %d", ai.Intention, ai.Base)
		}
	}
	if got, want := loadFrom(t, r.l, a3), treeDump(t, r.st.Tree()); got != want {
		t.Fatalf("tree from the log:\n%s\nwant\n%s", got, want)
	}
}

// TestBaseWatermark: an afterimage's Base is its own intention when every
// earlier delta is confirmed, else the committed intention before the
// oldest unconfirmed delta.
func TestBaseWatermark(t *testing.T) {
	r := newRig(t, Options{Workers: 4}, nil)
	p1 := r.intent(putOp("a", "1"))
	r.stepTo(p1)
	a1, ai1 := r.awaitAfterimage(p1)
	if ai1.Base != p1 {
		t.Fatalf("first afterimage base %d", ai1.Base)
	}
	r.stepTo(a1)

	p3 := r.intent(putOp("b", "1"))
	r.stepTo(p3)
	a3, ai3 := r.awaitAfterimage(p3)
	if ai3.Base != p3 {
		t.Fatalf("base %d, want %d (everything before confirmed)", ai3.Base, p3)
	}
	r.stepTo(a3)

	// p5 and p6 are produced together; p5's delta is unconfirmed when p6's
	// afterimage is written, so p6's base is the committed intention before
	// p5: p3, not the aborted p4.
	p4 := r.aborted()
	p5 := r.intent(putOp("c", "1"))
	p6 := r.intent(putOp("d", "1"))
	r.stepTo(p6)
	if _, ok := r.deltas[p4]; ok {
		t.Fatal("setup: the aborted intention committed")
	}
	a5, ai5 := r.awaitAfterimage(p5)
	a6, ai6 := r.awaitAfterimage(p6)
	if ai5.Base != p5 {
		t.Fatalf("afterimage of %d: base %d, want itself", p5, ai5.Base)
	}
	if ai6.Base != p3 {
		t.Fatalf("afterimage of %d: base %d, want %d (p5 %d unconfirmed, p4 %d aborted)", p6, ai6.Base, p3, p5, p4)
	}
	r.stepTo(max(a5, a6))
	p9 := r.intent(putOp("e", "1"))
	r.stepTo(p9)
	if _, ai := r.awaitAfterimage(p9); ai.Base != p9 {
		t.Fatalf("base %d after everything was confirmed", ai.Base)
	}
	// The tree at a Base is fully loadable from the log.
	if got := loadFrom(t, r.l, a3); got != "a=1 b=1 " {
		t.Fatalf("tree at base %d: %s", p3, got)
	}
}

// TestBaseFromStart: with nothing confirmed yet, the base of a later
// afterimage is the position the flusher started after.
func TestBaseFromStart(t *testing.T) {
	l := newLog(t, nil)
	for range 4 {
		appendData(t, l, []byte("replayed before this flusher"))
	}
	f, err := New(Options{Log: l, Workers: 2}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	st := processor.NewState(testHeader, cowtree.New(f.Loader()), 4)
	p5 := appendIntention(t, l, &intention.Intention{Snapshot: 4, Ops: []intention.Op{putOp("a", "1")}})
	p6 := appendIntention(t, l, &intention.Intention{Snapshot: 4, Ops: []intention.Op{putOp("b", "1")}})
	f.Produced(mustApply(t, st, p5, &intention.Intention{Snapshot: 4, Ops: []intention.Op{putOp("a", "1")}}), true)
	f.Produced(mustApply(t, st, p6, &intention.Intention{Snapshot: 4, Ops: []intention.Op{putOp("b", "1")}}), true)
	r := &rig{t: t, l: l}
	_, ai := r.awaitAfterimage(p6)
	if ai.Base != 4 {
		t.Fatalf("base %d, want the start 4", ai.Base)
	}
	// Afterimages of intentions at or before the start are not indexed
	// from the stream (their earlier duplicates were never seen).
	f.Saw(100, 3)
	if _, ok := f.Index(3); ok {
		t.Fatal("indexed an intention replayed before the flusher")
	}
}

func TestSawDuplicates(t *testing.T) {
	r := newRig(t, Options{Workers: 2}, nil)
	p1, a1 := r.flushed(putOp("a", "1"))
	// Later afterimages of the same intention: counted, ignored.
	dup := appendAfterimage(t, r.l, &afterimage.Afterimage{Intention: p1, Base: p1, Nodes: []afterimage.Node{leaf("a", "1", p1)}})
	r.stepTo(dup)
	if a, _ := r.f.Index(p1); a != a1 {
		t.Fatalf("index moved to %d", a)
	}
	if s := r.f.Stats(); s.Duplicates != 1 || s.Confirmed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWaitRoom(t *testing.T) {
	r := newRig(t, Options{Workers: 2, MaxUnflushedBytes: 1}, nil)
	ctx := context.Background()
	if err := r.f.WaitRoom(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.f.Stats(); s.BackpressureWaits != 0 {
		t.Fatalf("waits %d with nothing pending", s.BackpressureWaits)
	}
	p1 := r.intent(putOp("a", strings.Repeat("x", 100)))
	r.stepTo(p1)
	if s := r.f.Stats(); s.UnflushedBytes != r.deltas[p1].Bytes || s.PendingDeltas != 1 {
		t.Fatalf("stats %+v, delta of %d bytes", s, r.deltas[p1].Bytes)
	}
	done := make(chan error, 2)
	go func() { done <- r.f.WaitRoom(ctx) }()
	go func() { done <- r.f.WaitRoom(ctx) }()
	blocked(t, "WaitRoom over budget", done, func() bool { return r.f.Stats().BackpressureWaits == 2 })
	// Written is not enough: it must be confirmed.
	a1, _ := r.awaitAfterimage(p1)
	blocked(t, "WaitRoom before confirmation", done, r.f.quiescent)
	r.stepTo(a1)
	for range 2 {
		if err := within(t, "WaitRoom", done); err != nil {
			t.Fatal(err)
		}
	}
	if s := r.f.Stats(); s.BackpressureWaits != 2 || s.UnflushedBytes != 0 || s.PendingDeltas != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A wait cancelled while it waits returns the context's error.
	p2 := r.intent(putOp("b", "1"))
	r.stepTo(p2)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { done <- r.f.WaitRoom(cctx) }()
	blocked(t, "WaitRoom to be cancelled", done, func() bool { return r.f.Stats().BackpressureWaits == 3 })
	cancel()
	if err := within(t, "cancelled WaitRoom", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled WaitRoom: %v", err)
	}
	// At the budget exactly is room. (Deltas are deterministic: a dry run
	// gives the size.)
	in := &intention.Intention{Ops: []intention.Op{putOp("a", "1")}}
	size := mustApply(t, processor.NewState(testHeader, cowtree.New(nil), 0), 1, in).Bytes
	r2 := newRig(t, Options{Workers: 2, Policy: PolicyOriginator, MaxUnflushedBytes: size}, nil)
	r2.local = false
	q := r2.intent(in.Ops...)
	r2.stepTo(q)
	if r2.deltas[q].Bytes != size {
		t.Fatalf("delta of %d bytes, dry run %d", r2.deltas[q].Bytes, size)
	}
	if err := r2.f.WaitRoom(ctx); err != nil || r2.f.Stats().BackpressureWaits != 0 {
		t.Fatalf("at the budget: %v, %d waits", err, r2.f.Stats().BackpressureWaits)
	}
	// Over it, WaitRoom waits: with a context already done, it returns
	// the context's error (at the budget, it returned nil before looking).
	q2 := r2.intent(putOp("b", "1"))
	r2.stepTo(q2)
	cctx2, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := r2.f.WaitRoom(cctx2); !errors.Is(err, context.Canceled) || r2.f.Stats().BackpressureWaits != 1 {
		t.Fatalf("over the budget: %v, %d waits", err, r2.f.Stats().BackpressureWaits)
	}
}

// TestFlushUpTo: Flush writes what it needs itself (whatever the policy)
// and returns once everything up to upTo is confirmed, not later.
func TestFlushUpTo(t *testing.T) {
	r := newRig(t, Options{Workers: 4, Policy: PolicyOriginator}, nil)
	r.local = false // another node's intentions: not ours to write
	ctx := context.Background()
	if err := r.f.Flush(ctx, 1<<40); err != nil {
		t.Fatalf("Flush with nothing pending: %v", err)
	}
	p1 := r.intent(putOp("a", "1"))
	p2 := r.intent(putOp("b", "1"))
	p3 := r.intent(putOp("c", "1"))
	r.stepTo(p3)
	r.noAfterimage(p1)
	done := make(chan error, 1)
	go func() { done <- r.f.Flush(ctx, p2) }()
	a1, _ := r.awaitAfterimage(p1)
	a2, _ := r.awaitAfterimage(p2)
	// Appends do not wake a waiting Flush: one wait so far.
	blocked(t, "Flush before confirmation", done, func() bool { return r.f.flushWaits() == 1 })
	r.stepTo(min(a1, a2))
	// The confirmation woke it; it looked and went back to wait.
	blocked(t, "Flush with one delta confirmed", done, func() bool { return r.f.flushWaits() == 2 })
	r.stepTo(max(a1, a2))
	if err := within(t, "Flush", done); err != nil {
		t.Fatal(err)
	}
	// Flush(p2) wrote nothing after p2.
	r.noAfterimage(p3)
	if s := r.f.Stats(); s.PendingDeltas != 1 || s.AfterimagesWritten != 2 {
		t.Fatalf("stats %+v", s)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { done <- r.f.Flush(cctx, p3) }()
	blocked(t, "Flush to be cancelled", done, func() bool { return r.f.flushWaits() == 3 })
	cancel()
	if err := within(t, "cancelled Flush", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("unconfirmed Flush cancelled: %v", err)
	}
	a3, _ := r.awaitAfterimage(p3) // the cancelled Flush queued it
	done = make(chan error, 1)
	go func() { done <- r.f.Flush(ctx, p3) }()
	r.stepTo(a3)
	if err := within(t, "Flush", done); err != nil {
		t.Fatal(err)
	}
	if s := r.f.Stats(); s.PendingDeltas != 0 || s.AfterimagesWritten != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPolicies(t *testing.T) {
	t.Run("all writes other nodes' deltas at once", func(t *testing.T) {
		r := newRig(t, Options{Policy: PolicyAll, TakeoverDelay: time.Hour}, nil)
		r.local = false
		p := r.intent(putOp("a", "1"))
		r.stepTo(p)
		r.awaitAfterimage(p)
	})
	t.Run("takeover writes them after the delay", func(t *testing.T) {
		const delay = 100 * time.Millisecond
		r := newRig(t, Options{Policy: PolicyTakeover, TakeoverDelay: delay}, nil)
		r.local = false
		p := r.intent(putOp("a", "1"))
		began := time.Now()
		r.stepTo(p)
		r.awaitAfterimage(p)
		// The delay is the subject: a lower bound, which load cannot break.
		if waited := time.Since(began); waited < delay {
			t.Fatalf("taken over after %v, before the delay %v", waited, delay)
		}
	})
	t.Run("takeover leaves confirmed deltas alone", func(t *testing.T) {
		const delay = 40 * time.Millisecond
		r := newRig(t, Options{Policy: PolicyTakeover, TakeoverDelay: delay}, nil)
		r.local = false
		p := r.intent(putOp("a", "1"))
		r.stepTo(p)
		produced := time.Now() // the delta's delay runs from before this
		// The originator writes it first.
		at := appendAfterimage(t, r.l, &afterimage.Afterimage{Intention: p, Base: p, Nodes: []afterimage.Node{leaf("a", "1", p)}})
		r.stepTo(at)
		// A takeover pass that began once the delay was over looked at
		// the delta (it would have queued it, unconfirmed) and left it.
		testutil.Eventually(t, waitLong, func() bool { return !r.f.lastTakeoverPass().Before(produced.Add(delay)) })
		testutil.Eventually(t, waitLong, r.f.quiescent)
		if s := r.f.Stats(); s.AfterimagesWritten != 0 || s.Confirmed != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	for p, want := range map[Policy]string{PolicyTakeover: "takeover", PolicyAll: "all", PolicyOriginator: "originator", 7: "policy(7)"} {
		if got := p.String(); got != want {
			t.Fatalf("Policy(%d).String() = %q, want %q", uint8(p), got, want)
		}
	}
}

func TestStopUnblocksWaiters(t *testing.T) {
	gate := memlog.NewGate()
	defer gate.Release()
	r := newRig(t, Options{Workers: 2, MaxUnflushedBytes: 1}, &memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && c.Seq >= 2 { // the header and the intention pass; afterimages hang
			return memlog.Fault{Hold: gate}
		}
		return memlog.Fault{}
	}})
	ctx := context.Background()
	p1 := r.intent(putOp("a", "1"))
	r.stepTo(p1)
	<-gate.Held() // the afterimage append hangs in the log
	done := make(chan error, 2)
	go func() { done <- r.f.WaitRoom(ctx) }()
	go func() { done <- r.f.Flush(ctx, p1) }()
	blocked(t, "waits", done, func() bool { return r.f.Stats().BackpressureWaits == 1 && r.f.flushWaits() == 1 })
	stopped := make(chan error, 1)
	go func() { r.f.Stop(); stopped <- nil }()
	within(t, "Stop with an append in flight", stopped)
	for range 2 {
		if err := within(t, "a wait", done); !errors.Is(err, ErrStopped) {
			t.Fatalf("wait returned %v, want ErrStopped", err)
		}
	}
	if err := r.f.WaitRoom(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("WaitRoom after Stop: %v", err)
	}
	if err := r.f.Flush(ctx, p1); !errors.Is(err, ErrStopped) {
		t.Fatalf("Flush after Stop: %v", err)
	}
	before := r.f.Stats().PendingDeltas
	r.f.Produced(&processor.Delta{Pos: 99}, true)
	if r.f.Stats().PendingDeltas != before {
		t.Fatal("Produced after Stop was kept")
	}
	r.f.Stop() // twice is fine
}

// --- A processor-driven flusher, as the DB runs it ----------------------------

// mini is a DB in miniature: a Runner feeding a Flusher, as db.go does.
type mini struct {
	t       *testing.T
	l       *memlog.Log
	f       *Flusher
	r       *processor.Runner
	mu      sync.Mutex
	waiters map[uint64]chan processor.Decision
	tree    atomic.Pointer[cowtree.Tree]
	maxHeld atomic.Int64 // highest CachedBytes seen after an Evict
	model   map[string]string
	last    uint64 // last committed position
}

func startMini(t *testing.T, o Options, lo *memlog.Options) *mini {
	t.Helper()
	m := &mini{t: t, l: newLog(t, lo), waiters: map[uint64]chan processor.Decision{}, model: map[string]string{}}
	var runner atomic.Pointer[processor.Runner]
	o.Log = m.l
	o.Appended = func() {
		if r := runner.Load(); r != nil {
			r.Notify()
		}
	}
	f, err := New(o, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.f = f
	tree := cowtree.New(f.Loader())
	m.tree.Store(&tree)
	r, err := processor.Start(processor.Config{Log: m.l, State: processor.NewState(testHeader, tree, 0), OnEvent: m.onEvent})
	if err != nil {
		t.Fatal(err)
	}
	m.r = r
	runner.Store(r)
	t.Cleanup(func() {
		f.Stop()
		r.Stop()
	})
	return m
}

func (m *mini) onEvent(ev processor.Event) {
	if ev.Delta != nil {
		tr := ev.Delta.Tree
		m.tree.Store(&tr)
		m.f.Produced(ev.Delta, true)
	}
	if ev.Afterimage != nil {
		m.f.Saw(ev.Pos, ev.Afterimage.Intention)
	}
	if d := ev.Decision; d != nil {
		m.mu.Lock()
		ch := m.waiters[d.Token]
		delete(m.waiters, d.Token)
		m.mu.Unlock()
		if ch != nil {
			ch <- *d
		}
	}
	m.f.Evict(*m.tree.Load())
	if b := m.f.pager.Clock().Bytes(); b > m.maxHeld.Load() {
		m.maxHeld.Store(b)
	}
}

// commit appends blind writes, waiting for room first, and waits for the
// decision.
func (m *mini) commit(tok uint64, ops ...intention.Op) {
	m.t.Helper()
	ctx := context.Background()
	if err := m.f.WaitRoom(ctx); err != nil {
		m.t.Fatal(err)
	}
	ch := make(chan processor.Decision, 1)
	m.mu.Lock()
	m.waiters[tok] = ch
	m.mu.Unlock()
	appendIntention(m.t, m.l, &intention.Intention{Snapshot: m.r.Applied(), Token: tok, Ops: ops})
	m.r.Notify()
	select {
	case d := <-ch:
		if d.Outcome != processor.Committed {
			m.t.Fatalf("blind write %v", d.Outcome)
		}
		m.last = d.Pos
		for _, op := range ops {
			m.model[string(op.Key)] = string(op.Value)
		}
	case <-time.After(waitLong):
		m.t.Fatal("no decision")
	}
}

func (m *mini) workload(seed uint64, n int) {
	m.t.Helper()
	rnd := rand.New(rand.NewPCG(seed, 7))
	for i := range n {
		var ops []intention.Op
		for range 1 + rnd.IntN(3) {
			k := fmt.Sprintf("key%04d", rnd.IntN(400))
			ops = append(ops, putOp(k, fmt.Sprintf("%d-%s", i, strings.Repeat("v", rnd.IntN(200)))))
		}
		m.commit(uint64(i+1), ops...)
	}
}

func (m *mini) modelDump() string {
	var b strings.Builder
	for _, k := range sortedKeys(m.model) {
		fmt.Fprintf(&b, "%s=%s ", k, m.model[k])
	}
	return b.String()
}

// TestEvictionKeepsCacheNearBudget: with a small cache, the clean nodes in
// memory stay near the budget while the workload runs, and every value is
// still read back (from the log) afterwards.
func TestEvictionKeepsCacheNearBudget(t *testing.T) {
	const budget = 32 << 10
	m := startMini(t, Options{Workers: 4, CacheBytes: budget, MaxUnflushedBytes: 64 << 10}, nil)
	m.workload(1, 400)
	if err := m.f.Flush(context.Background(), m.last); err != nil {
		t.Fatal(err)
	}
	// Stop replay, so this goroutine may evict.
	if err := m.r.Stop(); err != nil {
		t.Fatal(err)
	}
	tree := *m.tree.Load()
	for range 10 {
		m.f.Evict(tree)
	}
	s := m.f.Stats()
	t.Logf("cached %d (budget %d, highest seen %d); %d evictions, %d confirmed", s.CachedBytes, budget, m.maxHeld.Load(), s.Evictions, s.Confirmed)
	if s.CachedBytes > budget {
		t.Fatalf("cached %d bytes, budget %d", s.CachedBytes, budget)
	}
	if hi := m.maxHeld.Load(); hi > 2*budget {
		t.Fatalf("clean nodes reached %d bytes, budget %d", hi, budget)
	}
	if s.Evictions == 0 || s.Confirmed != 400 || s.PendingDeltas != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Exactly the latest version's nodes in memory are counted.
	if got, want := s.CachedBytes, residentBytes(tree); got != want {
		t.Fatalf("cached %d bytes, the latest version holds %d", got, want)
	}
	misses := m.f.Stats().CacheMisses
	if got := treeDump(t, tree); got != m.modelDump() {
		t.Fatalf("tree after eviction differs from the model")
	}
	if m.f.Stats().CacheMisses == misses {
		t.Fatal("nothing was read back")
	}
	if got, want := m.f.Stats().CachedBytes, residentBytes(tree); got != want {
		t.Fatalf("after reading back: cached %d bytes, the latest version holds %d", got, want)
	}
}

// TestSerialAndParallelAgree: the same workload flushed serially and in
// parallel (with slow appends) leaves the same state, and the log alone
// rebuilds it; serial mode writes no intention pointers.
func TestSerialAndParallelAgree(t *testing.T) {
	var dumps []string
	for _, serial := range []bool{true, false} {
		m := startMini(t, Options{Serial: serial, Workers: 8, CacheBytes: 16 << 10}, &memlog.Options{AppendLatency: 200 * time.Microsecond})
		m.workload(2, 150)
		if err := m.f.Flush(context.Background(), m.last); err != nil {
			t.Fatal(err)
		}
		s := m.f.Stats()
		intentionPtrs := 0
		for _, ai := range afterimagesIn(t, m.l) {
			intentionPtrs += ai.PointerCounts().Intention
		}
		t.Logf("serial %v: %d afterimages, pointers %d physical %d intention (%d in the log)", serial, s.AfterimagesWritten, s.PointersPhysical, s.PointersIntention, intentionPtrs)
		if serial && (s.PointersIntention != 0 || intentionPtrs != 0) {
			t.Fatalf("serial mode wrote %d intention pointers (%d counted)", intentionPtrs, s.PointersIntention)
		}
		if uint64(intentionPtrs) != s.PointersIntention {
			t.Fatalf("%d intention pointers in the log, %d counted", intentionPtrs, s.PointersIntention)
		}
		at, ok := m.f.Index(m.last)
		if !ok {
			t.Fatalf("last delta %d not confirmed", m.last)
		}
		fromLog := loadFrom(t, m.l, at)
		if fromLog != m.modelDump() {
			t.Fatalf("serial %v: the log's tree differs from the model", serial)
		}
		dumps = append(dumps, treeDump(t, *m.tree.Load()))
	}
	if dumps[0] != dumps[1] {
		t.Fatal("serial and parallel states differ")
	}
}

// TestLateDuplicateAfterIndexDropped: a duplicate afterimage that arrives
// after the bounded index dropped its intention is still a duplicate: it is
// counted, and never indexed as the active afterimage. (Regression: Saw used
// the index to recognise duplicates, so once the entry was dropped a late
// duplicate was indexed as active and not counted.)
func TestLateDuplicateAfterIndexDropped(t *testing.T) {
	r := newRig(t, Options{Workers: 2, IndexEntries: 1}, nil)
	p1, a1 := r.flushed(putOp("a", "1"))
	r.flushed(putOp("b", "1"))
	if _, ok := r.f.Index(p1); ok {
		t.Fatal("setup: the index kept the older entry")
	}
	dup := appendAfterimage(t, r.l, &afterimage.Afterimage{Intention: p1, Base: p1, Nodes: []afterimage.Node{leaf("a", "1", p1)}})
	r.stepTo(dup)
	if a, ok := r.f.Index(p1); ok && a == dup {
		t.Fatalf("the duplicate at %d was indexed as the active afterimage of %d (active: %d)", dup, p1, a1)
	}
	if s := r.f.Stats(); s.Duplicates != 1 || s.Confirmed != 2 {
		t.Fatalf("duplicates %d, confirmed %d; want 1 and 2", s.Duplicates, s.Confirmed)
	}
	// An afterimage of an intention that never committed is not indexed
	// either.
	p3 := r.aborted()
	r.stepTo(p3)
	bogus := appendAfterimage(t, r.l, &afterimage.Afterimage{Intention: p3, Base: p3, Nodes: []afterimage.Node{leaf("x", "x", p3)}})
	r.stepTo(bogus)
	if _, ok := r.f.Index(p3); ok {
		t.Fatal("an afterimage of an aborted intention was indexed")
	}
}

// TestSerialResolvesPastIndex: serial mode writes physical pointers even to
// deltas the bounded index has forgotten, by scanning the log.
func TestSerialResolvesPastIndex(t *testing.T) {
	r := newRig(t, Options{Serial: true, IndexEntries: 1}, nil)
	p1, a1 := r.flushed(sevenOps()...)
	r.flushed(putOp("h", "vh"))
	if _, ok := r.f.Index(p1); ok {
		t.Fatal("setup: the index still knows the first delta")
	}
	// Adding "0" copies the path d, b, a: b's right child c is in delta 1.
	p3 := r.intent(putOp("0", "v0"))
	r.stepTo(p3)
	a3, ai3 := r.awaitAfterimage(p3)
	in, ph := ptrKinds(ai3)
	if len(in) != 0 {
		t.Fatalf("intention pointers %v", in)
	}
	var into1 bool
	for _, p := range ph {
		into1 = into1 || p.Pos == a1
	}
	if !into1 {
		t.Fatalf("no physical pointer into the forgotten afterimage %d: %v", a1, ph)
	}
	if r.f.Stats().ForwardScans == 0 {
		t.Fatal("no forward scan")
	}
	r.stepTo(a3)
	if got, want := loadFrom(t, r.l, a3), treeDump(t, r.st.Tree()); got != want {
		t.Fatalf("tree from the log:\n%s\nwant\n%s", got, want)
	}
}

// TestSerialWaitsForOtherNodes: in serial mode a delta is written only once
// every earlier delta is confirmed, also one another node is writing.
func TestSerialWaitsForOtherNodes(t *testing.T) {
	r := newRig(t, Options{Serial: true, Policy: PolicyOriginator}, nil)
	p1 := r.intent(sevenOps()...)
	p2 := r.intent(putOp("h", "vh"))
	r.local = false
	r.stepTo(p1) // another node's
	r.local = true
	r.stepTo(p2) // ours
	r.serialHeld(p2, p1, p2)
	// The other node writes its afterimage; ours waits until replay
	// confirms it.
	ai1, _ := Serialize(r.deltas[p1], p1, nil)
	a1 := appendAfterimage(t, r.l, ai1)
	r.serialHeld(p2, p2)
	r.stepTo(a1)
	_, ai2 := r.awaitAfterimage(p2)
	if ai2.Base != p2 {
		t.Fatalf("base %d, want %d", ai2.Base, p2)
	}
	if in, ph := ptrKinds(ai2); len(in) != 0 || len(ph) != 2 || ph[0].Pos != a1 {
		t.Fatalf("pointers %v %v", in, ph)
	}
}

// TestAppendErrorsRetried: a failed afterimage append is retried until it
// lands.
func TestAppendErrorsRetried(t *testing.T) {
	errAppend := errors.New("append refused")
	var fails atomic.Int64
	fails.Store(3)
	r := newRig(t, Options{Workers: 2}, &memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && c.Seq >= 2 && fails.Add(-1) >= 0 {
			return memlog.Fault{Err: errAppend}
		}
		return memlog.Fault{}
	}})
	r.flushed(putOp("a", "1"))
	if s := r.f.Stats(); s.AppendErrors != 3 || s.AfterimagesWritten != 1 || s.Confirmed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestWaitRoomFailsWhenTheLogRefuses: over budget with afterimage appends
// failing, a commit gets an error instead of waiting forever.
func TestWaitRoomFailsWhenTheLogRefuses(t *testing.T) {
	var fail atomic.Bool
	l := newLog(t, &memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && fail.Load() {
			return memlog.Fault{Err: errors.New("disk on fire")}
		}
		return memlog.Fault{}
	}})
	f, err := New(Options{Log: l, MaxUnflushedBytes: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	in := &intention.Intention{Snapshot: 0, Ops: []intention.Op{putOp("k", "v")}}
	pos := appendIntention(t, l, in)
	fail.Store(true)
	st := processor.NewState(testHeader, cowtree.New(f.Loader()), pos-1)
	f.Produced(mustApply(t, st, pos, in), true)
	testutil.Eventually(t, waitLong, func() bool { return f.Stats().AppendErrors > 0 })
	if err := f.WaitRoom(context.Background()); !errors.Is(err, ErrCannotFlush) {
		t.Fatalf("WaitRoom over budget with a failing log: %v", err)
	}
	fail.Store(false) // the retry lands; room again once confirmed
	testutil.Eventually(t, waitLong, func() bool { return f.Stats().AfterimagesWritten > 0 })
}
