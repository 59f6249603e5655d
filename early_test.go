package cruzdb

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/seglog"
)

// gatedOrderLog is a seglog whose committer, while armed, stops in the
// OrderWatcher's Ordered after it reported a group holding intentions
// (before the group is written and synced) until the test releases it: a
// long fdatasync, with the group ordered and not durable.
type gatedOrderLog struct {
	*seglog.Log
	armed  atomic.Bool
	groups chan heldGroup
}

// heldGroup is a group held in Ordered: its first and last positions and
// the keys its intentions write.
type heldGroup struct {
	first, last log.Position
	keys        []string
	release     chan struct{}
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
	if !w.g.armed.Load() {
		return
	}
	h := heldGroup{first: first, last: first + log.Position(len(data)) - 1, release: make(chan struct{})}
	for i, d := range data {
		if entryType(d) != entry.TypeIntention {
			continue
		}
		in, err := entry.DecodeIntentionEntry(uint64(first)+uint64(i), d)
		if err != nil {
			panic(err)
		}
		for _, op := range in.Ops {
			h.keys = append(h.keys, string(op.Key))
		}
	}
	if len(h.keys) == 0 {
		return
	}
	w.g.groups <- h
	<-h.release
}

type nopWatcher struct{}

func (nopWatcher) Ordered(log.Position, [][]byte) {}
func (nopWatcher) Durable(log.Position)           {}

// TestEarlyApplyShownOnlyOnceDurable: while the write and fdatasync of a
// group of several commits are held up, replay applies its intentions
// (early application), yet nothing shows them: none of them reads back in a
// transaction begun then, Stats.Position stays below the group, an earlier
// commit still reads. Once the group is durable every commit returns and
// reads back. With ApplyAfterSync nothing of the group is applied before.
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
			g := &gatedOrderLog{Log: sl, groups: make(chan heldGroup)}
			db, err := Open("", &Options{Log: g, CheckpointLogRatio: -1, ApplyAfterSync: late})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := db.early(); got == late {
				t.Fatalf("early application %v with ApplyAfterSync %v", got, late)
			}
			if late { // nothing watches the order: the gate still holds groups up
				defer g.NotifyOrder(nopWatcher{})()
			}
			put(t, db, "before", "1")

			// Commits in rounds of three until one group holds two or more
			// of them: a group held a little lets the others queue.
			var wg sync.WaitGroup
			defer wg.Wait()
			g.armed.Store(true)
			var releases []chan struct{}
			defer func() { // before Close, if the test fails while groups are held
				g.armed.Store(false)
				for _, r := range releases {
					close(r)
				}
			}()
			commit := func(k string) {
				defer wg.Done()
				if err := db.Update(context.Background(), func(tx *Txn) error { return tx.Put([]byte(k), []byte(k)) }); err != nil {
					t.Error(err)
				}
			}
			var held heldGroup
			deadline := time.After(testutil.WaitLong)
			for round := 0; held.release == nil; round++ {
				for i := range 3 {
					wg.Add(1)
					go commit(fmt.Sprintf("k%d-%d", round, i))
				}
				for got := 0; got < 3 && held.release == nil; {
					select {
					case h := <-g.groups:
						got += len(h.keys)
						if len(h.keys) >= 2 {
							held = h
							break
						}
						time.Sleep(5 * time.Millisecond)
						close(h.release)
					case <-deadline:
						t.Fatal("no group of two commits or more")
					}
				}
			}
			releases = append(releases, held.release)
			if late {
				time.Sleep(50 * time.Millisecond) // give a wrong early apply the time to happen
				if a := db.runner.Applied(); a >= uint64(held.first) {
					t.Fatalf("applied through %d before group %d..%d was written", a, held.first, held.last)
				}
			} else {
				deadline := time.Now().Add(testutil.WaitLong)
				for db.runner.Applied() < uint64(held.first) {
					if time.Now().After(deadline) {
						t.Fatalf("group %d..%d not applied early (applied %d)", held.first, held.last, db.runner.Applied())
					}
					time.Sleep(time.Millisecond)
				}
			}
			for _, k := range held.keys {
				if v, ok := get(t, db, k); ok {
					t.Fatalf("read %s = %q before its commit was durable", k, v)
				}
			}
			if v, ok := get(t, db, "before"); !ok || v != "1" {
				t.Fatalf("earlier commit: %q, %v", v, ok)
			}
			if p := db.Stats().Position; p >= held.first {
				t.Fatalf("Stats.Position %d while %d is not durable", p, held.first)
			}
			g.armed.Store(false)
			releases = nil
			close(held.release)
			wg.Wait()
			for _, k := range held.keys {
				if v, ok := get(t, db, k); !ok || v != k {
					t.Fatalf("after the commit: %s = %q, %v", k, v, ok)
				}
			}
			if n := db.Stats().IntentionsAppliedEarly; (n > 0) == late {
				t.Fatalf("Stats.IntentionsAppliedEarly %d with ApplyAfterSync %v", n, late)
			}
		})
	}
}
