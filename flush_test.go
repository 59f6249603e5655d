package cruzdb

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

// workload runs a seeded mix of puts, deletes, reads and scans.
func workload(t *testing.T, db *DB, seed uint64, txns int) {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 3))
	for i := range txns {
		err := db.Update(ctx, func(tx *Txn) error {
			for range 1 + r.IntN(4) {
				k := fmt.Appendf(nil, "key%04d", r.IntN(500))
				switch r.IntN(5) {
				case 0:
					if err := tx.Delete(k); err != nil {
						return err
					}
				case 1:
					for range tx.Range(k, append(k, 0xff)) {
					}
				default:
					if _, err := tx.Get(k); err != nil && err != ErrNotFound {
						return err
					}
					if err := tx.Put(k, fmt.Appendf(nil, "v%d-%s", i, bytes.Repeat([]byte("x"), r.IntN(200)))); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func dump(t *testing.T, db *DB) string {
	t.Helper()
	var buf bytes.Buffer
	err := db.View(context.Background(), func(tx *Txn) error {
		buf.Reset() // View runs fn again after a peer's trim
		for k, v := range tx.Range(nil, nil) {
			fmt.Fprintf(&buf, "%s=%s\n", k, v)
		}
		return tx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestFlushEquivalence: one workload under serial and parallel flushing,
// tiny and large caches, memlog and boltlog, ends in the same state.
func TestFlushEquivalence(t *testing.T) {
	type config struct {
		name   string
		serial bool
		cache  int64
		bolt   bool
	}
	configs := []config{
		{"parallel-large-mem", false, 64 << 20, false},
		{"serial-large-mem", true, 64 << 20, false},
		{"parallel-tiny-mem", false, 16 << 10, false},
		{"serial-tiny-mem", true, 16 << 10, false},
		{"parallel-tiny-bolt", false, 16 << 10, true},
		{"serial-large-bolt", true, 64 << 20, true},
	}
	var want string
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			o := &Options{FlushSerial: c.serial, CacheBytes: c.cache, NoSync: true}
			path := ""
			if c.bolt {
				path = t.TempDir()
			} else {
				o.Log = memlog.New(nil)
			}
			db, err := Open(path, o)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			workload(t, db, 42, 300)
			if err := db.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := dump(t, db)
			st := db.Stats()
			if st.AfterimagesWritten == 0 || st.PendingDeltas != 0 || st.UnflushedBytes != 0 {
				t.Fatalf("after Flush: %+v", st)
			}
			if c.serial && st.PointersIntention != 0 {
				t.Fatalf("serial mode wrote %d intention pointers", st.PointersIntention)
			}
			if c.cache < 1<<20 && st.Evictions == 0 {
				t.Fatalf("tiny cache evicted nothing: %+v", st)
			}
			if want == "" {
				want = got
			} else if got != want {
				t.Fatalf("state differs from the first configuration")
			}
		})
	}
}

// TestSmallCacheReadsBack writes 20,000 keys with a cache of a few hundred
// KiB and reads all of them back through evicted paths.
func TestSmallCacheReadsBack(t *testing.T) {
	const budget = 256 << 10
	db, err := Open("", &Options{Log: memlog.New(nil), CacheBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	const n = 20000
	putBatches(t, db, n, 100, func(j int) ([]byte, []byte) {
		return fmt.Appendf(nil, "k%06d", j), fmt.Appendf(nil, "value-%d", j)
	})
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// One more commit lets the processor goroutine run the clock.
	put(t, db, "zz", "last")
	db.Flush(ctx)
	put(t, db, "zz", "last2")
	st := db.Stats()
	if st.CachedBytes > 2*budget {
		t.Fatalf("cached %d bytes, budget %d", st.CachedBytes, budget)
	}
	if st.Evictions == 0 {
		t.Fatal("nothing evicted")
	}
	err = db.View(ctx, func(tx *Txn) error {
		for i := range n {
			v, err := tx.Get(fmt.Appendf(nil, "k%06d", i))
			if err != nil {
				return fmt.Errorf("k%06d: %w", i, err)
			}
			if string(v) != fmt.Sprintf("value-%d", i) {
				return fmt.Errorf("k%06d = %q", i, v)
			}
		}
		count := 0
		for k := range tx.Range([]byte("k"), []byte("l")) {
			if want := fmt.Sprintf("k%06d", count); string(k) != want {
				return fmt.Errorf("range: %q, want %q", k, want)
			}
			count++
		}
		if count != n {
			return fmt.Errorf("range saw %d keys", count)
		}
		return tx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	st2 := db.Stats()
	if st2.CacheMisses == st.CacheMisses {
		t.Fatal("reads loaded nothing from the log: eviction did not happen")
	}
	t.Logf("cached %d bytes (budget %d), evictions %d, loads %d", st2.CachedBytes, budget, st2.Evictions, st2.CacheMisses)
}

// TestIntentionPointersWhenSlow: with slow appends, parallel flushing writes
// intention pointers.
func TestIntentionPointersWhenSlow(t *testing.T) {
	l := memlog.New(&memlog.Options{AppendLatency: 2 * time.Millisecond})
	db, err := Open("", &Options{Log: l, FlushWorkers: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				put(t, db, fmt.Sprintf("w%d-%d", w, i), "v")
			}
		}()
	}
	wg.Wait()
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	if st.PointersIntention == 0 {
		t.Fatalf("no intention pointers written: %+v", st)
	}
	t.Logf("pointers: physical %d, intention %d", st.PointersPhysical, st.PointersIntention)
}

// holdAfterimages wraps a log and holds this node's first afterimage append
// until released: a duplicate in flight that lands late.
type holdAfterimages struct {
	log.Log
	once    sync.Once
	held    chan struct{}
	release chan struct{}
}

func (h *holdAfterimages) Append(ctx context.Context, data []byte) (log.Position, error) {
	if typ, _, err := entry.Decode(0, data); err == nil && typ == entry.TypeAfterimage {
		first := false
		h.once.Do(func() { first = true })
		if first {
			close(h.held)
			<-h.release
		}
	}
	return h.Log.Append(ctx, data)
}

// TestLateDuplicateIgnored: two nodes flush every afterimage; a duplicate
// held in flight lands after the active one and changes nothing.
func TestLateDuplicateIgnored(t *testing.T) {
	l := memlog.New(nil)
	hb := &holdAfterimages{Log: l, held: make(chan struct{}), release: make(chan struct{})}
	// a writes only its own afterimages (and what Flush asks for); b all.
	a, err := Open("", &Options{Log: l, FlushPolicy: flusher.PolicyOriginator})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open("", &Options{Log: hb, FlushPolicy: flusher.PolicyAll})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	put(t, b, "k", "v1")
	<-hb.held // b holds its afterimage of the intention
	a.Sync(ctx)
	if err := a.Flush(ctx); err != nil { // a's afterimage lands first: the active one
		t.Fatal(err)
	}
	b.Sync(ctx)
	before := b.Stats().Duplicates
	close(hb.release) // the late duplicate lands
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	workload(t, a, 7, 40)
	a.Flush(ctx)
	b.Flush(ctx)
	a.Sync(ctx)
	b.Sync(ctx)
	if a.Stats().Duplicates == 0 || b.Stats().Duplicates <= before {
		t.Fatalf("late duplicate not seen as one: a %d, b %d (before %d)", a.Stats().Duplicates, b.Stats().Duplicates, before)
	}
	// Compare with a run without duplicates: a fresh node replaying the log.
	c := openMem(t, l)
	if dump(t, a) != dump(t, b) || dump(t, a) != dump(t, c) {
		t.Fatal("nodes differ")
	}
}

// TestDeterministicDeltas: two DBs on one log, writing concurrently, make
// byte-identical deltas at every position.
func TestDeterministicDeltas(t *testing.T) {
	l := memlog.New(nil)
	var mu sync.Mutex
	deltas := [2]map[uint64][]byte{{}, {}}
	open := func(i int) *DB {
		// No automatic checkpoints: one node's trim would let the other,
		// if it lagged, resume past some deltas (a re-bootstrap), and the
		// counts below compare every delta. TestTwoNodesWriteIdenticalImages
		// covers checkpoint deltas on two nodes.
		o := &Options{Log: l, CheckpointLogRatio: -1}
		o.deltaHook = func(d *processor.Delta) {
			ai, _ := flusher.Serialize(d, d.Pos, nil)
			b := entry.AppendAfterimage(nil, ai)
			mu.Lock()
			deltas[i][d.Pos] = b
			mu.Unlock()
		}
		db, err := Open("", o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(0), open(1)
	var wg sync.WaitGroup
	for i, db := range []*DB{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			workload(t, db, uint64(i+100), 150)
		}()
	}
	wg.Wait()
	ctx := context.Background()
	a.Sync(ctx)
	b.Sync(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(deltas[0]) < 100 || len(deltas[0]) != len(deltas[1]) {
		t.Fatalf("delta counts %d vs %d", len(deltas[0]), len(deltas[1]))
	}
	for pos, d := range deltas[0] {
		if !bytes.Equal(d, deltas[1][pos]) {
			t.Fatalf("delta %d differs between nodes", pos)
		}
	}
	if a.Stats().Commits != b.Stats().Commits || a.Stats().Aborts != b.Stats().Aborts {
		t.Fatal("decision counts differ")
	}
}

// TestOverwritesKeepHeapFlat: overwriting a small key space, whose nodes
// fit the cache budget many times over, must not grow the heap: every
// write replaces a path of nodes, and nothing may keep the replaced ones
// (the clock ring once did, ~2 KB per write).
func TestOverwritesKeepHeapFlat(t *testing.T) {
	db, err := Open(t.TempDir(), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	val := bytes.Repeat([]byte("v"), 100)
	heap := func(updates int, seed uint64) uint64 {
		r := rand.New(rand.NewPCG(seed, 9))
		for range updates {
			err := db.Update(ctx, func(tx *Txn) error {
				for range 10 {
					if err := tx.Put(fmt.Appendf(nil, "key%03d", r.IntN(200)), val); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// 30,000 overwrites: kept replaced nodes (~2 KB a write) would grow the
	// heap by ~60 MB, well over the 16 MiB allowed.
	warm := heap(1000, 1)
	after := heap(3000, 2)
	t.Logf("heap after 1,000 updates %d KiB, after 3,000 more %d KiB; cached %d KiB", warm>>10, after>>10, db.Stats().CachedBytes>>10)
	if after > warm+16<<20 {
		t.Fatalf("heap grew from %d to %d KiB over 30,000 overwrites of 200 keys", warm>>10, after>>10)
	}
}

// TestBackpressureBoundsMemory: 64 writers against 1 ms appends and a small
// unflushed budget; heap stays bounded and nothing is lost.
func TestBackpressureBoundsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	l := memlog.New(&memlog.Options{AppendLatency: time.Millisecond})
	const budget = 256 << 10
	db, err := Open("", &Options{Log: l, MaxUnflushedBytes: budget, FlushWorkers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	// Sampled as each commit returns, when its delta has just joined the
	// unflushed ones: the highs, without a sampling clock.
	var maxUnflushed atomic.Int64
	val := bytes.Repeat([]byte("v"), 1000)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				err := db.Update(ctx, func(tx *Txn) error {
					return tx.Put(fmt.Appendf(nil, "w%02d-%03d", w, i), val)
				})
				if err != nil {
					t.Error(err)
					return
				}
				raiseTo(&maxUnflushed, db.Stats().UnflushedBytes)
			}
		}()
	}
	wg.Wait()
	st := db.Stats()
	if st.BackpressureWaits == 0 {
		t.Fatalf("no commit waited: %+v", st)
	}
	// Commits admitted while under the budget can overshoot it by at most
	// one delta per writer.
	if m := maxUnflushed.Load(); m > budget+64*16<<10 {
		t.Fatalf("unflushed bytes reached %d with budget %d", m, budget)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("max unflushed %d, waits %d, heap %d MiB", maxUnflushed.Load(), st.BackpressureWaits, ms.HeapAlloc>>20)
	// 960 values of 1 KB are about 1 MiB of data; the heap holds them, the
	// tree, the memlog and the test binary's own.
	if ms.HeapAlloc > 128<<20 {
		t.Fatalf("heap %d MiB after the run", ms.HeapAlloc>>20)
	}
	db.View(ctx, func(tx *Txn) error {
		for w := range 64 {
			for i := range 15 {
				if _, err := tx.Get(fmt.Appendf(nil, "w%02d-%03d", w, i)); err != nil {
					t.Fatalf("w%02d-%03d: %v", w, i, err)
				}
			}
		}
		return nil
	})
}

// TestHoleDelaysConfirmation: a hole between an intention and its
// afterimage keeps the afterimage unconfirmed until the hole is resolved.
func TestHoleDelaysConfirmation(t *testing.T) {
	gate := memlog.NewGate()
	var holdNext atomic.Bool
	l := memlog.New(&memlog.Options{Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && holdNext.CompareAndSwap(true, false) {
			return memlog.Fault{Hold: gate}
		}
		return memlog.Fault{}
	}})
	db, err := Open("", &Options{Log: l, HoleTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	put(t, db, "a", "1")
	db.Flush(ctx)
	// A stranger takes the next position and stalls: a hole.
	holdNext.Store(true)
	stranger := entry.AppendIntention(nil, &intention.Intention{Snapshot: 1, Ops: []intention.Op{{Kind: intention.OpPut, Key: []byte("s"), Value: []byte("x")}}})
	go l.Append(ctx, stranger)
	<-gate.Held()
	tail, _ := l.Tail(ctx)
	hole := uint64(tail) - 1
	// Our commit lands after the hole; it cannot be decided until the hole
	// resolves, and neither can its afterimage be confirmed.
	done := make(chan error, 1)
	go func() {
		done <- db.Update(ctx, func(tx *Txn) error { return tx.Put([]byte("b"), []byte("2")) })
	}()
	// Once our intention is in the log, replay could decide it but for the hole.
	testutil.Eventually(t, testutil.WaitLong, func() bool { return db.Stats().IntentionsAppended == 2 })
	if st := db.Stats(); uint64(st.Position) >= hole {
		t.Fatalf("replay passed the hole at %d: at %d", hole, st.Position)
	}
	select {
	case err := <-done:
		t.Fatalf("commit decided across a hole: %v", err)
	default:
	}
	gate.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, db, "b"); v != "2" {
		t.Fatal("b missing")
	}
	if v, _ := get(t, db, "s"); v != "x" {
		t.Fatal("the late intention was not applied")
	}
}

// TestIntentionPointersResolveAfterRestart: afterimages written with
// intention pointers are read back by a restarted node whose index is empty
// and whose cache keeps nothing, so every pointer resolves from the log.
func TestIntentionPointersResolveAfterRestart(t *testing.T) {
	l := memlog.New(&memlog.Options{AppendLatency: time.Millisecond})
	// No automatic checkpoint: one would relocate the tree, and the reads
	// below would follow image pointers instead of intention pointers.
	db, err := Open("", &Options{Log: l, FlushWorkers: 64, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				put(t, db, fmt.Sprintf("w%02d-%02d", w, i), fmt.Sprintf("v%d", i))
			}
		}()
	}
	wg.Wait()
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	written := db.Stats()
	db.Close()
	if written.PointersIntention == 0 {
		t.Fatalf("no intention pointers written: %+v", written)
	}
	db2, err := Open("", &Options{Log: l, CacheBytes: 1, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if db2.SafePoint().Intention == 0 {
		t.Fatal("no safe point")
	}
	for round := range 2 {
		err = db2.View(ctx, func(tx *Txn) error {
			for w := range 16 {
				for i := range 25 {
					v, err := tx.Get(fmt.Appendf(nil, "w%02d-%02d", w, i))
					if err != nil || string(v) != fmt.Sprintf("v%d", i) {
						return fmt.Errorf("w%02d-%02d = %q, %v", w, i, v, err)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		put(t, db2, "tick", fmt.Sprint(round)) // lets the clock evict
	}
	st := db2.Stats()
	if st.ForwardScans == 0 || st.CacheMisses == 0 {
		t.Fatalf("reads did not resolve intention pointers from the log: %+v", st)
	}
	t.Logf("intention pointers written %d; after restart: %d loads, %d forward scans", written.PointersIntention, st.CacheMisses, st.ForwardScans)
}

// TestCleanCloseSeals: after a clean Close under parallel flushing, a
// restart resumes from the newest commit and replays nothing.
func TestCleanCloseSeals(t *testing.T) {
	l := memlog.New(&memlog.Options{AppendLatency: 200 * time.Microsecond})
	// Without automatic checkpoints: a checkpoint's cut after the last commit
	// would rightly be the newer resume point; this test is about the seal.
	db, err := Open("", &Options{Log: l, FlushWorkers: 32, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var last atomic.Uint64
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				db.Update(context.Background(), func(tx *Txn) error {
					return tx.Put(fmt.Appendf(nil, "w%d-%d", w, i), []byte("v"))
				})
			}
		}()
	}
	wg.Wait()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The newest intention, found from the log's tail: Stats().Position
	// may lag the last Update's return (a decision is delivered before
	// the position counts as applied), and Close appends no intention.
	tail, err := l.Tail(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for p := uint64(tail) - 1; p > 0; p-- {
		data, _ := l.Read(context.Background(), log.Position(p))
		if typ, _, _ := entry.Decode(p, data); typ == entry.TypeIntention {
			last.Store(p)
			break
		}
	}
	db2, err := Open("", &Options{Log: l})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if sp := db2.SafePoint(); sp.Intention != last.Load() {
		t.Fatalf("restart resumed from %d, the newest commit is %d", sp.Intention, last.Load())
	}
}

// TestReadsAloneStayWithinCache: a read-only workload that loads evicted
// nodes keeps the cache near its budget although no delta is made.
func TestReadsAloneStayWithinCache(t *testing.T) {
	l := memlog.New(nil)
	db, err := Open("", &Options{Log: l})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 20000; i += 500 {
		db.Update(ctx, func(tx *Txn) error {
			for j := i; j < i+500; j++ {
				tx.Put(fmt.Appendf(nil, "k%06d", j), []byte("value"))
			}
			return nil
		})
	}
	db.Close()
	const budget = 128 << 10
	db, err = Open("", &Options{Log: l, CacheBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for round := range 3 {
		db.View(ctx, func(tx *Txn) error {
			for i := range 20000 {
				if _, err := tx.Get(fmt.Appendf(nil, "k%06d", i)); err != nil {
					t.Fatalf("round %d k%06d: %v", round, i, err)
				}
			}
			return nil
		})
	}
	// The trimmer runs every few milliseconds, however busy the machine.
	var st Stats
	if !testutil.Poll(testutil.WaitLong, func() bool {
		st = db.Stats()
		return st.CachedBytes <= 2*budget
	}) || st.Evictions == 0 {
		t.Fatalf("read-only load: cached %d bytes (budget %d), %d evictions", st.CachedBytes, budget, st.Evictions)
	}
}

// TestFlushAfterCommitIncludesIt: a commit's delta reaches the flusher
// before its committer returns, so a Flush called right after the commit
// waits for that delta too, however late replay's bookkeeping is (the
// delta hook holds the processor between deciding and handing over).
func TestFlushAfterCommitIncludesIt(t *testing.T) {
	o := &Options{Log: memlog.New(&memlog.Options{AppendLatency: 100 * time.Microsecond})}
	o.deltaHook = func(*processor.Delta) { time.Sleep(20 * time.Millisecond) } // late bookkeeping: the subject
	db, err := Open("", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for i := range 5 {
		tx, err := db.Begin(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if st := db.Stats(); st.FlushedThrough < tx.Position() {
			t.Fatalf("Flush returned with the flush watermark at %d, below the commit at %d", st.FlushedThrough, tx.Position())
		}
	}
}

// TestAfterimagesRideWithIntentions: on the embedded log, one client's
// commits carry the previous deltas' afterimages in their group commit
// (Stats.Piggybacked), and the database reads back whole after a reopen.
// An afterimage waits only briefly for the next intention, so the log runs
// without fsync (a slow disk would make every wait expire) and the client
// commits until one has ridden, not a fixed number of times.
func TestAfterimagesRideWithIntentions(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const least, most = 300, 20000
	n := 0
	for ; n < least || (n < most && db.Stats().Piggybacked == 0); n++ {
		if err := db.Update(ctx, func(tx *Txn) error {
			return tx.Put(fmt.Appendf(nil, "k%05d", n), fmt.Appendf(nil, "v%d", n))
		}); err != nil {
			t.Fatal(err)
		}
	}
	st := db.Stats()
	if st.Piggybacked == 0 {
		t.Fatalf("no afterimage rode with an intention in %d sequential commits (%+v)", n, st)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d afterimages rode with an intention", st.Piggybacked, st.AfterimagesWritten)
	db, err = Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(ctx, func(tx *Txn) error {
		for i := range n {
			v, err := tx.Get(fmt.Appendf(nil, "k%05d", i))
			if err != nil || string(v) != fmt.Sprintf("v%d", i) {
				return fmt.Errorf("k%05d = %q, %v", i, v, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestSmallCacheUnderConcurrentWrites: writers of large transactions over a
// database many times the cache keep the clean nodes in memory near the
// budget while the flusher's trimmer runs beside replay, and every write
// reads back. (The race between the trimmer and a delta that once left
// nodes uncounted for good is replayed deterministically by the flusher's
// TestEvictionRacingADelta; at this size it does not stall anything.)
func TestSmallCacheUnderConcurrentWrites(t *testing.T) {
	const (
		budget  = 512 << 10
		writers = 8
		txns    = 25 // per writer
		puts    = 64 // per transaction
		keys    = 20000
	)
	db, err := Open("", &Options{Log: memlog.New(nil), CacheBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	// Sampled as each commit returns, its nodes in the cache by then or
	// soon after (the next commit's sample sees them), and at the end.
	var maxCached atomic.Int64
	// Writer w owns the keys congruent to w: its last write of each is what
	// must read back.
	want := make([]map[string]string, writers)
	var wg sync.WaitGroup
	for w := range writers {
		want[w] = map[string]string{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 11))
			for i := range txns {
				batch := map[string]string{}
				err := db.Update(ctx, func(tx *Txn) error {
					clear(batch)
					for range puts {
						k := fmt.Sprintf("k%06d", r.IntN(keys/writers)*writers+w)
						v := fmt.Sprintf("%d/%d/%s", w, i, k)
						if err := tx.Put([]byte(k), []byte(v)); err != nil {
							return err
						}
						batch[k] = v
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				raiseTo(&maxCached, db.Stats().CachedBytes)
				maps.Copy(want[w], batch)
			}
		}()
	}
	wg.Wait()
	raiseTo(&maxCached, db.Stats().CachedBytes)
	st := db.Stats()
	t.Logf("highest cached %d bytes (budget %d); %d evictions, %d loads", maxCached.Load(), budget, st.Evictions, st.CacheMisses)
	if st.Evictions == 0 || maxCached.Load() > 2*budget {
		t.Fatalf("cached up to %d bytes (budget %d), %d evictions", maxCached.Load(), budget, st.Evictions)
	}
	if err := db.View(ctx, func(tx *Txn) error {
		for _, m := range want {
			for k, v := range m {
				got, err := tx.Get([]byte(k))
				if err != nil || string(got) != v {
					return fmt.Errorf("%s = %q, %v; want %q", k, got, err, v)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// raiseTo raises m to v if v is higher.
func raiseTo(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}
