package seglog

import (
	"context"
	"errors"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

// noteRecorder records the calls of a NotifyTail callback.
type noteRecorder struct {
	calls int
	tail  log.Position
	err   error
}

func (n *noteRecorder) f(tail log.Position, err error) { n.calls, n.tail, n.err = n.calls+1, tail, err }

// TestNotifyTail: a notice fires once, when a group moves the tail beyond
// its position (with that tail), or at once if the tail already is; a
// stopped one never does; Close fires those left with ErrClosed, and a
// notice armed after Close fires at once with it.
func TestNotifyTail(t *testing.T) {
	l := mustOpen(t, t.TempDir(), &Options{NoSync: true})
	ctx := context.Background()
	for range 3 {
		if _, err := l.Append(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	var now, later, stopped, closing noteRecorder
	l.NotifyTail(2, now.f)
	if now.calls != 1 || now.tail != 3 || now.err != nil {
		t.Fatalf("notice below the tail: %+v, want one call with tail 3", now)
	}
	stopLater := l.NotifyTail(3, later.f)
	stopStopped := l.NotifyTail(3, stopped.f)
	l.NotifyTail(4, closing.f)
	if later.calls != 0 {
		t.Fatalf("notice at the tail fired before an append: %+v", later)
	}
	if !stopStopped() {
		t.Fatal("stop of an armed notice reported false")
	}
	if _, err := l.Append(ctx, []byte("y")); err != nil {
		t.Fatal(err)
	}
	if later.calls != 1 || later.tail != 4 || later.err != nil {
		t.Fatalf("notice after the append: %+v, want one call with tail 4", later)
	}
	if stopLater() {
		t.Fatal("stop of a fired notice reported true")
	}
	if stopped.calls != 0 || closing.calls != 0 {
		t.Fatalf("stopped %+v, beyond the tail %+v: want no calls", stopped, closing)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if closing.calls != 1 || !errors.Is(closing.err, log.ErrClosed) {
		t.Fatalf("notice at Close: %+v, want one call with ErrClosed", closing)
	}
	var after noteRecorder
	l.NotifyTail(100, after.f)
	if after.calls != 1 || !errors.Is(after.err, log.ErrClosed) {
		t.Fatalf("notice after Close: %+v, want one call with ErrClosed", after)
	}
	if later.calls != 1 || now.calls != 1 || stopped.calls != 0 {
		t.Fatalf("a notice fired twice or after its stop: %+v %+v %+v", now, later, stopped)
	}
}

// TestNotifyTailStoppedDropped: notices armed and stopped with no append
// in between (a committer's BeginLocal stops what the last one armed) do
// not pile up in the list the committer walks.
func TestNotifyTailStoppedDropped(t *testing.T) {
	l := mustOpen(t, t.TempDir(), &Options{NoSync: true})
	var r noteRecorder
	for range 1000 {
		l.NotifyTail(0, r.f)()
	}
	l.segMu.RLock()
	n := len(l.notes)
	l.segMu.RUnlock()
	if n > 1 || r.calls != 0 {
		t.Fatalf("%d notices kept, %d calls after 1000 armed and stopped", n, r.calls)
	}
}
