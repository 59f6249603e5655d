package etcdlog

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

func TestGuesserOrder(t *testing.T) {
	var g guesser
	if got := g.guesses(3); got != nil {
		t.Fatalf("no losses yet: guesses %v", got)
	}
	for _, d := range []uint64{5, 7, 5, 9, 0} {
		g.txns++
		g.record(d)
	}
	got := g.guesses(3)
	want := []uint64{5, 9, 7} // most frequent, then the most recent; 0 not recorded
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("guesses %v, want %v", got, want)
	}
	if got := g.guesses(1); fmt.Sprint(got) != "[5]" {
		t.Fatalf("one guess: %v", got)
	}
	g.txns += guessWindow + 1
	if got := g.guesses(3); got != nil {
		t.Fatalf("no loss in the last %d transactions: guesses %v", guessWindow, got)
	}
}

// TestGuessedTail drives the race for the tail by hand: just before b sends
// an append transaction (so that its view of the tail is stale), another
// Log on the same name, a, appends, trims or fills. b's first lost race
// teaches it the tail move; the next one lands by the guess nested in the
// Else branch in the same round trip; a move of another size, a trim or a
// fill ahead of the tail make the guess itself lose, and b retries. In
// every case positions stay dense and unique and every entry reads back
// where its append said.
func TestGuessedTail(t *testing.T) {
	url := sharedEtcd(t)
	name := uniqueName(t)
	a := mustOpen(t, newClient(t, url), name, nil)
	b := mustOpen(t, newClient(t, url), name, nil)
	ctx := t.Context()

	written := map[log.Position]string{}
	var hookErr error
	appendA := func(n int, tag string) {
		var data [][]byte
		for i := range n {
			data = append(data, fmt.Appendf(nil, "a-%s-%d", tag, i))
		}
		ps, err := a.AppendBatch(ctx, data)
		if err != nil {
			hookErr = err
			return
		}
		for i, p := range ps {
			written[p] = string(data[i])
		}
	}
	// arm makes b's next transaction (only) find that a did f first.
	arm := func(f func()) {
		b.beforeTxn = func() {
			b.beforeTxn = nil
			f()
		}
	}
	appendB := func(tag string, n int) []log.Position {
		t.Helper()
		var data [][]byte
		for i := range n {
			data = append(data, fmt.Appendf(nil, "b-%s-%d", tag, i))
		}
		ps, err := b.AppendBatch(ctx, data)
		if err != nil {
			t.Fatalf("b append %s: %v", tag, err)
		}
		if hookErr != nil {
			t.Fatalf("a, before b's transaction: %v", hookErr)
		}
		for i, p := range ps {
			if other, dup := written[p]; dup {
				t.Fatalf("position %d given to %s and %s", p, other, data[i])
			}
			written[p] = string(data[i])
		}
		return ps
	}
	tail := func() log.Position {
		t.Helper()
		p, err := a.Tail(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	stats := func(lost, won int64) {
		t.Helper()
		st := b.Stats()
		if st.Lost != lost || st.NestedWon != won {
			t.Fatalf("b's stats %+v, want Lost %d NestedWon %d", st, lost, won)
		}
	}

	appendB("start", 1) // b knows the tail
	stats(0, 0)

	// 1. A first loss: no guesses yet; b retries after a's 5 entries.
	t0 := tail()
	arm(func() { appendA(5, "1") })
	if ps := appendB("1", 1); ps[0] != t0+5 {
		t.Fatalf("round 1: b at %d, want %d", ps[0], t0+5)
	}
	stats(1, 0)

	// 2. The same move again: b's guess lands its batch in one round trip.
	t0 = tail()
	arm(func() { appendA(5, "2") })
	if ps := appendB("2", 2); ps[0] != t0+5 || ps[1] != t0+6 {
		t.Fatalf("round 2: b at %v, want %d, %d", ps, t0+5, t0+6)
	}
	stats(1, 1)
	if st := b.Stats(); st.Nested < 1 {
		t.Fatalf("round 2 landed by a guess but Nested is %d", st.Nested)
	}

	// 3. The nested branch loses: a moved the tail by 7, not by a guess.
	t0 = tail()
	arm(func() { appendA(7, "3") })
	if ps := appendB("3", 1); ps[0] != t0+7 {
		t.Fatalf("round 3: b at %d, want %d", ps[0], t0+7)
	}
	stats(2, 1)

	// 4. The tail moved by a guessed amount, but the trim key changed: the
	// guess compares the trim key too, so it loses.
	t0 = tail()
	trimAt := t0 - 1
	arm(func() {
		appendA(5, "4")
		if hookErr == nil {
			hookErr = a.Trim(ctx, trimAt)
		}
	})
	if ps := appendB("4", 1); ps[0] != t0+5 {
		t.Fatalf("round 4: b at %d, want %d", ps[0], t0+5)
	}
	stats(3, 1)

	// 5. The tail moved by a guessed amount and a filled a position ahead
	// of the tail: the guess compares the ahead key, loses, and b's retry
	// skips the junk.
	t0 = tail()
	junk := t0 + 6
	arm(func() {
		appendA(5, "5")
		if hookErr == nil {
			hookErr = a.Fill(ctx, junk)
		}
	})
	ps := appendB("5", 3)
	if want := []log.Position{t0 + 5, t0 + 7, t0 + 8}; fmt.Sprint(ps) != fmt.Sprint(want) {
		t.Fatalf("round 5: b at %v, want %v (junk at %d)", ps, want, junk)
	}
	stats(4, 1)

	// Dense and unique: every position from the trim point to the tail holds
	// what its append wrote (from both Logs), or the junk; below the trim
	// point everything is trimmed.
	end := tail()
	for _, l := range []*Log{a, b} {
		for p := trimAt; p < end; p++ {
			got, err := l.Read(ctx, p)
			switch {
			case p == junk:
				if !errors.Is(err, log.ErrFilled) {
					t.Fatalf("read %d (filled): %q, %v", p, got, err)
				}
			case err != nil:
				t.Fatalf("read %d: %v (a hole?)", p, err)
			case string(got) != written[p]:
				t.Fatalf("read %d: %q, want %q", p, got, written[p])
			}
		}
		if _, err := l.Read(ctx, trimAt-1); !errors.Is(err, log.ErrTrimmed) {
			t.Fatalf("read below the trim point: %v", err)
		}
	}
	for p := range written {
		if p >= trimAt && p >= end {
			t.Fatalf("position %d at or beyond the tail %d", p, end)
		}
	}
}
