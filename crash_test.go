package cruzdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// verifyRecovery opens a DB on the crash clone and checks it against the
// acknowledged writes and a model replay of the surviving log.
func verifyRecovery(t *testing.T, name string, clone *memlog.Log, acked map[string]string) {
	t.Helper()
	// No automatic checkpoint: the model replays the log from position 1,
	// which a checkpoint's trim would take away.
	db, err := Open("", &Options{Log: clone, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatalf("%s: reopen: %v", name, err)
	}
	defer db.Close()
	if err := checkAcked(db, acked); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// Intentions are all below the tail startup saw (the reopened node
	// appends only afterimages, which may be in flight above it).
	want := dumpMap(modelReplay(t, clone, log.Position(db.SafePoint().Tail)))
	if got := dump(t, db); got != want {
		t.Fatalf("%s: state differs from the model replay of the surviving log\n got %d bytes\nwant %d bytes", name, len(got), len(want))
	}
	// No hole survives startup below the tail it saw.
	ctx := context.Background()
	tail := db.SafePoint().Tail
	for p := uint64(0); p < tail; p++ {
		if _, err := clone.Read(ctx, log.Position(p)); errors.Is(err, log.ErrNotWritten) {
			t.Fatalf("%s: position %d still a hole after startup (tail seen %d)", name, p, tail)
		}
	}
}

// TestCrashAtEveryBoundary takes a crash clone at each boundary of the
// commit, flush, startup and close paths, and recovers from it.
func TestCrashAtEveryBoundary(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	hit := map[string]bool{}
	var hitMu sync.Mutex
	mark := func(s string) { hitMu.Lock(); hit[s] = true; hitMu.Unlock() }

	// run starts a DB on a fresh hooked memlog with some history, arms
	// trigger, runs more work, and returns the clone the trigger took.
	run := func(name string, opts Options, arm func(h *hookLog, db *DB, take func())) (*memlog.Log, map[string]string) {
		ml := memlog.New(&memlog.Options{Seed: seed})
		h := &hookLog{Log: ml}
		opts.Log = h
		db, err := Open("", &opts)
		if err != nil {
			t.Fatal(err)
		}
		a := &acks{m: map[string]string{}}
		crashWarmUp(db, a, seed)
		var clone *memlog.Log
		cp := newCrashPoint()
		arm(h, db, func() { cp.take(a, func() { clone = ml.CrashClone(); mark(name) }) })
		reached := crashRounds(db, a, seed, cp, 25, 20, nil, nil)
		db.Close()
		if !reached {
			t.Fatalf("%s: crash point never reached", name)
		}
		return clone, cp.acked
	}
	nth := func(n int, match func(op string, typ entry.Type, phase string) bool, take func()) func(string, entry.Type, string) {
		var count atomic.Int64
		return func(op string, typ entry.Type, phase string) {
			if match(op, typ, phase) && count.Add(1) == int64(n) {
				take()
			}
		}
	}
	points := []struct {
		name string
		opts Options
		arm  func(h *hookLog, db *DB, take func())
	}{
		{"intention-appended-not-acknowledged", Options{}, func(h *hookLog, db *DB, take func()) {
			h.setHook(nth(3, func(op string, typ entry.Type, ph string) bool {
				return op == "append" && typ == entry.TypeIntention && ph == "after"
			}, take))
		}},
		{"delta-produced-not-serialized", Options{}, func(h *hookLog, db *DB, take func()) {
			h.setHook(nth(2, func(op string, typ entry.Type, ph string) bool {
				return op == "append" && typ == entry.TypeAfterimage && ph == "before"
			}, take))
		}},
		{"afterimage-appended-not-confirmed", Options{}, func(h *hookLog, db *DB, take func()) {
			h.setHook(nth(2, func(op string, typ entry.Type, ph string) bool {
				return op == "append" && typ == entry.TypeAfterimage && ph == "after"
			}, take))
		}},
		{"serial-afterimage-appended", Options{FlushSerial: true}, func(h *hookLog, db *DB, take func()) {
			h.setHook(nth(5, func(op string, typ entry.Type, ph string) bool {
				return op == "append" && typ == entry.TypeAfterimage && ph == "after"
			}, take))
		}},
		// An afterimage riding with the next intention in one batch
		// append: in flight (both positions holes), and landed but not
		// yet acknowledged to the committer or confirmed.
		{"riding-batch-in-flight", Options{}, func(h *hookLog, db *DB, take func()) {
			h.setHook(nth(2, func(op string, typ entry.Type, ph string) bool {
				return op == "batch" && ph == "before"
			}, take))
		}},
		{"riding-batch-landed-not-acknowledged", Options{}, func(h *hookLog, db *DB, take func()) {
			h.setHook(nth(2, func(op string, typ entry.Type, ph string) bool {
				return op == "batch" && ph == "after"
			}, take))
		}},
		{"during-replay", Options{}, func(h *hookLog, db *DB, take func()) {
			h.setHook(nth(40, func(op string, typ entry.Type, ph string) bool { return op == "read" }, take))
		}},
	}
	for _, p := range points {
		clone, acked := run(p.name, p.opts, p.arm)
		verifyRecovery(t, p.name, clone, acked)
	}

	// Position taken, intention never written: a writer dies after the
	// sequencer gave it a position.
	{
		gate := memlog.NewGate()
		var armed atomic.Bool
		ml := memlog.New(&memlog.Options{Seed: seed, Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
			if c.Op == memlog.OpAppend && armed.CompareAndSwap(true, false) {
				return memlog.Fault{Hold: gate}
			}
			return memlog.Fault{}
		}})
		db, err := Open("", &Options{Log: ml})
		if err != nil {
			t.Fatal(err)
		}
		a := &acks{m: map[string]string{}}
		crashWork(db, a, 0, 20, seed)
		db.Flush(context.Background())
		armed.Store(true)
		go db.Update(context.Background(), func(tx *Txn) error { return tx.Put([]byte("never-acked"), []byte("x")) })
		<-gate.Held()
		clone := ml.CrashClone()
		mark("position-taken-not-written")
		acked := a.snapshot()
		gate.Release()
		db.Close()
		verifyRecovery(t, "position-taken-not-written", clone, acked)
	}

	// Crashes during startup itself: the backward scan, and hole filling.
	for _, sp := range []struct {
		name  string
		match func(op string, typ entry.Type, ph string) bool
	}{
		{"during-backward-scan", func(op string, _ entry.Type, ph string) bool { return op == "read" }},
		{"during-hole-filling-before", func(op string, _ entry.Type, ph string) bool { return op == "fill" && ph == "before" }},
		{"during-hole-filling-after", func(op string, _ entry.Type, ph string) bool { return op == "fill" && ph == "after" }},
	} {
		// A log with holes (appends dropped by crashed writers) and
		// unflushed intentions after the last afterimage.
		var drop atomic.Int64
		ml := memlog.New(&memlog.Options{Seed: seed, Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
			if c.Op == memlog.OpAppend && drop.Load() > 0 && drop.Add(-1) >= 0 {
				return memlog.Fault{Drop: true}
			}
			return memlog.Fault{}
		}})
		// The node dies after the crash clone below; its Close does not
		// wait for replay to time out on the holes (1 s each).
		db, err := Open("", &Options{Log: ml, FlushPolicy: 2 /* originator */, CloseFlushTimeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		a := &acks{m: map[string]string{}}
		crashWork(db, a, 0, 20, seed)
		// A crashed writer leaves three holes; other writers' intentions
		// land behind them before anyone fills them.
		ctx := context.Background()
		snap := uint64(db.Stats().Position)
		drop.Store(3)
		for i := range 8 {
			in := &intention.Intention{Snapshot: snap, Token: uint64(i), Ops: []intention.Op{{Kind: intention.OpPut, Key: fmt.Appendf(nil, "late-%d", i), Value: []byte("x")}}}
			ml.Append(ctx, entry.AppendIntention(nil, in))
		}
		first := ml.CrashClone() // the node dies; its unflushed deltas and holes remain
		acked := a.snapshot()
		db.Close()

		h := &hookLog{Log: first}
		var second *memlog.Log
		h.setHook(nth(2, sp.match, func() { second = first.CrashClone(); mark(sp.name) }))
		db2, err := Open("", &Options{Log: h})
		if err != nil {
			t.Fatalf("%s: %v", sp.name, err)
		}
		db2.Close()
		if second == nil {
			t.Fatalf("%s: crash point never reached", sp.name)
		}
		verifyRecovery(t, sp.name, second, acked)
	}

	// Crash while Close flushes.
	{
		ml := memlog.New(&memlog.Options{Seed: seed, AppendLatency: 200 * time.Microsecond})
		h := &hookLog{Log: ml}
		db, err := Open("", &Options{Log: h, FlushPolicy: 2 /* originator */, FlushWorkers: 2})
		if err != nil {
			t.Fatal(err)
		}
		a := &acks{m: map[string]string{}}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); crashWork(db, a, w, 15, seed) }()
		}
		wg.Wait()
		acked := a.snapshot()
		var clone *memlog.Log
		var closing atomic.Bool
		var cloneMu sync.Mutex
		h.setHook(func(op string, typ entry.Type, ph string) {
			if closing.Load() && op == "append" && typ == entry.TypeAfterimage && ph == "after" {
				cloneMu.Lock()
				defer cloneMu.Unlock()
				if clone == nil {
					clone = ml.CrashClone()
					mark("during-close")
				}
			}
		})
		if db.Stats().PendingDeltas == 0 {
			t.Log("during-close: no pending deltas left to flush at close")
		}
		closing.Store(true)
		db.Close()
		cloneMu.Lock()
		defer cloneMu.Unlock()
		if clone == nil {
			clone = ml.CrashClone()
			mark("during-close")
		}
		verifyRecovery(t, "during-close", clone, acked)
	}

	want := []string{"intention-appended-not-acknowledged", "delta-produced-not-serialized", "afterimage-appended-not-confirmed",
		"serial-afterimage-appended", "during-replay", "position-taken-not-written", "during-backward-scan",
		"during-hole-filling-before", "during-hole-filling-after", "during-close"}
	for _, w := range want {
		if !hit[w] {
			t.Errorf("crash point %s not hit", w)
		}
	}
	t.Logf("%d crash points hit", len(hit))
}

// TestCorruptEntryReported: a corrupt entry stops Open with ErrCorrupt
// naming its position, and it is never filled over or skipped.
func TestCorruptEntryReported(t *testing.T) {
	ml := memlog.New(nil)
	db := openMem(t, ml)
	put(t, db, "a", "1")
	db.Close()
	ctx := context.Background()
	torn := []byte{entry.Magic0, entry.Magic1, entry.Version, byte(entry.TypeIntention), 1, 2, 3, 4, 0x92}
	pos, err := ml.Append(ctx, torn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open("", &Options{Log: ml})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("position %d", pos)) {
		t.Fatalf("open over a torn entry: %v", err)
	}
	data, err := ml.Read(ctx, pos)
	if err != nil || !bytes.Equal(data, torn) {
		t.Fatalf("the corrupt entry was changed: %q %v", data, err)
	}
}

// TestInflightDuplicateAtStartup: a duplicate afterimage for the safe
// point's intention sits in a hole before the active one while a node
// starts. Either startup's fill wins, or the duplicate lands first and the
// choice is re-made; the state is the same either way.
func TestInflightDuplicateAtStartup(t *testing.T) {
	for _, landFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("duplicate-lands-first=%v", landFirst), func(t *testing.T) {
			gate := memlog.NewGate()
			var armed atomic.Bool
			ml := memlog.New(&memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
				if c.Op == memlog.OpAppend && c.Attempt == 0 && armed.CompareAndSwap(true, false) {
					return memlog.Fault{Hold: gate}
				}
				return memlog.Fault{}
			}})
			// a writes an intention and holds its afterimage; b writes only
			// what it is asked to and never fills the hole itself.
			hb := &holdAfterimages{Log: ml, held: make(chan struct{}), release: make(chan struct{})}
			a, err := Open("", &Options{Log: hb})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := Open("", &Options{Log: ml, FlushPolicy: 2 /* originator */, HoleTimeout: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			put(t, a, "k", "v")
			<-hb.held
			armed.Store(true)
			close(hb.release) // a's afterimage append takes position 2 and holds there: a hole
			<-gate.Held()
			// b writes its afterimage of the same intention after the hole,
			// once it has replayed the intention.
			testutil.Eventually(t, testutil.WaitLong, func() bool { return b.Stats().Position >= 1 })
			go b.Flush(context.Background())
			testutil.Eventually(t, testutil.WaitLong, func() bool { return b.Stats().AfterimagesWritten > 0 })
			// c starts with the duplicate in flight in the hole.
			hc := &hookLog{Log: ml}
			if landFirst {
				var once sync.Once
				hc.setHook(func(op string, _ entry.Type, ph string) {
					if op == "fill" && ph == "before" {
						once.Do(func() {
							gate.Release()
							// Let it land before the fill goes ahead.
							testutil.Poll(testutil.WaitLong, func() bool { return ml.Stats().InFlight == 0 })
						})
					}
				})
			}
			c, err := Open("", &Options{Log: hc})
			if err != nil {
				t.Fatal(err)
			}
			gate.Release()
			if v, _ := get(t, c, "k"); v != "v" {
				t.Fatalf("k = %q", v)
			}
			sp := c.SafePoint()
			if landFirst && sp.Afterimage != sp.Intention+1 {
				t.Fatalf("the duplicate landed first in the hole, but the choice is %+v", sp)
			}
			if !landFirst && (sp.Afterimage != sp.Intention+2 || sp.Fills != 1) {
				t.Fatalf("startup should fill the hole and keep the later afterimage: %+v", sp)
			}
			c.Close()
			verifyRecovery(t, "duplicate", ml, map[string]string{"k": "v"})
		})
	}
}

// TestRandomAppendFaultsWhileRiding injects seeded random faults into every
// append (drops, lost acknowledgements, failures before sequencing, extra
// delay) while two clients commit, so afterimages ride in batches that the
// faults hit too, and crashes at a random point. Recovery from the crash
// clone keeps every acknowledged write and agrees with a model replay, and
// the live database agrees with a replay of the whole log.
func TestRandomAppendFaultsWhileRiding(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var armed atomic.Bool
	var injected [4]atomic.Int64
	ml := memlog.New(&memlog.Options{Seed: seed, AppendLatency: 100 * time.Microsecond,
		Inject: func(c memlog.Call, r *rand.Rand) memlog.Fault {
			if c.Op != memlog.OpAppend || !armed.Load() {
				return memlog.Fault{}
			}
			switch x := r.IntN(100); {
			case x < 2:
				injected[0].Add(1)
				return memlog.Fault{Drop: true}
			case x < 4:
				injected[1].Add(1)
				return memlog.Fault{AckLost: true}
			case x < 6:
				injected[2].Add(1)
				return memlog.Fault{Err: errors.New("injected: refused")}
			case x < 10:
				injected[3].Add(1)
				return memlog.Fault{Delay: time.Duration(r.IntN(2000)) * time.Microsecond}
			}
			return memlog.Fault{}
		}})
	h := &hookLog{Log: ml}
	var batches atomic.Int64
	h.setHook(func(op string, _ entry.Type, ph string) {
		if op == "batch" && ph == "before" {
			batches.Add(1)
		}
	})
	// Automatic checkpoints off: the model replays the whole log, which
	// their trims would cut (with a 96 KiB trigger, one landed in a CI
	// run).
	db, err := Open("", &Options{Log: h, HoleTimeout: 20 * time.Millisecond, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	a := &acks{m: map[string]string{}}
	armed.Store(true)
	crashAfter := 20 + rand.New(rand.NewPCG(seed, 9)).IntN(60) // commits attempted
	var attempts atomic.Int64
	var clone *memlog.Log
	var ackedAtCrash map[string]string
	var once sync.Once
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 6 {
				crashWork(db, a, 10*w+round, 15, seed)
				if attempts.Add(15) >= int64(crashAfter) {
					once.Do(func() {
						ackedAtCrash = a.snapshot()
						clone = ml.CrashClone()
					})
				}
			}
		}()
	}
	wg.Wait()
	armed.Store(false)
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	live := dump(t, db)
	acked := a.snapshot()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("faults: %d drops, %d lost acks, %d refusals, %d delays; %d batches, %d afterimages rode; %d commits acknowledged",
		injected[0].Load(), injected[1].Load(), injected[2].Load(), injected[3].Load(), batches.Load(), st.Piggybacked, len(acked))
	if st.Piggybacked == 0 || batches.Load() == 0 {
		t.Fatalf("no afterimage rode with an intention (batches %d): the test did not cover riding", batches.Load())
	}
	if injected[0].Load()+injected[1].Load()+injected[2].Load() == 0 {
		t.Fatal("no fault was injected")
	}
	verifyRecovery(t, "crash under faults", clone, ackedAtCrash)
	verifyRecovery(t, "after close", ml, acked)
	tail, err := ml.Tail(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := dumpMap(modelReplay(t, ml, tail)); live != want {
		t.Fatalf("live state differs from the model replay of the whole log")
	}
}
