package cruzdb

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
)

// AppendLazy goes through the hooks as the append of its entry and, around
// it, as op "lazy" (seglog's lazy appends carry the afterimages that ride
// with intentions: see log/piggyback).
func (h *segHookLog) AppendLazy(ctx context.Context, data []byte, within time.Duration) (log.Position, bool, error) {
	typ := entryType(data)
	h.call("append", typ, "before")
	h.call("lazy", 0, "before")
	p, shared, err := h.Log.AppendLazy(ctx, data, within)
	if err == nil {
		h.call("lazy", 0, "after")
		h.call("append", typ, "after")
	}
	return p, shared, err
}

// TestCrashAtLazyBoundariesSeglog is TestCrashAtBoundariesSeglog's riding
// boundaries with more than piggyback.MaxRidingCommitters commits under way,
// where afterimages ride as seglog's lazy appends: a lazy append queued and
// not yet written, and one written but not yet acknowledged to the
// flusher. The database opened on the crash copy holds every commit
// acknowledged before it and agrees with a model replay of the copy.
func TestCrashAtLazyBoundariesSeglog(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for _, ph := range []string{"before", "after"} {
		t.Run("lazy-"+ph, func(t *testing.T) {
			sl, h, db, a, clone := seglogCrashRig(t, Options{}, seed)
			var count atomic.Int64
			var copyErr error
			cp := newCrashPoint()
			h.setHook(func(op string, _ entry.Type, phase string) {
				if op == "lazy" && phase == ph && count.Add(1) == 3 {
					cp.take(a, func() { copyErr = sl.CopyTo(clone) })
				}
			})
			reached := false
			for round := 0; round < 20 && !reached; round++ {
				var wg sync.WaitGroup
				for w := 2 + 6*round; w < 8+6*round; w++ { // 6 writers
					wg.Add(1)
					go func() { defer wg.Done(); crashWork(db, a, w, 20, seed) }()
				}
				wg.Wait()
				reached = cp.reached()
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if !reached {
				t.Fatal("crash point never reached")
			}
			if copyErr != nil {
				t.Fatal(copyErr)
			}
			verifySeglogRecovery(t, clone, cp.acked)
		})
	}
}
