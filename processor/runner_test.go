package processor_test

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/cruzlog/cruzdb/internal/testutil/fixture"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

// waitLong bounds every wait for something that must happen.
const waitLong = testutil.WaitLong

var runnerHeader = hdr(1000)

// newLog returns a memlog holding the header at position 0.
func newLog(t *testing.T, o *memlog.Options) *memlog.Log {
	t.Helper()
	return fixture.NewLog(t, o, runnerHeader)
}

var (
	appendData = fixture.Append
	appendIn   = fixture.AppendIntention
)

func leafAfterimage(in uint64, key string) *afterimage.Afterimage {
	return &afterimage.Afterimage{Intention: in, Base: in, Nodes: []afterimage.Node{
		{Key: []byte(key), Value: []byte("v"), Pos: in, MaxPos: in, MinTomb: afterimage.NoTombstone, Height: 1},
	}}
}

// collector receives a runner's events.
type collector struct{ ch chan processor.Event }

func newCollector() *collector { return &collector{ch: make(chan processor.Event, 4096)} }

func (c *collector) on(ev processor.Event) { c.ch <- ev }

func (c *collector) next(t *testing.T) processor.Event {
	t.Helper()
	return testutil.Receive(t, "event", c.ch)
}

// nextCommitted checks that the next event is position pos, an intention
// that committed.
func (c *collector) nextCommitted(t *testing.T, pos uint64) {
	t.Helper()
	if ev := c.next(t); ev.Pos != pos || ev.Decision == nil || ev.Decision.Outcome != processor.Committed {
		t.Fatalf("event %+v, want position %d committed", ev, pos)
	}
}

// none checks that no event has arrived. Callers first wait for a sign
// that the runner looked and decided to wait (see readsOf).
func (c *collector) none(t *testing.T) {
	t.Helper()
	select {
	case ev := <-c.ch:
		t.Fatalf("unexpected event %+v", ev)
	default:
	}
}

// readsOf wraps inject (nil: none) to count in n the reads of pos. A
// runner that read a hole and came back to read it again looked, found it
// empty and waits on it, rather than passing it.
func readsOf(pos log.Position, n *atomic.Int64, inject func(memlog.Call, *rand.Rand) memlog.Fault) func(memlog.Call, *rand.Rand) memlog.Fault {
	return func(c memlog.Call, r *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpRead && c.Pos == pos {
			n.Add(1)
		}
		if inject == nil {
			return memlog.Fault{}
		}
		return inject(c, r)
	}
}

// start starts a runner from st with the collector, stopping it at cleanup.
func start(t *testing.T, cfg processor.Config) *processor.Runner {
	t.Helper()
	r, err := processor.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return r
}

func waitDone(t *testing.T, r *processor.Runner) {
	t.Helper()
	select {
	case <-r.Done():
	case <-time.After(waitLong):
		t.Fatal("runner did not stop")
	}
}

func TestRunnerConfigRequired(t *testing.T) {
	l := newLog(t, nil)
	st := processor.NewState(runnerHeader, cowtree.New(nil), 0)
	on := func(processor.Event) {}
	for _, cfg := range []processor.Config{
		{State: st, OnEvent: on},
		{Log: l, OnEvent: on},
		{Log: l, State: st},
	} {
		if r, err := processor.Start(cfg); err == nil {
			r.Stop()
			t.Fatalf("Start(%+v) succeeded", cfg)
		}
	}
}

// TestRunnerEventsInLogOrder: every position is reported once, in order,
// with what it holds, whatever the read-ahead.
func TestRunnerEventsInLogOrder(t *testing.T) {
	for _, ra := range []int{1, 2, 0} {
		t.Run("readahead="+map[int]string{1: "1", 2: "2", 0: "default"}[ra], func(t *testing.T) {
			l := newLog(t, nil)
			ctx := context.Background()
			appendIn(t, l, &intention.Intention{Snapshot: 0, Token: 11, Ops: []intention.Op{put("a", "1")}})                   // 1 commits
			appendIn(t, l, &intention.Intention{Snapshot: 0, Token: 12, Reads: keys("a"), Ops: []intention.Op{put("b", "x")}}) // 2 conflicts
			appendData(t, l, entry.AppendAfterimage(nil, leafAfterimage(1, "a")))                                              // 3 afterimage
			if err := l.Fill(ctx, 4); err != nil {                                                                             // 4 junk
				t.Fatal(err)
			}
			if p := appendIn(t, l, &intention.Intention{Snapshot: 3, Token: 15, Reads: keys("a"), Ops: []intention.Op{put("b", "2")}}); p != 5 { // 5 commits
				t.Fatalf("intention at %d, want 5", p)
			}
			appendData(t, l, entry.EncodeHeader(&runnerHeader))                                              // 6 header
			appendData(t, l, entry.Encode(nil, entry.TypeCheckpoint, []byte{entry.CheckpointChunk, 0}))      // 7 checkpoint chunk
			appendIn(t, l, &intention.Intention{Snapshot: 8, Token: 18, Ops: []intention.Op{put("c", "1")}}) // 8 invalid

			st := processor.NewState(runnerHeader, cowtree.New(nil), 0)
			c := newCollector()
			r := start(t, processor.Config{Log: l, State: st, OnEvent: c.on, ReadAhead: ra})
			want := []struct {
				typ     entry.Type
				outcome processor.Outcome
			}{
				{entry.TypeIntention, processor.Committed},
				{entry.TypeIntention, processor.Conflict},
				{entry.TypeAfterimage, 0},
				{0, 0},
				{entry.TypeIntention, processor.Committed},
				{entry.TypeHeader, 0},
				{entry.TypeCheckpoint, 0},
				{entry.TypeIntention, processor.Invalid},
			}
			for i, w := range want {
				ev := c.next(t)
				pos := uint64(i + 1)
				if ev.Pos != pos || ev.Type != w.typ {
					t.Fatalf("event %d: pos %d type %v, want pos %d type %v", i, ev.Pos, ev.Type, pos, w.typ)
				}
				isIn := w.typ == entry.TypeIntention
				if (ev.Intention != nil) != isIn || (ev.Decision != nil) != isIn {
					t.Fatalf("pos %d: intention %v decision %v", pos, ev.Intention, ev.Decision)
				}
				if isIn {
					if ev.Decision.Outcome != w.outcome || ev.Decision.Pos != pos || ev.Decision.Token != 10+pos {
						t.Fatalf("pos %d: decision %+v, want %v", pos, *ev.Decision, w.outcome)
					}
					if (ev.Delta != nil) != (w.outcome == processor.Committed) || (ev.Delta != nil && ev.Delta.Pos != pos) {
						t.Fatalf("pos %d: delta %v for %v", pos, ev.Delta, w.outcome)
					}
				} else if ev.Delta != nil {
					t.Fatalf("pos %d: a delta for a non-intention", pos)
				}
				if (ev.Afterimage != nil) != (w.typ == entry.TypeAfterimage) {
					t.Fatalf("pos %d: afterimage %v", pos, ev.Afterimage)
				}
				if ev.Afterimage != nil && (ev.Afterimage.Intention != 1 || ev.Afterimage.Base != 1 || ev.Afterimage.Nodes != 1) {
					t.Fatalf("afterimage %+v", ev.Afterimage)
				}
				if ev.Pos == 2 && string(ev.Decision.ConflictKey) != "a" {
					t.Fatalf("conflict on %q", ev.Decision.ConflictKey)
				}
			}
			// Appends after the runner caught up are replayed too.
			appendIn(t, l, &intention.Intention{Snapshot: 8, Token: 19, Ops: []intention.Op{put("d", "1")}})
			r.Notify()
			c.nextCommitted(t, 9)
			// Applied moves after OnEvent returns, so it is read once the
			// runner has stopped.
			if err := r.Stop(); err != nil {
				t.Fatal(err)
			}
			if r.Applied() != 9 || r.HolesFilled() != 0 {
				t.Fatalf("applied %d, holes filled %d", r.Applied(), r.HolesFilled())
			}
			if st.Pos() != 9 || dumpTree(t, st.Tree()) != "a@1=1 b@5=2 d@9=1 " {
				t.Fatalf("state at %d: %s", st.Pos(), dumpTree(t, st.Tree()))
			}
			c.none(t)
		})
	}
}

// rangeCountingLog counts whole-entry reads by position.
type rangeCountingLog struct {
	*memlog.Log
	mu    sync.Mutex
	whole map[log.Position]int
}

func (l *rangeCountingLog) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	l.mu.Lock()
	l.whole[pos]++
	l.mu.Unlock()
	return l.Log.Read(ctx, pos)
}

// TestRunnerSkipsChunkBodies: on a log that reads ranges, replay reads only
// the first bytes of a large checkpoint chunk (an image's bulk, which replay
// does not use), yet reports it with its size; another large entry is
// read in two ranges (prefix, rest) and decoded whole.
func TestRunnerSkipsChunkBodies(t *testing.T) {
	l := &rangeCountingLog{Log: memlog.New(nil), whole: map[log.Position]int{}}
	big := make([]byte, 300<<10)
	chunk := entry.Encode(nil, entry.TypeCheckpoint, append([]byte{entry.CheckpointChunk, 0}, big...))
	appendData(t, l, entry.EncodeHeader(&runnerHeader))                                                      // 0 header
	appendData(t, l, chunk)                                                                                  // 1 chunk
	appendIn(t, l, &intention.Intention{Snapshot: 0, Token: 12, Ops: []intention.Op{put("a", string(big))}}) // 2 large intention
	st := processor.NewState(runnerHeader, cowtree.New(nil), 0)
	c := newCollector()
	r := start(t, processor.Config{Log: l, State: st, OnEvent: c.on})
	ev := c.next(t)
	if ev.Pos != 1 || ev.Type != entry.TypeCheckpoint || ev.Checkpoint == nil || ev.Checkpoint.Kind != entry.CheckpointChunk || ev.Size != len(chunk) {
		t.Fatalf("chunk event %+v (size %d, want %d)", ev, ev.Size, len(chunk))
	}
	if ev := c.next(t); ev.Pos != 2 || ev.Intention == nil || len(ev.Intention.Ops) != 1 || len(ev.Intention.Ops[0].Value) != len(big) {
		t.Fatalf("intention event %+v", ev) // decoded whole (decided by the header's limits)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.whole[1] != 0 || l.whole[2] != 0 {
		t.Fatalf("whole reads: chunk %d, large intention %d (want 0: prefix, then the rest by range)", l.whole[1], l.whole[2])
	}
}

// TestRunnerStartsAfterStatePos: replay begins at State.Pos()+1; what lies
// before is never read.
func TestRunnerStartsAfterStatePos(t *testing.T) {
	l := newLog(t, nil)
	appendData(t, l, []byte("garbage at 1"))
	appendData(t, l, []byte("garbage at 2"))
	appendIn(t, l, &intention.Intention{Snapshot: 2, Ops: []intention.Op{put("a", "1")}})
	c := newCollector()
	r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 2), OnEvent: c.on})
	if ev := c.next(t); ev.Pos != 3 || ev.Decision.Outcome != processor.Committed {
		t.Fatalf("first event %+v", ev)
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
}

// dropAppend makes the append with sequence number seq die after taking
// its position.
func dropAppend(seq uint64) func(memlog.Call, *rand.Rand) memlog.Fault {
	return func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && c.Seq == seq {
			return memlog.Fault{Drop: true}
		}
		return memlog.Fault{}
	}
}

func TestRunnerFillsHoleAfterTimeout(t *testing.T) {
	l := newLog(t, &memlog.Options{Inject: dropAppend(2)})
	appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}}) // 1
	if _, err := l.Append(context.Background(), entry.AppendIntention(nil, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("lost", "1")}})); err == nil {
		t.Fatal("dropped append succeeded")
	}
	appendIn(t, l, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("b", "1")}}) // 3
	const timeout = 100 * time.Millisecond
	c := newCollector()
	began := time.Now()
	r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, HoleTimeout: timeout})
	if ev := c.next(t); ev.Pos != 1 {
		t.Fatalf("event %d", ev.Pos)
	}
	ev := c.next(t)
	if ev.Pos != 2 || ev.Type != 0 || ev.Intention != nil || ev.Decision != nil {
		t.Fatalf("hole: event %+v, want junk at 2", ev)
	}
	if waited := time.Since(began); waited < timeout {
		t.Fatalf("hole filled after %v, before the timeout of %v", waited, timeout)
	}
	if ev := c.next(t); ev.Pos != 3 || ev.Decision.Outcome != processor.Committed {
		t.Fatalf("after the hole: %+v", ev)
	}
	if n := r.HolesFilled(); n != 1 {
		t.Fatalf("HolesFilled %d, want 1", n)
	}
	if _, err := l.Read(context.Background(), 2); !errors.Is(err, log.ErrFilled) {
		t.Fatalf("read of the filled hole: %v", err)
	}
}

// holdAppend holds the append with sequence number seq at gate.
func holdAppend(seq uint64, gate *memlog.Gate) func(memlog.Call, *rand.Rand) memlog.Fault {
	return func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && c.Seq == seq && c.Attempt == 0 {
			return memlog.Fault{Hold: gate}
		}
		return memlog.Fault{}
	}
}

// heldAppend starts an append of in that the log holds; it returns the
// channel its final position arrives on.
func heldAppend(t *testing.T, l *memlog.Log, gate *memlog.Gate, in *intention.Intention) <-chan uint64 {
	t.Helper()
	done := make(chan uint64, 1)
	go func() {
		p, err := l.Append(context.Background(), entry.AppendIntention(nil, in))
		if err != nil {
			t.Errorf("held append: %v", err)
		}
		done <- uint64(p)
	}()
	select {
	case <-gate.Held():
	case <-time.After(waitLong):
		t.Fatal("append never reached the gate")
	}
	return done
}

func TestRunnerWaitsForHeldAppend(t *testing.T) {
	gate := memlog.NewGate()
	t.Cleanup(gate.Release)
	var holeReads atomic.Int64
	l := newLog(t, &memlog.Options{Inject: readsOf(2, &holeReads, holdAppend(2, gate))})
	appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}}) // 1
	landed := heldAppend(t, l, gate, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("slow", "1")}})
	appendIn(t, l, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("b", "1")}}) // 3, behind the hole
	c := newCollector()
	r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, HoleTimeout: time.Minute})
	if ev := c.next(t); ev.Pos != 1 {
		t.Fatalf("event %d", ev.Pos)
	}
	// Position 3 is written but must wait for 2.
	testutil.Eventually(t, waitLong, func() bool { return holeReads.Load() >= 2 })
	c.none(t)
	if r.Applied() != 1 {
		t.Fatalf("applied %d while 2 is a hole", r.Applied())
	}
	gate.Release()
	if p := <-landed; p != 2 {
		t.Fatalf("held append landed at %d", p)
	}
	ev := c.next(t)
	if ev.Pos != 2 || ev.Type != entry.TypeIntention || ev.Decision.Outcome != processor.Committed {
		t.Fatalf("held entry: %+v", ev)
	}
	if ev := c.next(t); ev.Pos != 3 {
		t.Fatalf("event %d", ev.Pos)
	}
	if r.HolesFilled() != 0 {
		t.Fatalf("filled %d holes", r.HolesFilled())
	}
}

// TestRunnerHeldPastTimeout: a writer slower than the timeout loses its
// position to a fill and lands later at a new one, where it is replayed.
func TestRunnerHeldPastTimeout(t *testing.T) {
	gate := memlog.NewGate()
	t.Cleanup(gate.Release)
	l := newLog(t, &memlog.Options{Inject: holdAppend(2, gate)})
	appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}}) // 1
	landed := heldAppend(t, l, gate, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("slow", "1")}})
	appendIn(t, l, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("b", "1")}}) // 3
	c := newCollector()
	r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, HoleTimeout: 50 * time.Millisecond})
	for _, want := range []entry.Type{entry.TypeIntention, 0, entry.TypeIntention} {
		if ev := c.next(t); ev.Type != want {
			t.Fatalf("event %d: type %v, want %v", ev.Pos, ev.Type, want)
		}
	}
	gate.Release()
	p := <-landed
	if p != 4 {
		t.Fatalf("late append landed at %d, want 4", p)
	}
	r.Notify()
	c.nextCommitted(t, 4)
	if r.HolesFilled() != 1 {
		t.Fatalf("filled %d holes", r.HolesFilled())
	}
}

func TestRunnerStopsOnCorruptEntry(t *testing.T) {
	good := entry.AppendIntention(nil, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("x", "1")}})
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 0x40
	for name, bad := range map[string][]byte{
		"checksum":                        flipped,
		"intention payload":               entry.Encode(nil, entry.TypeIntention, []byte{0x95, 1}),
		"afterimage payload":              entry.Encode(nil, entry.TypeAfterimage, []byte{0x92, 1, 1}),
		"afterimage base":                 entry.Encode(nil, entry.TypeAfterimage, []byte{0x93, 1, 2, 0x90}),
		"afterimage of a later intention": entry.AppendAfterimage(nil, leafAfterimage(2, "a")),
		"not an entry":                    []byte("plain bytes"),
	} {
		t.Run(name, func(t *testing.T) {
			l := newLog(t, nil)
			appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}}) // 1
			appendData(t, l, bad)                                                                 // 2
			appendIn(t, l, &intention.Intention{Snapshot: 1, Ops: []intention.Op{put("b", "1")}}) // 3
			c := newCollector()
			r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, HoleTimeout: 10 * time.Millisecond})
			if ev := c.next(t); ev.Pos != 1 {
				t.Fatalf("event %d", ev.Pos)
			}
			waitDone(t, r)
			err := r.Err()
			var ce *entry.CorruptError
			if !errors.Is(err, entry.ErrCorrupt) || !errors.As(err, &ce) || ce.Pos != 2 || !strings.Contains(err.Error(), "position 2") {
				t.Fatalf("err %v, want corruption at 2", err)
			}
			if serr := r.Stop(); serr != err {
				t.Fatalf("Stop returned %v, Err %v", serr, err)
			}
			c.none(t)
			if r.Applied() != 1 || r.HolesFilled() != 0 {
				t.Fatalf("applied %d, filled %d", r.Applied(), r.HolesFilled())
			}
			if data, err := l.Read(context.Background(), 2); err != nil || !bytes.Equal(data, bad) {
				t.Fatalf("the corrupt entry was touched: %v", err)
			}
		})
	}
}

func TestRunnerStopsOnTrimmedLog(t *testing.T) {
	l := newLog(t, nil)
	for range 3 {
		appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}})
	}
	if err := l.Trim(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
	waitDone(t, r)
	if err := r.Err(); !errors.Is(err, log.ErrTrimmed) {
		t.Fatalf("err %v, want trimmed", err)
	}
	c.none(t)
}

// TestRunnerStopsOnApplyError: a failed node load stops replay before the
// position, without reporting it.
func TestRunnerStopsOnApplyError(t *testing.T) {
	l := newLog(t, nil)
	appendData(t, l, []byte("replayed before"))
	appendData(t, l, []byte("replayed before"))
	appendData(t, l, entry.AppendAfterimage(nil, leafAfterimage(1, "z"))) // 3: skipped fine
	appendIn(t, l, &intention.Intention{Snapshot: 2, Reads: keys("a"), Ops: []intention.Op{put("a", "1")}})
	tree := cowtree.FromRoot(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: 9, Off: 0}, failLoader{})
	c := newCollector()
	r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, tree, 2), OnEvent: c.on})
	if ev := c.next(t); ev.Pos != 3 {
		t.Fatalf("event %d", ev.Pos)
	}
	waitDone(t, r)
	if err := r.Err(); !errors.Is(err, errLoad) {
		t.Fatalf("err %v", err)
	}
	c.none(t)
	if r.Applied() != 3 {
		t.Fatalf("applied %d", r.Applied())
	}
}

func TestRunnerRetriesReadErrors(t *testing.T) {
	errFlaky := errors.New("flaky read")
	var fails atomic.Int64
	l := newLog(t, &memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpRead && c.Pos == 2 && fails.Add(-1) >= 0 {
			return memlog.Fault{Err: errFlaky}
		}
		return memlog.Fault{}
	}})
	for range 3 {
		appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}})
	}
	t.Run("transient", func(t *testing.T) {
		fails.Store(5)
		c := newCollector()
		r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
		for want := uint64(1); want <= 3; want++ {
			if ev := c.next(t); ev.Pos != want {
				t.Fatalf("event %d, want %d", ev.Pos, want)
			}
		}
		if r.Err() != nil || fails.Load() >= 0 {
			t.Fatalf("err %v, %d injected failures left", r.Err(), fails.Load())
		}
	})
	t.Run("persistent", func(t *testing.T) {
		fails.Store(1 << 40)
		c := newCollector()
		r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
		if ev := c.next(t); ev.Pos != 1 {
			t.Fatalf("event %d", ev.Pos)
		}
		waitDone(t, r)
		if err := r.Err(); !errors.Is(err, errFlaky) || !strings.Contains(err.Error(), "position 2") {
			t.Fatalf("err %v", err)
		}
		c.none(t)
	})
}

// stopsWithin fails unless stop returns within waitLong.
func stopsWithin(t *testing.T, r *processor.Runner) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Stop hangs")
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if r.Err() != nil {
		t.Fatalf("Err after a clean Stop: %v", r.Err())
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestRunnerStop(t *testing.T) {
	t.Run("idle at the tail", func(t *testing.T) {
		l := newLog(t, nil)
		appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}})
		c := newCollector()
		r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, PollInterval: time.Hour})
		c.next(t)
		stopsWithin(t, r)
	})
	t.Run("waiting on a hole", func(t *testing.T) {
		gate := memlog.NewGate()
		t.Cleanup(gate.Release)
		var holeReads atomic.Int64
		l := newLog(t, &memlog.Options{Inject: readsOf(1, &holeReads, holdAppend(1, gate))})
		heldAppend(t, l, gate, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}})
		c := newCollector()
		r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, HoleTimeout: time.Hour, PollInterval: time.Hour})
		// It read the hole (then waits an hour to look again).
		testutil.Eventually(t, waitLong, func() bool { return holeReads.Load() >= 1 })
		c.none(t)
		stopsWithin(t, r)
		if r.HolesFilled() != 0 {
			t.Fatal("stop filled the hole")
		}
	})
	t.Run("mid replay", func(t *testing.T) {
		l := newLog(t, nil)
		for range 2000 {
			appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}})
		}
		block := make(chan struct{})
		var seen atomic.Int64
		r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), ReadAhead: 8, OnEvent: func(ev processor.Event) {
			if seen.Add(1) == 10 {
				close(block)
			}
		}})
		<-block
		stopsWithin(t, r)
		if n := seen.Load(); n >= 2000 {
			t.Logf("replay finished before Stop (%d events)", n)
		}
	})
}

// tailSpy reports every Tail call once it has returned.
type tailSpy struct {
	*memlog.Log
	tails chan log.Position
	// hold, when set, makes Tail wait until it is closed (after saying
	// so on held).
	hold atomic.Pointer[chan struct{}]
	held chan struct{}
}

func (s *tailSpy) Tail(ctx context.Context) (log.Position, error) {
	if h := s.hold.Load(); h != nil {
		s.held <- struct{}{}
		<-*h
	}
	p, err := s.Log.Tail(ctx)
	select {
	case s.tails <- p:
	default:
	}
	return p, err
}

// TestRunnerNotifyWakes: with a poll interval of an hour, a new entry is
// replayed only after Notify.
func TestRunnerNotifyWakes(t *testing.T) {
	spy := &tailSpy{Log: newLog(t, nil), tails: make(chan log.Position, 1), held: make(chan struct{}, 1)}
	c := newCollector()
	r := start(t, processor.Config{Log: spy, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, PollInterval: time.Hour})
	select {
	case p := <-spy.tails:
		if p != 1 {
			t.Fatalf("tail %d", p)
		}
	case <-time.After(waitLong):
		t.Fatal("runner never read the tail")
	}
	// The runner saw an empty log and sleeps; it will not look again by
	// itself for an hour, so the append alone wakes nothing.
	testutil.WaitFor(t, "the runner to sleep", waitLong, func() bool { return r.IdleWaits() >= 1 })
	appendIn(t, spy.Log, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}})
	if w := r.IdleWaits(); w != 1 {
		t.Fatalf("the runner woke by itself: %d waits", w)
	}
	c.none(t)
	r.Notify()
	if ev := c.next(t); ev.Pos != 1 {
		t.Fatalf("event %d", ev.Pos)
	}
	// A Notify while the runner is awake (here: held in Tail) is
	// remembered, not lost: once it finds nothing new, the runner looks
	// once more before it sleeps (two more waits begun, not one).
	testutil.WaitFor(t, "the runner to sleep", waitLong, func() bool { return r.IdleWaits() >= 2 })
	gate := make(chan struct{})
	spy.hold.Store(&gate)
	r.Notify()
	testutil.Receive(t, "the runner's look at the tail", spy.held)
	spy.hold.Store(nil)
	base := r.IdleWaits()
	r.Notify()
	r.Notify()
	close(gate)
	testutil.WaitFor(t, "the runner to look again and sleep", waitLong, func() bool { return r.IdleWaits() >= base+2 })
	c.none(t)

}

// TestRunnerDecidesBeforeAHole: entries read before a hole are replayed at
// once, not held back until the hole resolves. (Regression: the reader used
// to keep a whole read-ahead batch until every position in it was resolved,
// so a dead writer delayed the decisions of intentions before it by up to
// HoleTimeout.)
func TestRunnerDecidesBeforeAHole(t *testing.T) {
	var holeReads atomic.Int64
	l := newLog(t, &memlog.Options{Inject: readsOf(3, &holeReads, dropAppend(3))})
	appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("a", "1")}}) // 1
	appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("b", "1")}}) // 2
	if _, err := l.Append(context.Background(), []byte("dies")); err == nil {             // 3: hole
		t.Fatal("dropped append succeeded")
	}
	appendIn(t, l, &intention.Intention{Snapshot: 0, Ops: []intention.Op{put("c", "1")}}) // 4
	c := newCollector()
	r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, HoleTimeout: time.Hour})
	for want := uint64(1); want <= 2; want++ {
		if ev := c.next(t); ev.Pos != want || ev.Decision.Outcome != processor.Committed {
			t.Fatalf("event %+v, want a commit at %d", ev, want)
		}
	}
	testutil.Eventually(t, waitLong, func() bool { return holeReads.Load() >= 2 })
	c.none(t)
	if r.Applied() != 2 {
		t.Fatalf("applied %d", r.Applied())
	}
	stopsWithin(t, r)
}
