package cruzdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
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

// hookLog wraps a memlog and calls hook around operations, on the calling
// goroutine and outside the memlog's locks, so a test can take a crash clone
// at an exact boundary.
type hookLog struct {
	*memlog.Log
	hook atomic.Pointer[func(op string, typ entry.Type, phase string)]
}

func (h *hookLog) call(op string, typ entry.Type, phase string) {
	if f := h.hook.Load(); f != nil {
		(*f)(op, typ, phase)
	}
}

func (h *hookLog) setHook(f func(op string, typ entry.Type, phase string)) { h.hook.Store(&f) }

func entryType(data []byte) entry.Type {
	if typ, _, err := entry.Decode(0, data); err == nil {
		return typ
	}
	return 0
}

func (h *hookLog) Append(ctx context.Context, data []byte) (log.Position, error) {
	typ := entryType(data)
	h.call("append", typ, "before")
	p, err := h.Log.Append(ctx, data)
	if err == nil {
		h.call("append", typ, "after")
	}
	return p, err
}

// AppendBatch keeps the memlog's batch append (afterimages riding with an
// intention) visible to the hooks: each entry is an append.
func (h *hookLog) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	for _, d := range data {
		h.call("append", entryType(d), "before")
	}
	h.call("batch", 0, "before")
	pos, err := h.Log.AppendBatch(ctx, data)
	if err == nil {
		h.call("batch", 0, "after")
		for _, d := range data {
			h.call("append", entryType(d), "after")
		}
	}
	return pos, err
}

func (h *hookLog) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	h.call("read", 0, "before")
	return h.Log.Read(ctx, pos)
}

// ReadRange is a read too (replay reads a prefix of every entry first).
func (h *hookLog) ReadRange(ctx context.Context, pos log.Position, off, n int) ([]byte, int, error) {
	h.call("read", 0, "before")
	return h.Log.ReadRange(ctx, pos, off, n)
}

func (h *hookLog) Fill(ctx context.Context, pos log.Position) error {
	h.call("fill", 0, "before")
	err := h.Log.Fill(ctx, pos)
	h.call("fill", 0, "after")
	return err
}

// modelReplay replays the intentions of l with the conflict rule written
// plainly over maps: the reference the database must agree with.
func modelReplay(t *testing.T, l log.Log, tail log.Position) map[string]string {
	t.Helper()
	ctx := context.Background()
	h, err := readOrWriteHeader(ctx, l, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	last := map[string]uint64{} // last write (put or delete) per key
	for p := uint64(1); p < uint64(tail); p++ {
		data, err := l.Read(ctx, log.Position(p))
		if errors.Is(err, log.ErrFilled) {
			continue
		}
		if err != nil {
			t.Fatalf("model: read %d: %v", p, err)
		}
		in, err := entry.DecodeIntentionEntry(p, data)
		if errors.Is(err, entry.ErrWrongType) {
			continue
		}
		if err != nil {
			t.Fatalf("model: %v", err)
		}
		if p-in.Snapshot > h.ConflictWindow || in.Snapshot >= p {
			continue
		}
		abort := false
		for _, k := range in.Reads {
			if last[string(k)] > in.Snapshot {
				abort = true
			}
		}
		for _, r := range in.Ranges {
			for k, q := range last {
				if q > in.Snapshot && (r.Lo == nil || k >= string(r.Lo)) && (r.Hi == nil || k < string(r.Hi)) {
					abort = true
				}
			}
		}
		if abort {
			continue
		}
		for _, op := range in.Ops {
			last[string(op.Key)] = p
			if op.Value == nil && op.Kind != 1 {
				delete(vals, string(op.Key))
			} else {
				vals[string(op.Key)] = string(op.Value)
			}
		}
	}
	return vals
}

func dumpMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, m[k])
	}
	return b.String()
}

// acks records acknowledged writes of unique keys.
type acks struct {
	mu sync.Mutex
	m  map[string]string
}

func (a *acks) add(k, v string) {
	a.mu.Lock()
	a.m[k] = v
	a.mu.Unlock()
}

func (a *acks) snapshot() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := make(map[string]string, len(a.m))
	for k, v := range a.m {
		c[k] = v
	}
	return c
}

// crashWork runs n transactions per writer: a unique acknowledged key each,
// plus reads, scans and deletes on shared keys so decisions matter.
func crashWork(db *DB, a *acks, writer, n int, seed uint64) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, uint64(writer)))
	for i := range n {
		k, v := fmt.Sprintf("ack-%d-%04d", writer, i), fmt.Sprintf("v%d", r.IntN(1000))
		err := db.Update(ctx, func(tx *Txn) error {
			s := fmt.Appendf(nil, "shared%d", r.IntN(8))
			if _, err := tx.Get(s); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			switch r.IntN(4) {
			case 0:
				tx.Delete(s)
			case 1:
				for range tx.Range([]byte("shared"), []byte("shared5")) {
				}
				fallthrough
			default:
				tx.Put(s, []byte(k))
			}
			return tx.Put([]byte(k), []byte(v))
		})
		if err == nil {
			a.add(k, v)
		}
	}
}

// verifyRecovery opens a DB on the crash clone and checks it against the
// acknowledged writes and a model replay of the surviving log.
func verifyRecovery(t *testing.T, name string, clone *memlog.Log, acked map[string]string) {
	t.Helper()
	db, err := Open("", &Options{Log: clone})
	if err != nil {
		t.Fatalf("%s: reopen: %v", name, err)
	}
	defer db.Close()
	ctx := context.Background()
	err = db.View(ctx, func(tx *Txn) error {
		for k, v := range acked {
			got, err := tx.Get([]byte(k))
			if err != nil || string(got) != v {
				return fmt.Errorf("acknowledged %s=%s lost: got %q, %v", k, v, got, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// Intentions are all below the tail startup saw (the reopened node
	// appends only afterimages, which may be in flight above it).
	want := dumpMap(modelReplay(t, clone, log.Position(db.SafePoint().Tail)))
	if got := dump(t, db); got != want {
		t.Fatalf("%s: state differs from the model replay of the surviving log\n got %d bytes\nwant %d bytes", name, len(got), len(want))
	}
	// No hole survives startup below the tail it saw.
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
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); crashWork(db, a, w, 30, seed) }()
		}
		wg.Wait()
		var clone *memlog.Log
		var ackedAtCrash map[string]string
		var once sync.Once
		took := make(chan struct{})
		take := func() {
			once.Do(func() {
				// Acks are taken first: an ack after the clone is not required.
				ackedAtCrash = a.snapshot()
				clone = ml.CrashClone()
				mark(name)
				close(took)
			})
		}
		arm(h, db, take)
		// Work in rounds until the crash point is reached: some points
		// (an afterimage riding with an intention) depend on timing.
		reached := false
		for round := 0; round < 25 && !reached; round++ {
			for w := 2 + 2*round; w < 4+2*round; w++ {
				wg.Add(1)
				go func() { defer wg.Done(); crashWork(db, a, w, 20, seed) }()
			}
			wg.Wait()
			select {
			case <-took:
				reached = true
			default:
			}
		}
		db.Close()
		if !reached {
			t.Fatalf("%s: crash point never reached", name)
		}
		return clone, ackedAtCrash
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
		db, err := Open("", &Options{Log: ml, FlushPolicy: 2 /* originator */})
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
	db, err := Open("", &Options{Log: h, HoleTimeout: 20 * time.Millisecond})
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
