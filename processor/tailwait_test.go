package processor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

// waiterLog is a memlog that implements log.TailWaiter (woken by its own
// appends) and counts Tail calls.
type waiterLog struct {
	*memlog.Log
	mu      sync.Mutex
	changed chan struct{}
	tails   atomic.Int64
	waits   atomic.Int64
}

func (w *waiterLog) Append(ctx context.Context, d []byte) (log.Position, error) {
	p, err := w.Log.Append(ctx, d)
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	return p, err
}

func (w *waiterLog) Tail(ctx context.Context) (log.Position, error) {
	w.tails.Add(1)
	return w.Log.Tail(ctx)
}

func (w *waiterLog) WaitTail(ctx context.Context, after log.Position) (log.Position, error) {
	w.waits.Add(1)
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		t, err := w.Log.Tail(ctx)
		if err != nil || t > after {
			return t, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// TestRunnerWaitsOnTailWaiter: on a log.TailWaiter the runner never polls
// Tail (the poll interval is an hour and Notify is never called), yet
// replays every entry appended while it waits.
func TestRunnerWaitsOnTailWaiter(t *testing.T) {
	w := &waiterLog{Log: newLog(t, nil), changed: make(chan struct{})}
	c := newCollector()
	start(t, processor.Config{Log: w, State: processor.NewState(runnerHeader, cowtree.New(nil), 0), OnEvent: c.on, PollInterval: time.Hour})
	for i := range 3 {
		// Wait until the runner waits, so the append has to wake it.
		if !testutil.Poll(waitLong, func() bool { return w.waits.Load() >= int64(i+1) }) {
			t.Fatal("the runner never waited on WaitTail")
		}
		p := appendIn(t, w, &intention.Intention{Snapshot: uint64(i), Ops: []intention.Op{put("a", "1")}})
		if ev := c.next(t); ev.Pos != p {
			t.Fatalf("event at %d, want %d", ev.Pos, p)
		}
	}
	if n := w.tails.Load(); n != 0 {
		t.Fatalf("the runner polled Tail %d times", n)
	}
}
