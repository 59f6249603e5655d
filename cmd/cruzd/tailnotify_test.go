package main

import (
	"testing"

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
	fired := false
	tn.NotifyTail(0, func(log.Position, error) { fired = true })
	if fired {
		t.Fatal("a notice fired on an empty log")
	}
}
