package main

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/piggyback"
	"github.com/cruzlog/cruzdb/log/seglog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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

// TestTimedLogKeepsSeglogInterfaces: on seglog the metrics wrapper also
// keeps what the database uses of seglog beyond reading and appending: the
// order of groups before they are durable (early application), checked
// reads (replay reads an afterimage's header only) and lazy appends
// (afterimages share an intention's group commit), each of which it hid
// once. A lazy append through it lands, and is timed as an afterimage's.
func TestTimedLogKeepsSeglogInterfaces(t *testing.T) {
	l, err := seglog.Open(t.TempDir(), &seglog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m := newMetrics(&server{})
	w := keepTailWaiter(wrapTimed(l, m), l)
	if _, ok := w.(log.OrderNotifier); !ok {
		t.Fatal("wrapped seglog is no OrderNotifier")
	}
	if c, ok := w.(log.CheckedReader); !ok || !c.ChecksReads() {
		t.Fatal("wrapped seglog is no CheckedReader that checks reads")
	}
	if _, ok := w.(piggyback.LazyBatchAppender); !ok {
		t.Fatal("wrapped seglog is no LazyBatchAppender")
	}
	lz, ok := w.(piggyback.LazyAppender)
	if !ok {
		t.Fatal("wrapped seglog is no LazyAppender")
	}
	ai := entry.Encode(nil, entry.TypeAfterimage, []byte("x"))
	p, _, err := lz.AppendLazy(context.Background(), ai, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.Read(context.Background(), p); err != nil || !bytes.Equal(got, ai) {
		t.Fatalf("read back the lazy append: %q, %v", got, err)
	}
	var dm dto.Metric
	if err := m.flushDuration.(prometheus.Metric).Write(&dm); err != nil {
		t.Fatal(err)
	}
	if n := dm.GetHistogram().GetSampleCount(); n != 1 {
		t.Fatalf("afterimage appends timed: %d, want 1 (the lazy append)", n)
	}
}
