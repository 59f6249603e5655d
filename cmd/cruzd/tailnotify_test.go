package main

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/cruzlog/cruzdb/internal/testutil"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/seglog"
)

// TestTimedLogKeepsTailNotifier: on seglog the metrics wrapper keeps
// log.TailNotifier as well as log.TailWaiter, so the processor parks on
// the log's tail notice; without it the processor falls back to a
// goroutine on WaitTail per notice, armed and stopped around every commit.
func TestTimedLogKeepsTailNotifier(t *testing.T) {
	l, err := seglog.Open(t.TempDir(), &seglog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w := keepTailWaiter(wrapTimed(l, newMetrics(&server{})), l)
	if _, ok := w.(log.TailWaiter); !ok {
		t.Fatal("wrapped seglog is no TailWaiter")
	}
	tn, ok := w.(log.TailNotifier)
	if !ok {
		t.Fatal("wrapped seglog is no TailNotifier")
	}
	var fired atomic.Uint64 // the tail the notice saw, plus one
	tn.NotifyTail(0, func(p log.Position, err error) {
		if err == nil {
			fired.Store(uint64(p) + 1)
		}
	})
	if fired.Load() != 0 {
		t.Fatal("a notice fired on an empty log")
	}
	// An append through the wrapper moves the tail: the notice fires.
	if _, err := w.Append(context.Background(), []byte("entry")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the tail notice", testutil.WaitLong, func() bool { return fired.Load() > 1 })
}
