package processor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/processor"
)

// localCommit appends in as a committing goroutine does (BeginLocal,
// append, ApplyLocal with the appended bytes) and returns its position
// and whether its decision was made on this goroutine.
func localCommit(t *testing.T, r *processor.Runner, l log.Log, in *intention.Intention) (log.Position, bool) {
	t.Helper()
	data := entry.AppendIntention(nil, in)
	r.BeginLocal()
	p, err := l.Append(context.Background(), data)
	if err != nil {
		r.EndLocal()
		t.Error(err)
		return 0, false
	}
	return p, r.ApplyLocal(context.Background(), uint64(p), data)
}

// TestApplyLocalDecidesOnCaller: on a TailWaiter log, a committer's
// ApplyLocal applies its own intention: when it reports true, the event of
// its position (with its decision) has already been handed to OnEvent, and
// the runner counts it; events stay one per position, in log order.
func TestApplyLocalDecidesOnCaller(t *testing.T) {
	w := &waiterLog{Log: newLog(t, nil), changed: make(chan struct{})}
	c := newCollector()
	r := start(t, processor.Config{Log: w, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
	local := 0
	for i := range 30 {
		p, ok := localCommit(t, r, w, &intention.Intention{Snapshot: uint64(i), Token: uint64(i + 1), Ops: []intention.Op{put(fmt.Sprint("k", i), "v")}})
		if ok {
			local++
			select {
			case ev := <-c.ch:
				if ev.Pos != uint64(p) || ev.Decision == nil || ev.Decision.Outcome != processor.Committed || ev.Decision.Token != uint64(i+1) {
					t.Fatalf("event %+v (decision %+v), want position %d committed", ev, ev.Decision, p)
				}
			default:
				t.Fatalf("ApplyLocal(%d) reported true without an event", p)
			}
			continue
		}
		if ev := c.next(t); ev.Pos != uint64(p) {
			t.Fatalf("event at %d, want %d", ev.Pos, p)
		}
	}
	if local == 0 || r.LocalApplies() != uint64(local) {
		t.Fatalf("%d of 30 commits decided on the committer, runner counts %d", local, r.LocalApplies())
	}
	c.none(t)
}

// TestApplyLocalConcurrentAppenders: committers appending and applying
// concurrently (some find the role taken, some find their position applied
// by another) each get their decision, every position is reported once, in
// log order, and every intention commits.
func TestApplyLocalConcurrentAppenders(t *testing.T) {
	w := &waiterLog{Log: newLog(t, nil), changed: make(chan struct{})}
	c := newCollector()
	r := start(t, processor.Config{Log: w, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
	const writers, each = 8, 30
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				localCommit(t, r, w, &intention.Intention{Snapshot: 0, Token: uint64(g*each + i + 1), Ops: []intention.Op{put(fmt.Sprint("w", g, "-", i), "v")}})
			}
		}()
	}
	wg.Wait()
	tokens := map[uint64]bool{}
	for p := uint64(1); p <= writers*each; p++ {
		ev := c.next(t)
		if ev.Pos != p || ev.Decision == nil || ev.Decision.Outcome != processor.Committed || tokens[ev.Decision.Token] {
			t.Fatalf("event %+v (decision %+v), want position %d committed once", ev, ev.Decision, p)
		}
		tokens[ev.Decision.Token] = true
	}
	c.none(t)
}

// TestApplyLocalAppendErrorHandsBack: while a local commit is under way the
// applying goroutine leaves the tail to it; a commit whose append failed
// (EndLocal, no ApplyLocal) hands the role back, so an entry appended
// meanwhile by another writer is applied.
func TestApplyLocalAppendErrorHandsBack(t *testing.T) {
	w := &waiterLog{Log: newLog(t, nil), changed: make(chan struct{})}
	c := newCollector()
	r := start(t, processor.Config{Log: w, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
	for i := range 5 {
		testutil.WaitFor(t, "the applier to park", waitLong, r.Parked)
		r.BeginLocal() // a committer whose append will fail
		// Another node's append, not a local commit: the applier, parked,
		// leaves it to the local commit under way.
		p := appendIn(t, w, &intention.Intention{Snapshot: uint64(i), Ops: []intention.Op{put("a", "1")}})
		if !r.Parked() {
			t.Fatal("an append woke the applier while a local commit was under way")
		}
		c.none(t)
		r.EndLocal() // the failed append
		c.nextCommitted(t, p)
	}
	c.none(t)
}

// TestApplyLocalLeavesFailuresToTheApplier: a committer that reads a corrupt
// entry below its own does not apply past it; the applying goroutine stops
// on it with the corruption error, as it would have had it read it first.
func TestApplyLocalLeavesFailuresToTheApplier(t *testing.T) {
	w := &waiterLog{Log: newLog(t, nil), changed: make(chan struct{})}
	c := newCollector()
	r := start(t, processor.Config{Log: w, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
	p1, _ := localCommit(t, r, w, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}})
	if ev := c.next(t); ev.Pos != uint64(p1) {
		t.Fatalf("event at %d, want %d", ev.Pos, p1)
	}
	r.BeginLocal()
	bad := bytes.Clone(entry.AppendIntention(nil, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("b", "1")}}))
	bad[len(bad)-1] ^= 0x40
	pb := appendData(t, w, bad)
	good := entry.AppendIntention(nil, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("c", "1")}})
	pg := appendData(t, w, good)
	if r.ApplyLocal(context.Background(), uint64(pg), good) {
		t.Fatalf("ApplyLocal applied %d past the corrupt entry at %d", pg, pb)
	}
	waitDone(t, r)
	var ce *entry.CorruptError
	if err := r.Err(); !errors.Is(err, entry.ErrCorrupt) || !errors.As(err, &ce) || ce.Pos != uint64(pb) {
		t.Fatalf("err %v, want corruption at %d", err, pb)
	}
	c.none(t)
	if r.Applied() != uint64(p1) {
		t.Fatalf("applied %d, want %d", r.Applied(), p1)
	}
}

// TestCatchUpEndsOnTailWaiter: on a TailWaiter log, the catch-up reader
// started for a backlog stops once it has caught up, and commits at the
// tail are then applied by their committers again (a reader that waited
// on the tail instead never stopped, and every commit after the first
// backlog paid its hand-off).
func TestCatchUpEndsOnTailWaiter(t *testing.T) {
	w := &waiterLog{Log: newLog(t, nil), changed: make(chan struct{})}
	for i := range 3 * processor.CatchUpBacklog {
		appendIn(t, w, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put(fmt.Sprint("k", i), "v")}})
	}
	c := newCollector()
	r := start(t, processor.Config{Log: w, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
	for range 3 * processor.CatchUpBacklog {
		c.next(t)
	}
	if n := r.CatchUps(); n != 1 {
		t.Fatalf("%d catch-up readers, want 1", n)
	}
	local := false
	for i := 0; i < 200 && !local; i++ {
		_, local = localCommit(t, r, w, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("t", "v")}})
		c.next(t)
	}
	if !local {
		t.Fatal("no commit at the tail was applied by its committer after the catch-up")
	}
}

// TestApplyLocalOnlyOnTailWaiter: on a polled log (not a log.TailWaiter)
// ApplyLocal applies nothing; the applying goroutine decides, as before.
func TestApplyLocalOnlyOnTailWaiter(t *testing.T) {
	l := newLog(t, nil)
	c := newCollector()
	r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
	for i := range 5 {
		p, ok := localCommit(t, r, l, &intention.Intention{Snapshot: uint64(i), Ops: []intention.Op{put("a", "1")}})
		if ok && r.Applied() < uint64(p) {
			t.Fatalf("ApplyLocal(%d) reported true before the position was applied", p)
		}
		r.Notify()
		c.nextCommitted(t, uint64(p))
	}
	if n := r.LocalApplies(); n != 0 {
		t.Fatalf("%d intentions applied by their committers on a polled log", n)
	}
}
