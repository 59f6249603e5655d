package cruzdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 20*time.Second, cond)
}

// TestBankWithCheckpoints is seeds/001's bank: transfers from several
// goroutines while checkpoints run every few milliseconds; every snapshot
// sees the total; the DB is reopened after each of several checkpoints.
func TestBankWithCheckpoints(t *testing.T) {
	l := memlog.New(nil)
	ctx := context.Background()
	open := func() *DB {
		db, err := Open("", &Options{Log: l, CacheBytes: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	bankSeed(ctx, db)
	var anomalies, reads, checkpoints int
	var mu sync.Mutex
	for phase := range 4 {
		stopReaders := bankReaders(ctx, db, func(r int, tx *Txn, s int, err error) {
			mu.Lock()
			defer mu.Unlock()
			reads++
			if err != nil || s != bankAccounts*bankInitial {
				anomalies++
				t.Errorf("phase %d reader %d: total %d at snapshot %d: %v", phase, r, s, tx.Snapshot(), err)
			}
		})
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() { // checkpoints, paced (not waited on) by a ticker, two at least a phase whatever the clock
			defer wg.Done()
			tick := time.NewTicker(3 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				if n >= 2 {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
				if _, err := db.Checkpoint(ctx); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				checkpoints++
				mu.Unlock()
			}
		}()
		bankTransfers(t, ctx, db, 6, func(w int) *rand.Rand { return rand.New(rand.NewPCG(uint64(w), uint64(phase))) })
		close(stop)
		wg.Wait()
		stopReaders()
		info, err := db.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = open()
		if sp := db.SafePoint(); sp.Intention < uint64(info.Position) {
			t.Fatalf("phase %d: reopened at %d, below the checkpoint at %d", phase, sp.Intention, info.Position)
		}
		db.View(ctx, func(tx *Txn) error {
			if s, err := bankTotal(tx); err != nil || s != bankAccounts*bankInitial {
				t.Fatalf("phase %d: after reopen: total %d, %v", phase, s, err)
			}
			return nil
		})
	}
	db.Close()
	t.Logf("%d reads, %d checkpoints, %d anomalies", reads, checkpoints, anomalies)
	if anomalies != 0 || checkpoints < 8 {
		t.Fatalf("%d anomalies, %d checkpoints", anomalies, checkpoints)
	}
}

// TestCheckpointEquivalence: one seeded workload ends in the same state
// with automatic checkpoints off, on by default, and with explicit
// checkpoints pipelined or sequential (CheckpointSerial).
func TestCheckpointEquivalence(t *testing.T) {
	configs := []struct {
		name     string
		opts     Options
		explicit bool
	}{
		{"auto-off", Options{CheckpointLogRatio: -1}, false},
		{"auto-default", Options{}, false},
		{"auto-eager", Options{CheckpointMinLogBytes: 16 << 10, CheckpointLogRatio: 0.5}, false},
		{"explicit-pipelined", Options{CheckpointLogRatio: -1}, true},
		{"explicit-serial", Options{CheckpointLogRatio: -1, CheckpointSerial: true}, true},
	}
	var want string
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			o := c.opts
			o.Log = memlog.New(nil)
			db, err := Open("", &o)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for i := range 6 {
				workload(t, db, uint64(40+i), 60)
				if c.explicit {
					if _, err := db.Checkpoint(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
			}
			got := dump(t, db)
			st := db.Stats()
			if c.explicit && st.Checkpoints < 6 || c.name == "auto-eager" && st.AutoCheckpoints == 0 {
				t.Fatalf("checkpoints did not run: %+v", st)
			}
			if want == "" {
				want = got
			} else if got != want {
				t.Fatalf("state differs from the first configuration")
			}
		})
	}
}

// TestTwoNodesWriteIdenticalImages: both nodes of one log make the same
// checkpoint delta, and the chunk entries each would write are the bytes in
// the log.
func TestTwoNodesWriteIdenticalImages(t *testing.T) {
	l := memlog.New(nil)
	var mu sync.Mutex
	chunks := [2]map[uint64][][]byte{{}, {}}
	open := func(i int) *DB {
		o := &Options{Log: l, CheckpointLogRatio: -1, FlushPolicy: flusher.PolicyAll}
		o.deltaHook = func(d *processor.Delta) {
			if !d.Checkpoint {
				return
			}
			var cs [][]byte
			err := flusher.WriteImage(d, func(c []byte, _ uint64) error {
				cs = append(cs, bytes.Clone(c))
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			chunks[i][d.Pos] = cs
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
	ctx := context.Background()
	// An open snapshot on each node holds its trims back, so that neither
	// falls behind the other's trim and skips a cut (re-bootstrapping).
	for _, db := range []*DB{a, b} {
		tx, err := db.Begin(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
	}
	var wg sync.WaitGroup
	for i, db := range []*DB{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); workload(t, db, uint64(i+7), 120) }()
	}
	wg.Wait()
	info, err := a.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	workload(t, b, 99, 30)
	if _, err := b.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	a.Sync(ctx)
	b.Sync(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(chunks[0]) < 2 || len(chunks[0]) != len(chunks[1]) {
		t.Fatalf("checkpoint deltas: %d and %d", len(chunks[0]), len(chunks[1]))
	}
	for cut, cs := range chunks[0] {
		other := chunks[1][cut]
		if len(cs) != len(other) {
			t.Fatalf("cut %d: %d chunks and %d", cut, len(cs), len(other))
		}
		for i := range cs {
			if !bytes.Equal(cs[i], other[i]) {
				t.Fatalf("cut %d: chunk %d differs between nodes", cut, i)
			}
		}
	}
	// The chunks in the log (from whichever node wrote them) are those bytes.
	tail, _ := l.Tail(ctx)
	found := 0
	for p := info.Position; p < tail; p++ {
		data, err := l.Read(ctx, p)
		if err != nil || !isCheckpointKind(data, entry.CheckpointChunk) {
			continue
		}
		_, payload, _ := entry.Decode(uint64(p), data)
		first, ai, _ := entry.DecodeChunk(payload)
		_ = ai
		match := false
		for _, cs := range chunks[0] {
			for _, c := range cs {
				match = match || bytes.Equal(c, data)
			}
		}
		if !match {
			t.Fatalf("chunk at %d (first node %d) matches no node's image", p, first)
		}
		found++
	}
	if found == 0 {
		t.Fatal("no chunk in the log")
	}
	if da, db := dump(t, a), dump(t, b); da != db {
		t.Fatal("nodes differ")
	}
}

// heldLog holds every Read while held is set: a node whose replay is stuck.
type heldLog struct {
	log.Log
	mu   sync.Mutex
	gate chan struct{} // nil when not held
}

func (h *heldLog) hold() {
	h.mu.Lock()
	h.gate = make(chan struct{})
	h.mu.Unlock()
}

func (h *heldLog) release() {
	h.mu.Lock()
	close(h.gate)
	h.gate = nil
	h.mu.Unlock()
}

func (h *heldLog) Read(ctx context.Context, p log.Position) ([]byte, error) {
	h.mu.Lock()
	g := h.gate
	h.mu.Unlock()
	if g != nil {
		select {
		case <-g:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return h.Log.Read(ctx, p)
}

// TestNodeBehindTrimCatchesUp: node B's reads are held while node A writes,
// checkpoints and trims past B's position; released, B re-bootstraps from
// the newest checkpoint and converges with A.
func TestNodeBehindTrimCatchesUp(t *testing.T) {
	l := memlog.New(nil)
	ctx := context.Background()
	a, err := Open("", &Options{Log: l, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	workload(t, a, 1, 50)
	hl := &heldLog{Log: l}
	b, err := Open("", &Options{Log: hl, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hl.hold()
	workload(t, a, 2, 100)
	info, err := a.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	workload(t, a, 3, 50)
	if _, err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if info.TrimmedBelow == 0 || uint64(b.Stats().Position) >= uint64(info.Position) {
		t.Fatalf("B at %d is not behind the trim (%+v)", b.Stats().Position, info)
	}
	hl.release()
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Rebootstraps == 0 {
		t.Fatalf("B did not re-bootstrap: %+v", st)
	}
	if da, db := dump(t, a), dump(t, b); da != db {
		t.Fatal("B did not converge with A")
	}
	// B goes on replaying and committing.
	workload(t, b, 4, 20)
	a.Sync(ctx)
	if da, db := dump(t, a), dump(t, b); da != db {
		t.Fatal("nodes differ after B's commits")
	}
}

// TestOldSnapshotAfterTrim: a snapshot of this DB holds the trim back; on
// another node, whose snapshot does not, a read that needs a trimmed node
// fails with an error wrapping log.ErrTrimmed, and never returns wrong
// data.
func TestOldSnapshotAfterTrim(t *testing.T) {
	l := memlog.New(nil)
	ctx := context.Background()
	a, err := Open("", &Options{Log: l, CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const keys = 3000
	putBatches(t, a, keys, 100, func(j int) ([]byte, []byte) {
		return fmt.Appendf(nil, "k%05d", j), fmt.Appendf(nil, "old%d", j)
	})
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Local: an open transaction holds the trim back until it closes.
	old, err := a.Begin(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	a.Update(ctx, func(tx *Txn) error { return tx.Put([]byte("k00000"), []byte("new")) })
	info, err := a.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.TrimmedBelow >= info.Position {
		t.Fatalf("trimmed below %d with a snapshot at %d open", info.TrimmedBelow, old.Snapshot())
	}
	if v, err := old.Get([]byte("k00000")); err != nil || string(v) != "old0" {
		t.Fatalf("old snapshot: %q %v", v, err)
	}
	old.Rollback()
	waitFor(t, "the trim once the snapshot closed", func() bool { return a.Stats().TrimmedBelow == info.Position })

	// Remote: node B, with a tiny cache, keeps a snapshot while A rewrites
	// everything, checkpoints and trims.
	// B's replay is held meanwhile, so that nothing it reads before the
	// trim (replay reads, or the entries the pager keeps) serves the
	// snapshot afterwards.
	hl := &heldLog{Log: l}
	b, err := Open("", &Options{Log: hl, CheckpointLogRatio: -1, CacheBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	snap, err := b.Begin(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Rollback()
	hl.hold()
	// B's snapshot loads its nodes lazily: those A's few writes do not
	// touch stay in the log only, below the trim to come.
	a.Update(ctx, func(tx *Txn) error {
		for j := range 10 {
			tx.Put(fmt.Appendf(nil, "k%05d", j*300), []byte("newer"))
		}
		return nil
	})
	if _, err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	hl.release()
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	trimmed, good := 0, 0
	for j := range keys {
		k := fmt.Appendf(nil, "k%05d", j)
		v, err := snap.Get(k)
		switch {
		case err == nil:
			want := fmt.Sprintf("old%d", j)
			if j == 0 {
				want = "new"
			}
			if string(v) != want {
				t.Fatalf("%s = %q through the old snapshot, want %q", k, v, want)
			}
			good++
		case errors.Is(err, log.ErrTrimmed):
			trimmed++
		default:
			t.Fatalf("%s: %v", k, err)
		}
	}
	t.Logf("old snapshot after the trim: %d reads served from memory, %d trimmed", good, trimmed)
	if trimmed == 0 {
		t.Fatal("no read met the trim")
	}
}
