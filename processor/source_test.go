package processor_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/processor"
)

// TestRunnerCatchUpThenInline: a backlog larger than CatchUpBacklog at
// start is read by a catch-up reader; entries appended one at a time at the
// tail are read by the applying goroutine itself (no reader started); a
// burst larger than the backlog starts a reader again; every entry is
// replayed once, in log order, with its decision, on every path.
func TestRunnerCatchUpThenInline(t *testing.T) {
	l := newLog(t, nil)
	pos := uint64(0)
	add := func() {
		t.Helper()
		pos++
		key := fmt.Sprintf("k%05d", pos)
		if p := appendIn(t, l, &intention.Intention{Snapshot: 0, Token: pos, Ops: []intention.Op{put(key, "v")}}); p != pos {
			t.Fatalf("appended at %d, want %d", p, pos)
		}
	}
	seen := uint64(0)
	c := newCollector()
	expect := func(upTo uint64) {
		t.Helper()
		for seen < upTo {
			ev := c.next(t)
			seen++
			if ev.Pos != seen || ev.Decision == nil || ev.Decision.Token != seen || ev.Decision.Outcome != processor.Committed {
				t.Fatalf("event %+v (decision %+v), want position %d committed", ev, ev.Decision, seen)
			}
		}
	}
	for range 3 * processor.CatchUpBacklog {
		add()
	}
	r := start(t, processor.Config{Log: l, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on})
	expect(pos)
	if n := r.CatchUps(); n != 1 {
		t.Fatalf("a backlog of %d at start: %d catch-up readers, want 1", pos, n)
	}
	for range 20 {
		add()
		expect(pos) // replayed before the next append: a backlog of one
	}
	if n := r.CatchUps(); n != 1 {
		t.Fatalf("appends one at a time at the tail: %d catch-up readers in all, want still 1", n)
	}
	// A burst appended as one batch while the runner waits at the tail:
	// the tail moves past all of it at once.
	var burst [][]byte
	for range 2 * processor.CatchUpBacklog {
		pos++
		burst = append(burst, entry.AppendIntention(nil, &intention.Intention{Snapshot: 0, Token: pos, Ops: []intention.Op{put(fmt.Sprintf("k%05d", pos), "v")}}))
	}
	if _, err := l.AppendBatch(context.Background(), burst); err != nil {
		t.Fatal(err)
	}
	r.Notify()
	expect(pos)
	if n := r.CatchUps(); n != 2 {
		t.Fatalf("after a burst of %d: %d catch-up readers in all, want 2", len(burst), n)
	}
	c.none(t)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}
