package processor_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/log/seglog"
	"github.com/cruzlog/cruzdb/processor"
)

// tailLogs are the logs on which committers apply their own intentions:
// a TailWaiter only (the runner waits on WaitTail for it: waitNotifier),
// and seglog, a log.TailNotifier. Each holds the header at position 0.
func tailLogs(t *testing.T) []struct {
	name string
	open func(t *testing.T) log.Log
} {
	return []struct {
		name string
		open func(t *testing.T) log.Log
	}{
		{"waiter", func(t *testing.T) log.Log {
			return &waiterLog{Log: newLog(t, nil), changed: make(chan struct{})}
		}},
		{"seglog", func(t *testing.T) log.Log {
			l, err := seglog.Open(t.TempDir(), &seglog.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			if p := appendData(t, l, entry.EncodeHeader(&runnerHeader)); p != 0 {
				t.Fatalf("header at %d", p)
			}
			return l
		}},
	}
}

// onTailLogs runs f as a subtest on each of tailLogs, with a runner
// started on it that reports to c.
func onTailLogs(t *testing.T, f func(t *testing.T, l log.Log, c *collector, r *processor.Runner)) {
	for _, tl := range tailLogs(t) {
		t.Run(tl.name, func(t *testing.T) {
			l := tl.open(t)
			c := newCollector()
			f(t, l, c, startOn(t, l, c))
		})
	}
}

func startOn(t *testing.T, l log.Log, c *collector) *processor.Runner {
	return start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
}

// TestLocalCommitsLeaveApplierParked: while one committer commits and
// applies its own intentions, the parked applying goroutine is never woken
// (it was by every group commit: ~5.7 µs on the committer's path); the last
// commit re-arms the tail notice, so another writer's append after them is
// still applied.
func TestLocalCommitsLeaveApplierParked(t *testing.T) {
	onTailLogs(t, func(t *testing.T, l log.Log, c *collector, r *processor.Runner) {
		testutil.WaitFor(t, "the applier to park", waitLong, r.Parked)
		idle := r.IdleWaits()
		for i := range 50 {
			p, ok := localCommit(t, r, l, &intention.Intention{Snapshot: uint64(i), Ops: []intention.Op{put(fmt.Sprint("k", i), "v")}})
			if !ok {
				t.Fatalf("commit %d at %d not applied by its committer with the applier parked", i, p)
			}
			c.nextCommitted(t, uint64(p))
		}
		if n := r.IdleWaits() - idle; n != 0 || !r.Parked() {
			t.Fatalf("the applier woke during 50 local commits (%d more waits, parked %v)", n, r.Parked())
		}
		p := appendIn(t, l, &intention.Intention{Snapshot: 50, Ops: []intention.Op{put("other", "v")}})
		c.nextCommitted(t, p)
	})
}

// TestLastCommitFindsWhatIsLeft: an entry another writer appends after a
// local commit's own position, while that commit is under way, is not
// the committer's to apply; the commit, the last to end, re-arms the
// notice, which finds it at once.
func TestLastCommitFindsWhatIsLeft(t *testing.T) {
	onTailLogs(t, func(t *testing.T, l log.Log, c *collector, r *processor.Runner) {
		for i := range 5 {
			testutil.WaitFor(t, "the applier to park", waitLong, r.Parked)
			data := entry.AppendIntention(nil, &intention.Intention{Snapshot: uint64(2 * i), Ops: []intention.Op{put("a", "1")}})
			r.BeginLocal()
			p1 := appendData(t, l, data)
			p2 := appendIn(t, l, &intention.Intention{Snapshot: uint64(2 * i), Ops: []intention.Op{put("b", "1")}})
			if !r.ApplyLocal(context.Background(), p1, data) {
				t.Fatalf("commit at %d not applied by its committer", p1)
			}
			for _, p := range []uint64{p1, p2} {
				c.nextCommitted(t, p)
			}
		}
		c.none(t)
	})
}

// TestFailedCommitWakesApplier: a local commit that ends without its
// position applied (here: its append failed) wakes the parked applier at
// once, though another commit is still under way: an entry another writer
// appended meanwhile is applied without waiting for that commit to end.
func TestFailedCommitWakesApplier(t *testing.T) {
	onTailLogs(t, func(t *testing.T, l log.Log, c *collector, r *processor.Runner) {
		for i := range 5 {
			testutil.WaitFor(t, "the applier to park", waitLong, r.Parked)
			r.BeginLocal() // stays under way
			r.BeginLocal() // its append fails
			p := appendIn(t, l, &intention.Intention{Snapshot: uint64(2 * i), Ops: []intention.Op{put("a", "1")}})
			c.none(t)
			r.EndLocal()
			c.nextCommitted(t, p)
			data := entry.AppendIntention(nil, &intention.Intention{Snapshot: p, Ops: []intention.Op{put("b", "1")}})
			pa := appendData(t, l, data)
			r.ApplyLocal(context.Background(), pa, data)
			if ev := c.next(t); ev.Pos != pa {
				t.Fatalf("event at %d, want %d", ev.Pos, pa)
			}
		}
		c.none(t)
	})
}

// TestNothingStrandedUnderLocalCommits: committers (some of which end
// after their append without applying, as one that returns early on an
// error does, and some whose append "fails" before it is made) and another
// writer append concurrently; every position is reported once, in order,
// and every intention commits. An entry nobody applies hangs the test.
func TestNothingStrandedUnderLocalCommits(t *testing.T) {
	onTailLogs(t, func(t *testing.T, l log.Log, c *collector, r *processor.Runner) {
		const writers, each = 4, 40
		var wg sync.WaitGroup
		for g := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					in := &intention.Intention{Token: uint64(g*each + i + 1), Ops: []intention.Op{put(fmt.Sprint("w", g, "-", i), "v")}}
					switch i % 5 {
					case 1: // the append fails
						r.BeginLocal()
						r.EndLocal()
					case 2: // appended, then the committer returns early
						r.BeginLocal()
						appendIn(t, l, in)
						r.EndLocal()
					default:
						localCommit(t, r, l, in)
					}
				}
			}()
		}
		const others = 40
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range others {
				appendIn(t, l, &intention.Intention{Token: uint64(1000 + i), Ops: []intention.Op{put(fmt.Sprint("o", i), "v")}})
			}
		}()
		wg.Wait()
		n := uint64(writers*(each-each/5) + others)
		tokens := map[uint64]bool{}
		for p := uint64(1); p <= n; p++ {
			var ev processor.Event
			select {
			case ev = <-c.ch:
			case <-time.After(waitLong):
				tail, _ := l.Tail(context.Background())
				t.Fatalf("position %d not reported; log tail %d; %s", p, tail, r.ParkState())
			}
			if ev.Pos != p || ev.Decision == nil || ev.Decision.Outcome != processor.Committed || tokens[ev.Decision.Token] {
				t.Fatalf("event %+v (decision %+v), want position %d committed once", ev, ev.Decision, p)
			}
			tokens[ev.Decision.Token] = true
		}
		testutil.WaitFor(t, "the applier to park", waitLong, r.Parked)
		c.none(t)
	})
}

// TestApplyLocalWithRiders: the afterimage that rode below a committer's
// intention is decoded from the bytes handed over, not read back from the
// log; an entry handed over that is not an afterimage is read as before.
func TestApplyLocalWithRiders(t *testing.T) {
	var reads2, reads4 atomic.Int64
	w := &waiterLog{Log: newLog(t, &memlog.Options{Inject: readsOf(2, &reads2, readsOf(4, &reads4, nil))}), changed: make(chan struct{})}
	c := newCollector()
	r := startOn(t, w, c)
	testutil.WaitFor(t, "the applier to park", waitLong, r.Parked)
	p1 := appendIn(t, w, &intention.Intention{Snapshot: 0, Token: 1, Ops: []intention.Op{put("a", "1")}})
	if ev := c.next(t); ev.Pos != p1 {
		t.Fatalf("event at %d, want %d", ev.Pos, p1)
	}
	for i, rider := range []struct {
		data  []byte
		reads *atomic.Int64 // of the rider's position (2, then 4)
		want  int64
	}{
		{entry.AppendAfterimage(nil, leafAfterimage(1, "a")), &reads2, 0},
		{entry.AppendIntention(nil, &intention.Intention{Snapshot: 3, Token: 3, Ops: []intention.Op{put("c", "1")}}), &reads4, 1},
	} {
		testutil.WaitFor(t, "the applier to park", waitLong, r.Parked)
		r.BeginLocal()
		pa := appendData(t, w, rider.data)
		data := entry.AppendIntention(nil, &intention.Intention{Snapshot: pa - 1, Token: uint64(10 + i), Ops: []intention.Op{put("b", "1")}})
		pi := appendData(t, w, data)
		// Decoded from a copy its writer reuses at once: nothing of it is kept.
		handed := bytes.Clone(rider.data)
		below := []processor.Appended{r.DecodeAppended(pa, handed)}
		clear(handed)
		if !r.ApplyLocalWith(context.Background(), pi, data, below) {
			t.Fatalf("case %d: commit at %d not applied by its committer", i, pi)
		}
		if ev := c.next(t); ev.Pos != pa || ev.Size != len(rider.data) || (i == 0) != (ev.Afterimage != nil && ev.Afterimage.Intention == 1) {
			t.Fatalf("case %d: event %+v, want position %d (%d bytes)", i, ev, pa, len(rider.data))
		}
		c.nextCommitted(t, pi)
		if n := rider.reads.Load(); n != rider.want {
			t.Fatalf("case %d: the entry handed over at %d was read back %d times, want %d", i, pa, n, rider.want)
		}
	}
}
