package cruzdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

// deltaRecorder keeps, per position, a digest of every delta a node's
// processor made: its nodes' keys, values, positions and shapes. Two nodes
// that replayed one log must agree on every position both replayed.
type deltaRecorder struct {
	mu sync.Mutex
	m  map[uint64]string
}

func (d *deltaRecorder) hook(delta *processor.Delta) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "ck=%v n=%d;", delta.Checkpoint, len(delta.Nodes))
	for _, n := range delta.Nodes {
		fmt.Fprintf(&b, "%q=%q@%d t%v h%d max%d mt%d|", n.Key(), n.Value(), n.Pos(), n.Tombstone(), n.Height(), n.MaxPos(), n.MinTomb())
	}
	d.mu.Lock()
	d.m[delta.Pos] = b.String()
	d.mu.Unlock()
}

func (d *deltaRecorder) snapshot() map[uint64]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := make(map[uint64]string, len(d.m))
	for k, v := range d.m {
		c[k] = v
	}
	return c
}

// compareDeltas fails if two nodes made different deltas (or one made a
// delta and the other decided an abort) at a position both replayed.
func compareDeltas(t *testing.T, what string, a, b map[uint64]string, from uint64) int {
	t.Helper()
	common := 0
	keys := make([]uint64, 0, len(a))
	for p := range a {
		keys = append(keys, p)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, p := range keys {
		if p <= from {
			continue
		}
		bv, ok := b[p]
		if !ok {
			continue
		}
		if a[p] != bv {
			t.Fatalf("%s: the deltas at %d differ:\n%.400s\n%.400s", what, p, a[p], bv)
		}
		common++
	}
	return common
}

// TestReviewTwoNodesDecideAlike: two nodes on one memlog commit
// read-modify-write transactions (so decisions include conflicts) while
// both ask for checkpoints, every node writing every afterimage
// (duplicates). A third node opened later on the trimmed log, and two
// recoveries of a crash clone, make the same deltas as the first two at
// every position they all replayed, and reach the same state.
func TestReviewTwoNodesDecideAlike(t *testing.T) {
	seed := testutil.Seed(t, uint64(time.Now().UnixNano()))
	l := memlog.New(&memlog.Options{Seed: seed})
	ctx := context.Background()
	var recs []*deltaRecorder
	open := func(lg *memlog.Log, serial bool) *DB {
		rec := &deltaRecorder{m: map[uint64]string{}}
		recs = append(recs, rec)
		o := &Options{Log: lg, CacheBytes: 4 << 10, CheckpointLogRatio: -1, CheckpointSerial: serial,
			FlushPolicy: flusher.PolicyAll, deltaHook: rec.hook}
		db, err := Open("", o)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	a, b := open(l, false), open(l, true)
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for w, db := range []*DB{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range 60 {
				tx, err := db.Begin(ctx, true)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				for range 1 + r.IntN(3) {
					k := fmt.Appendf(nil, "k%02d", r.IntN(30))
					v, _ := tx.Get(k)
					if r.IntN(5) == 0 {
						tx.Delete(k)
					} else {
						tx.Put(k, fmt.Appendf(v[:len(v):len(v)], "+%d.%d", w, i))
					}
				}
				var ce *ConflictError
				if err := tx.Commit(); err != nil && !errors.As(err, &ce) && !errors.Is(err, ErrCommitUnknown) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				if i%15 == 7 {
					if _, err := db.Checkpoint(ctx); err != nil && !skippedCut(err) {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Fatal(err)
	}
	clone := l.CrashClone()
	for _, db := range []*DB{a, b} {
		if err := db.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c := open(l, false)
	defer c.Close()
	c1, c2 := open(clone.CrashClone(), true), open(clone.CrashClone(), false)
	defer c1.Close()
	defer c2.Close()
	want := dump(t, a)
	for i, db := range []*DB{b, c} {
		if got := dump(t, db); got != want {
			t.Fatalf("node %d differs from node A", i+1)
		}
	}
	if dump(t, c1) != dump(t, c2) {
		t.Fatal("two recoveries of one crash clone differ")
	}
	if c1.SafePoint() != c2.SafePoint() {
		t.Fatalf("two recoveries resumed at %+v and %+v", c1.SafePoint(), c2.SafePoint())
	}
	ra := recs[0].snapshot()
	common := 0
	for i, r := range recs[1:] {
		common += compareDeltas(t, fmt.Sprintf("node A and node %d", i+1), ra, r.snapshot(), 0)
	}
	common += compareDeltas(t, "the two recoveries", recs[3].snapshot(), recs[4].snapshot(), 0)
	st := a.Stats()
	t.Logf("positions compared %d; node A %s, aborts %d", common, summary(st), st.Aborts)
	if st.Checkpoints == 0 || common == 0 {
		t.Fatal("nothing compared")
	}
}
