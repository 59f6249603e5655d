package memlog_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

func batchOf(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, x := range s {
		out[i] = []byte(x)
	}
	return out
}

type batchResult struct {
	pos []log.Position
	err error
}

func goAppendBatch(l *memlog.Log, s ...string) <-chan batchResult {
	ch := make(chan batchResult, 1)
	go func() {
		p, err := l.AppendBatch(context.Background(), batchOf(s...))
		ch <- batchResult{p, err}
	}()
	return ch
}

// faultAt returns an Inject hook giving f to the Append call with sequence
// number seq (first attempt).
func faultAt(seq uint64, f memlog.Fault) func(memlog.Call, *rand.Rand) memlog.Fault {
	return func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && c.Seq == seq && c.Attempt == 0 {
			return f
		}
		return memlog.Fault{}
	}
}

// A batch is one round trip: while its first entry is held, all of its
// entries are in flight together (one after the other, only one would be),
// and they land at consecutive positions once released.
func TestAppendBatchOneRoundTrip(t *testing.T) {
	g := memlog.NewGate()
	l := memlog.New(&memlog.Options{Inject: faultAt(0, memlog.Fault{Hold: g})})
	res := goAppendBatch(l, "a", "b", "c", "d")
	<-g.Held()
	if s := l.Stats(); s.InFlight != 4 || s.Appends != 4 {
		t.Fatalf("while held: Stats %+v, want the 4 entries in flight at once", s)
	}
	g.Release()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	for i, p := range r.pos {
		if p != log.Position(i) {
			t.Fatalf("positions %v, want 0..3", r.pos)
		}
	}
	if s := l.Stats(); s.InFlight != 0 {
		t.Fatalf("Stats = %+v, want none in flight", s)
	}
}

// While a batch is in flight its positions are holes; a crash then loses
// the whole batch.
func TestAppendBatchInFlightIsHoles(t *testing.T) {
	g := memlog.NewGate()
	l := memlog.New(&memlog.Options{Inject: faultAt(1, memlog.Fault{Hold: g})})
	mustAppend(t, l, "x")
	res := goAppendBatch(l, "a", "b", "c")
	<-g.Held()
	wantTail(t, l, 4)
	for p := log.Position(1); p < 4; p++ {
		wantReadErr(t, l, p, log.ErrNotWritten)
	}
	clone := l.CrashClone()
	g.Release()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	for i, want := range []string{"a", "b", "c"} {
		wantData(t, l, r.pos[i], want)
		wantReadErr(t, clone, r.pos[i], log.ErrNotWritten)
	}
}

// A fill that wins one entry's position while the batch is in flight: that
// entry and the ones after it are appended again, after it, so the
// positions still ascend; the positions given up are junk.
func TestAppendBatchFillDuringFlight(t *testing.T) {
	g := memlog.NewGate()
	l := memlog.New(&memlog.Options{Inject: faultAt(0, memlog.Fault{Hold: g})})
	res := goAppendBatch(l, "a", "b", "c")
	<-g.Held()
	if err := l.Fill(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	g.Release()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.pos[0] != 0 || r.pos[1] <= 2 || r.pos[2] <= r.pos[1] {
		t.Fatalf("positions %v: want a at 0, then b and c ascending after the junk", r.pos)
	}
	for i, want := range []string{"a", "b", "c"} {
		wantData(t, l, r.pos[i], want)
	}
	wantReadErr(t, l, 1, log.ErrFilled)
	wantReadErr(t, l, 2, log.ErrFilled)
	if s := l.Stats(); s.Retries != 1 || s.InFlight != 0 {
		t.Fatalf("Stats = %+v, want one retry", s)
	}
}

// A dropped entry: the writer died mid-batch. Entries before it landed,
// it and the rest stay holes.
func TestAppendBatchDrop(t *testing.T) {
	l := memlog.New(&memlog.Options{Inject: faultAt(1, memlog.Fault{Drop: true})})
	_, err := l.AppendBatch(context.Background(), batchOf("a", "b", "c"))
	if !errors.Is(err, memlog.ErrInjected) || !strings.Contains(err.Error(), "position 1") {
		t.Fatalf("AppendBatch = %v, want ErrInjected naming position 1", err)
	}
	wantData(t, l, 0, "a")
	wantReadErr(t, l, 1, log.ErrNotWritten)
	wantReadErr(t, l, 2, log.ErrNotWritten)
	wantTail(t, l, 3)
}

// A failure before sequencing fails the whole batch: nothing is written and
// the positions it had taken read as junk, never as holes.
func TestAppendBatchFailsWhole(t *testing.T) {
	l := memlog.New(&memlog.Options{Inject: faultAt(2, memlog.Fault{Err: errBoom})})
	_, err := l.AppendBatch(context.Background(), batchOf("a", "b", "c"))
	if !errors.Is(err, errBoom) {
		t.Fatalf("AppendBatch = %v, want %v", err, errBoom)
	}
	for p := log.Position(0); p < 3; p++ {
		wantReadErr(t, l, p, log.ErrFilled)
	}
	if p := mustAppend(t, l, "next"); p != 3 {
		t.Fatalf("next Append at %d, want 3", p)
	}
}

// A lost acknowledgement: everything landed, the caller hears an error.
func TestAppendBatchAckLost(t *testing.T) {
	l := memlog.New(&memlog.Options{Inject: faultAt(1, memlog.Fault{AckLost: true})})
	_, err := l.AppendBatch(context.Background(), batchOf("a", "b"))
	if !errors.Is(err, memlog.ErrInjected) {
		t.Fatalf("AppendBatch = %v, want ErrInjected", err)
	}
	wantData(t, l, 0, "a")
	wantData(t, l, 1, "b")
}

// Close while a batch is in flight: ErrClosed, and its positions stay holes.
func TestAppendBatchClosedInFlight(t *testing.T) {
	l := memlog.New(&memlog.Options{AppendLatency: time.Hour})
	res := goAppendBatch(l, "a", "b")
	testutil.Eventually(t, testutil.WaitLong, func() bool { return l.Stats().InFlight == 2 })
	clone := l.CrashClone()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-res; !errors.Is(r.err, log.ErrClosed) {
		t.Fatalf("AppendBatch = %v, want ErrClosed", r.err)
	}
	wantReadErr(t, clone, 0, log.ErrNotWritten)
	wantReadErr(t, clone, 1, log.ErrNotWritten)
}

// Positions filled ahead of the tail are skipped by a batch too.
func TestAppendBatchSkipsFilledAhead(t *testing.T) {
	l := memlog.New(nil)
	if err := l.Fill(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	pos, err := l.AppendBatch(context.Background(), batchOf("a", "b"))
	if err != nil || len(pos) != 2 || pos[0] != 0 || pos[1] != 2 {
		t.Fatalf("AppendBatch = %v, %v; want [0 2]", pos, err)
	}
	wantReadErr(t, l, 1, log.ErrFilled)
}

// Batches race single appends and fills of the positions they hold, under
// latency: every batch that succeeds has its entries, in order, at
// ascending positions; every successful fill is junk; no position holds two
// things; the log's in-flight count returns to zero.
func TestAppendBatchRacesFills(t *testing.T) {
	l := memlog.New(&memlog.Options{AppendLatency: 200 * time.Microsecond})
	ctx := context.Background()
	const writers, rounds = 6, 40
	type landed struct {
		pos  log.Position
		data string
	}
	results := make(chan []landed, writers*rounds)
	took := make(chan struct{}, 1) // a batch took positions
	l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend {
			select {
			case took <- struct{}{}:
			default:
			}
		}
		return memlog.Fault{}
	})
	fills := make(chan log.Position, 100000)
	stop := make(chan struct{})
	fillerDone := make(chan struct{})
	go func() { // fill just below the tail: the positions batches hold
		defer close(fillerDone)
		r := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-stop:
				return
			default:
			}
			tail, err := l.Tail(ctx)
			if err != nil || tail == 0 {
				continue
			}
			p := tail - 1 - log.Position(r.IntN(int(min(tail, 4))))
			if l.Fill(ctx, p) == nil {
				fills <- p
			}
			// Next fill once an append has taken a position (or they are
			// all done): the filler follows the writers instead of spinning.
			select {
			case <-took:
			case <-stop:
			}
		}
	}()
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for r := range rounds {
				var data []string
				for i := range 1 + (w+r)%4 {
					data = append(data, fmt.Sprintf("w%d-r%d-%d", w, r, i))
				}
				pos, err := l.AppendBatch(ctx, batchOf(data...))
				if err != nil {
					errs <- err
					return
				}
				got := make([]landed, len(pos))
				for i, p := range pos {
					if i > 0 && p <= pos[i-1] {
						errs <- fmt.Errorf("batch positions %v not ascending", pos)
						return
					}
					got[i] = landed{p, data[i]}
				}
				results <- got
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-fillerDone
	close(results)
	close(fills)
	owner := map[log.Position]string{}
	for batch := range results {
		for _, e := range batch {
			if prev, ok := owner[e.pos]; ok {
				t.Fatalf("position %d holds both %q and %q", e.pos, prev, e.data)
			}
			owner[e.pos] = e.data
			wantData(t, l, e.pos, e.data)
		}
	}
	nfills := 0
	for p := range fills {
		if d, ok := owner[p]; ok {
			t.Fatalf("position %d filled and also holding %q", p, d)
		}
		wantReadErr(t, l, p, log.ErrFilled)
		nfills++
	}
	if s := l.Stats(); s.InFlight != 0 {
		t.Fatalf("InFlight %d after every call returned", s.InFlight)
	}
	t.Logf("%d entries, %d fills won, %d retries", len(owner), nfills, l.Stats().Retries)
}
