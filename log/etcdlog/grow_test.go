package etcdlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

func TestGrowerTarget(t *testing.T) {
	var g grower
	if got := g.target(); got != 0 {
		t.Fatalf("nothing landed: target %d", got)
	}
	if got := g.wait(time.Second); got != 0 {
		t.Fatalf("no round trip measured: wait %v", got)
	}
	for _, n := range []int{3, 9, 4} {
		g.landed(n)
	}
	if got := g.target(); got != 9 {
		t.Fatalf("target %d, want the largest recent batch, 9", got)
	}
	for range len(g.sizes) {
		g.landed(2) // 9 ages out
	}
	if got := g.target(); got != 2 {
		t.Fatalf("target %d after %d batches of 2, want 2", got, len(g.sizes))
	}
	g.roundTrip(8 * time.Millisecond)
	if got := g.wait(time.Second); got != 2*time.Millisecond {
		t.Fatalf("wait %v, want a quarter of the 8ms round trip", got)
	}
	if got := g.wait(500 * time.Microsecond); got != 500*time.Microsecond {
		t.Fatalf("wait %v, want the 500µs limit", got)
	}
	g.roundTrip(16 * time.Millisecond)
	if got := g.rtt; got != 9*time.Millisecond {
		t.Fatalf("round trip average %v, want 9ms (8ms + 1/8 of the 8ms difference)", got)
	}
}

// sharingPair opens two Logs on one name, b sharing the log with a batch
// target of n (see shareWith).
func sharingPair(t *testing.T, n int) (a, b *Log) {
	t.Helper()
	url := sharedEtcd(t)
	name := uniqueName(t)
	a = mustOpen(t, newClient(t, url), name, nil)
	b = mustOpen(t, newClient(t, url), name, nil)
	shareWith(t, a, b, n)
	return a, b
}

// shareWith makes b lose one race for the tail to a (so that b shares the
// log) and land a batch of n entries, which becomes its batch target. It
// returns b's positions.
func shareWith(t *testing.T, a, b *Log, n int) []log.Position {
	t.Helper()
	ctx := t.Context()
	var hookErr error
	b.beforeTxn = func() {
		b.beforeTxn = nil
		_, hookErr = a.Append(ctx, []byte("a"))
	}
	var data [][]byte
	for i := range n {
		data = append(data, fmt.Appendf(nil, "share-%d", i))
	}
	ps, err := b.AppendBatch(ctx, data)
	if err != nil || hookErr != nil {
		t.Fatalf("b append: %v; a append before b's transaction: %v", err, hookErr)
	}
	if st := b.Stats(); st.Lost != 1 {
		t.Fatalf("b's stats %+v, want one lost transaction", st)
	}
	return ps
}

// TestGrowWaitsForBatch: a node that lost a race for the tail holds its
// next batch until it is as large as its recent ones. b lands a batch of 3
// after a loss; its next single append waits (with a wait long enough that
// only the batch reaching 3 ends it) until two more arrive, and all three
// land in one transaction, at consecutive positions.
func TestGrowWaitsForBatch(t *testing.T) {
	a, b := sharingPair(t, 3)
	ctx := t.Context()

	// The committer is idle (it answered b's append): these writes happen
	// before its next receive from b.reqs.
	b.maxGrowWait = time.Hour
	b.batches.rtt = 4 * time.Hour
	waiting := make(chan struct{}, 1)
	b.onGrowWait = func() { waiting <- struct{}{} }
	txns := b.Stats().Txns

	first := make(chan log.Position, 1)
	firstErr := make(chan error, 1)
	go func() {
		p, err := b.Append(ctx, []byte("x1"))
		first <- p
		firstErr <- err
	}()
	select {
	case <-waiting:
	case <-time.After(30 * time.Second):
		t.Fatal("b's committer sent a single append without waiting for its batch to grow")
	}
	ps, err := b.AppendBatch(ctx, [][]byte{[]byte("x2"), []byte("x3")})
	if err != nil {
		t.Fatal(err)
	}
	p1 := <-first
	if err := <-firstErr; err != nil {
		t.Fatal(err)
	}
	if ps[0] != p1+1 || ps[1] != p1+2 {
		t.Fatalf("positions %d, %v: want three consecutive ones", p1, ps)
	}
	if got := b.Stats().Txns - txns; got != 1 {
		t.Fatalf("%d transactions for a grown batch, want 1", got)
	}
	if st := b.Stats(); st.GrowWaits != 1 {
		t.Fatalf("GrowWaits %d, want 1", st.GrowWaits)
	}
	for i, want := range []string{"x1", "x2", "x3"} {
		got, err := a.Read(ctx, p1+log.Position(i))
		if err != nil || string(got) != want {
			t.Fatalf("a reads %d: %q, %v; want %q", p1+log.Position(i), got, err, want)
		}
	}
}

// TestGrowWaitIsBounded: a batch that never reaches the target is sent
// when the wait is over (appends complete, one transaction each); Close
// ends a wait at once, answering the append with log.ErrClosed.
func TestGrowWaitIsBounded(t *testing.T) {
	_, b := sharingPair(t, 5)
	ctx := t.Context()

	// Bounded by the wait: single appends in turn never reach the target
	// of 5.
	b.maxGrowWait = time.Millisecond
	b.batches.rtt = time.Second
	txns := b.Stats().Txns
	var last log.Position
	for i := range 3 {
		p, err := b.Append(ctx, fmt.Appendf(nil, "y%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && p != last+1 {
			t.Fatalf("append %d at %d, want %d", i, p, last+1)
		}
		last = p
	}
	st := b.Stats()
	if st.Txns-txns != 3 || st.GrowWaits != 3 {
		t.Fatalf("stats %+v after 3 single appends from %d transactions: want 3 more transactions, 3 waits", st, txns)
	}

	// Ended by Close: the wait would last an hour.
	b.maxGrowWait = time.Hour
	b.batches.rtt = 4 * time.Hour
	waiting := make(chan struct{}, 1)
	b.onGrowWait = func() { waiting <- struct{}{} }
	errc := make(chan error, 1)
	go func() {
		_, err := b.Append(context.Background(), []byte("z"))
		errc <- err
	}()
	select {
	case <-waiting:
	case <-time.After(30 * time.Second):
		t.Fatal("b's committer did not wait for its batch to grow")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, log.ErrClosed) {
		t.Fatalf("append waiting at Close: %v, want ErrClosed", err)
	}
}

// TestAloneNeverWaits: a Log alone on its log never loses a race, so its
// committer never holds a batch back.
func TestAloneNeverWaits(t *testing.T) {
	url := sharedEtcd(t)
	l := mustOpen(t, newClient(t, url), uniqueName(t), nil)
	data := bytes.Repeat([]byte{1}, 50)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 10 {
				if _, err := l.Append(t.Context(), data); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := l.Stats(); st.Lost != 0 || st.GrowWaits != 0 {
		t.Fatalf("stats %+v: want no lost transactions and no waits", st)
	}
}
