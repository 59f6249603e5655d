package piggyback

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/logtest"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// long is a window no rider outlasts in a test: riding never depends on
// how fast the machine is.
const long = time.Hour

// batchCounter counts AppendBatch calls and can fail them.
type batchCounter struct {
	*memlog.Log
	batches int
	fail    error
}

func (b *batchCounter) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	b.batches++
	if b.fail != nil {
		return nil, b.fail
	}
	return b.Log.AppendBatch(ctx, data)
}

// plain hides the wrapped log's AppendBatch.
type plain struct{ log.Log }

func newLane(t *testing.T, l log.Log) *Log {
	t.Helper()
	p := New(l)
	p.window = long
	t.Cleanup(func() { l.Close() })
	return p
}

func waitRiders(t *testing.T, p *Log, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.riders) == n
	})
}

// riderResult is what AppendAfterimage returned to a rider's writer.
type riderResult struct {
	pos log.Position
	err error
}

// ride appends data with AppendAfterimage on a goroutine of its own and
// returns once it waits as one of n riders; its outcome comes on the
// channel.
func ride(ctx context.Context, t *testing.T, p *Log, data string, n int) <-chan riderResult {
	t.Helper()
	got := make(chan riderResult, 1)
	go func() {
		pos, err := p.AppendAfterimage(ctx, []byte(data))
		got <- riderResult{pos, err}
	}()
	waitRiders(t, p, n)
	return got
}

func read(t *testing.T, l log.Log, pos log.Position) []byte {
	t.Helper()
	got, err := l.Read(context.Background(), pos)
	if err != nil {
		t.Fatalf("read %d: %v", pos, err)
	}
	return got
}

// An afterimage appended while this node commits waits for the next
// intention and is appended in one batch with it, before it.
func TestAfterimageRidesWithNextIntention(t *testing.T) {
	ctx := context.Background()
	bc := &batchCounter{Log: memlog.New(nil)}
	p := newLane(t, bc)
	if _, err := p.AppendIntention(ctx, []byte("i1")); err != nil {
		t.Fatal(err)
	}
	type result struct {
		pos log.Position
		err error
	}
	got := make(chan result, 2)
	for i, d := range []string{"a1", "a2"} {
		go func() {
			pos, err := p.AppendAfterimage(ctx, []byte(d))
			got <- result{pos, err}
		}()
		waitRiders(t, p, i+1)
	}
	i2, err := p.AppendIntention(ctx, []byte("i2"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		var r result
		select {
		case r = <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("a rider was not appended with the intention")
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.pos >= i2 {
			t.Errorf("afterimage at %d, not before its intention at %d", r.pos, i2)
		}
		if d := read(t, bc, r.pos); !bytes.HasPrefix(d, []byte("a")) {
			t.Errorf("afterimage position %d holds %q", r.pos, d)
		}
	}
	if bc.batches != 1 || p.Piggybacked() != 2 {
		t.Fatalf("batches %d, piggybacked %d; want 1 and 2", bc.batches, p.Piggybacked())
	}
	if d := read(t, bc, i2); string(d) != "i2" {
		t.Fatalf("intention position holds %q", d)
	}
}

// With no recent intention, or more commits under way than
// MaxRidingCommitters, or a log that cannot batch, an afterimage is
// appended at once and alone.
func TestAfterimageAppendedAtOnce(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		plain      bool
		intention  bool
		committing int
	}{
		{name: "idle"},
		{name: "busy", intention: true, committing: MaxRidingCommitters + 1},
		{name: "no batches", plain: true, intention: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bc := &batchCounter{Log: memlog.New(nil)}
			var l log.Log = bc
			if tc.plain {
				l = plain{bc}
			}
			p := newLane(t, l)
			for range tc.committing {
				defer p.CommitBegins()()
			}
			if tc.intention {
				if _, err := p.AppendIntention(ctx, []byte("i1")); err != nil {
					t.Fatal(err)
				}
			}
			// Never returns if it waits for an intention: none comes.
			pos, err := p.AppendAfterimage(ctx, []byte("a1"))
			if err != nil {
				t.Fatal(err)
			}
			if d := read(t, bc, pos); string(d) != "a1" {
				t.Fatalf("position %d holds %q", pos, d)
			}
			if _, err := p.AppendIntention(ctx, []byte("i2")); err != nil {
				t.Fatal(err)
			}
			if bc.batches != 0 || p.Piggybacked() != 0 {
				t.Fatalf("batches %d, piggybacked %d; want none", bc.batches, p.Piggybacked())
			}
		})
	}
}

// MaxRidingCommitters commits under way still let afterimages ride; the
// ends function takes a commit back off the count.
func TestCommitBeginsCounts(t *testing.T) {
	p := newLane(t, memlog.New(nil))
	var ends []func()
	for range MaxRidingCommitters + 1 {
		ends = append(ends, p.CommitBegins())
	}
	if got := p.committing.Load(); got != MaxRidingCommitters+1 {
		t.Fatalf("committing %d", got)
	}
	for _, e := range ends {
		e()
	}
	if got := p.committing.Load(); got != 0 {
		t.Fatalf("committing %d after every end", got)
	}
	q := newLane(t, plain{memlog.New(nil)})
	defer q.CommitBegins()()
	if q.committing.Load() != 0 {
		t.Fatal("a log that cannot batch counts commits")
	}
}

// A rider whose context ends leaves the lane and appends alone (and so
// fails with the context's error); the next intention takes nothing along.
func TestRiderContextEnds(t *testing.T) {
	bc := &batchCounter{Log: memlog.New(nil)}
	p := newLane(t, bc)
	if _, err := p.AppendIntention(context.Background(), []byte("i1")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := ride(ctx, t, p, "a1", 1)
	cancel()
	if err := (<-got).err; !errors.Is(err, context.Canceled) {
		t.Fatalf("rider's error %v, want context.Canceled", err)
	}
	waitRiders(t, p, 0)
	if _, err := p.AppendIntention(context.Background(), []byte("i2")); err != nil {
		t.Fatal(err)
	}
	if bc.batches != 0 || p.Piggybacked() != 0 {
		t.Fatalf("batches %d, piggybacked %d; want none", bc.batches, p.Piggybacked())
	}
}

// A batch that fails fails the intention and every rider with it, and
// counts no rider.
func TestBatchErrorReachesRiders(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	bc := &batchCounter{Log: memlog.New(nil), fail: boom}
	p := newLane(t, bc)
	if _, err := p.AppendIntention(ctx, []byte("i1")); err != nil {
		t.Fatal(err)
	}
	got := ride(ctx, t, p, "a1", 1)
	if _, err := p.AppendIntention(ctx, []byte("i2")); !errors.Is(err, boom) {
		t.Fatalf("intention's error %v", err)
	}
	if err := (<-got).err; !errors.Is(err, boom) {
		t.Fatalf("rider's error %v", err)
	}
	if p.Piggybacked() != 0 {
		t.Fatalf("piggybacked %d after a failed batch", p.Piggybacked())
	}
}

// AppendBatch on a log that cannot batch appends one at a time, ascending.
func TestAppendBatchFallback(t *testing.T) {
	ctx := context.Background()
	inner := memlog.New(nil)
	p := newLane(t, plain{inner})
	pos, err := p.AppendBatch(ctx, [][]byte{[]byte("x"), []byte("y"), []byte("z")})
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 3 || !(pos[0] < pos[1] && pos[1] < pos[2]) {
		t.Fatalf("positions %v", pos)
	}
	for i, want := range []string{"x", "y", "z"} {
		if d := read(t, inner, pos[i]); string(d) != want {
			t.Fatalf("position %d holds %q, want %q", pos[i], d, want)
		}
	}
	inner.Close()
	if _, err := p.AppendBatch(ctx, [][]byte{[]byte("x")}); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if p.Inner() != log.Log(plain{inner}) {
		t.Fatal("Inner is not the wrapped log")
	}
}

// The decorator is a log.Log and log.BatchAppender like the one it wraps.
func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) log.Log { return New(memlog.New(nil)) })
}

// heldOneRider appends intention with AppendIntentionHeld and checks that
// one afterimage, rider, rode with it, just below it, as l holds it. It
// returns the rider's position and the held riders, to release.
func heldOneRider(ctx context.Context, t *testing.T, p *Log, l log.Log, intention, rider string) (log.Position, Riders) {
	t.Helper()
	in, riders, err := p.AppendIntentionHeld(ctx, []byte(intention))
	if err != nil {
		t.Fatal(err)
	}
	if riders.Len() != 1 {
		t.Fatalf("%d riders, want 1", riders.Len())
	}
	pos, data := riders.At(0)
	if pos != in-1 || string(data) != rider || string(read(t, l, pos)) != rider {
		t.Fatalf("rider at %d holding %q, want %d holding %s (as the log does)", pos, data, in-1, rider)
	}
	return pos, riders
}
