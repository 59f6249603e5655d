package cruzdb

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/seglog"
)

// gatedOrderLog is a seglog whose committer, once armed, stops in the
// OrderWatcher's Ordered after a group holding an intention is reported
// (before the group is written and synced) until released: a long
// fdatasync, with the group ordered and not durable.
type gatedOrderLog struct {
	*seglog.Log
	armed   atomic.Bool
	reached chan log.Position // the group's first position
	release chan struct{}
}

func (g *gatedOrderLog) NotifyOrder(w log.OrderWatcher) (stop func()) {
	return g.Log.NotifyOrder(gatedWatcher{w, g})
}

type gatedWatcher struct {
	log.OrderWatcher
	g *gatedOrderLog
}

func (w gatedWatcher) Ordered(first log.Position, data [][]byte) {
	w.OrderWatcher.Ordered(first, data)
	for _, d := range data {
		if entryType(d) == entry.TypeIntention && w.g.armed.CompareAndSwap(true, false) {
			w.g.reached <- first
			<-w.g.release
			return
		}
	}
}

// TestEarlyApplyShownOnlyOnceDurable: while a group's write and fdatasync
// are held up, replay applies its intention (early application), yet
// nothing shows it: its committer has no decision, a transaction begun
// then does not read its write, Stats.Position stays below it. Once the
// group is durable the commit returns and reads back. With ApplyAfterSync
// nothing is applied before.
func TestEarlyApplyShownOnlyOnceDurable(t *testing.T) {
	for _, late := range []bool{false, true} {
		name := "early"
		if late {
			name = "ApplyAfterSync"
		}
		t.Run(name, func(t *testing.T) {
			sl, err := seglog.Open(filepath.Join(t.TempDir(), SegLogDirName), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sl.Close()
			g := &gatedOrderLog{Log: sl, reached: make(chan log.Position, 1), release: make(chan struct{})}
			db, err := Open("", &Options{Log: g, CheckpointLogRatio: -1, ApplyAfterSync: late})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var released atomic.Bool
			open := func() {
				if released.CompareAndSwap(false, true) {
					close(g.release)
				}
			}
			defer open() // before Close, if the test fails while the group is held
			if got := db.early(); got == late {
				t.Fatalf("early application %v with ApplyAfterSync %v", got, late)
			}
			if late { // nothing watches the order: the gate still holds the group up
				defer g.NotifyOrder(nopWatcher{})()
			}
			put(t, db, "before", "1")
			g.armed.Store(true)
			done := make(chan error, 1)
			go func() {
				done <- db.Update(context.Background(), func(tx *Txn) error { return tx.Put([]byte("k"), []byte("v")) })
			}()
			var first log.Position
			select {
			case first = <-g.reached:
			case <-time.After(testutil.WaitLong):
				t.Fatal("the commit's group was never ordered")
			}
			if late {
				time.Sleep(50 * time.Millisecond) // give a wrong early apply the time to happen
				if a := db.runner.Applied(); a >= uint64(first) {
					t.Fatalf("applied through %d before group %d was written", a, first)
				}
			} else {
				deadline := time.Now().Add(testutil.WaitLong)
				for db.runner.Applied() < uint64(first) {
					if time.Now().After(deadline) {
						t.Fatalf("group at %d not applied early (applied %d)", first, db.runner.Applied())
					}
					time.Sleep(time.Millisecond)
				}
			}
			select {
			case err := <-done:
				t.Fatalf("commit returned (%v) before its group was durable", err)
			default:
			}
			if v, ok := get(t, db, "k"); ok {
				t.Fatalf("read %q before the commit was durable", v)
			}
			if v, ok := get(t, db, "before"); !ok || v != "1" {
				t.Fatalf("earlier commit: %q, %v", v, ok)
			}
			if p := db.Stats().Position; p >= first {
				t.Fatalf("Stats.Position %d while %d is not durable", p, first)
			}
			open()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(testutil.WaitLong):
				t.Fatal("commit did not return once durable")
			}
			if v, ok := get(t, db, "k"); !ok || v != "v" {
				t.Fatalf("after the commit: %q, %v", v, ok)
			}
		})
	}
}

type nopWatcher struct{}

func (nopWatcher) Ordered(log.Position, [][]byte) {}
func (nopWatcher) Durable(log.Position)           {}
