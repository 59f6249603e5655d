package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestModelRandom runs random transactions — gets, puts, deletes, range
// scans; several open at once, begun and committed interleaved — against a
// map model that keeps a snapshot per committed position. Every read must
// equal the model at the transaction's snapshot, and every commit decision
// must equal the rule applied to the model's history. Replay a failure with
// CRUZDB_SEED=<seed>.
func TestModelRandom(t *testing.T) {
	seed := testutil.Seed(t, uint64(rand.Int64()))
	r := rand.New(rand.NewPCG(seed, 11))
	for _, cfg := range []Options{{}, {FlushSerial: true, CacheBytes: 8 << 10}, {CacheBytes: 4 << 10}} {
		cfg.Log = memlog.New(nil)
		db, err := Open("", &cfg)
		if err != nil {
			t.Fatal(err)
		}
		runModel(t, db, r)
		db.Close()
	}
	// The embedded log, with its intentions applied while they are synced
	// (early.go) and after.
	for _, cfg := range []Options{{CacheBytes: 8 << 10}, {ApplyAfterSync: true}} {
		db, err := Open(t.TempDir(), &cfg)
		if err != nil {
			t.Fatal(err)
		}
		if db.early() == cfg.ApplyAfterSync {
			t.Fatalf("early application %v with ApplyAfterSync %v", db.early(), cfg.ApplyAfterSync)
		}
		runModel(t, db, r)
		db.Close()
	}
}

type modelTxn struct {
	tx     *Txn
	snap   uint64
	reads  []string
	ranges [][2]string // "" hi = unbounded
	writes map[string]*string
}

func runModel(t *testing.T, db *DB, r *rand.Rand) {
	ctx := context.Background()
	// states[p] is the model after position p; lastWrite tracks, per key,
	// the positions of committed writes.
	states := map[uint64]map[string]string{0: {}}
	var committed []uint64
	writes := map[uint64][]string{} // position -> keys written
	stateAt := func(p uint64) map[string]string {
		var best uint64
		for _, c := range committed {
			if c <= p {
				best = c
			}
		}
		return states[best]
	}
	key := func() string { return fmt.Sprintf("k%02d", r.IntN(40)) }
	var open []*modelTxn
	for step := 0; step < 2000; step++ {
		switch {
		case len(open) < 4 && r.IntN(3) == 0:
			tx, err := db.Begin(ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			open = append(open, &modelTxn{tx: tx, snap: uint64(tx.Snapshot()), writes: map[string]*string{}})
		case len(open) > 0:
			i := r.IntN(len(open))
			m := open[i]
			model := stateAt(m.snap)
			switch op := r.IntN(10); {
			case op < 3:
				k := key()
				got, err := m.tx.Get([]byte(k))
				want, ok := model[k]
				if w, mine := m.writes[k]; mine {
					want, ok = "", w != nil
					if w != nil {
						want = *w
					}
				} else {
					m.reads = append(m.reads, k)
				}
				if ok != (err == nil) || (ok && string(got) != want) {
					t.Fatalf("get %s at snapshot %d: %q %v, model %q %v", k, m.snap, got, err, want, ok)
				}
			case op < 5:
				k, v := key(), strconv.Itoa(r.IntN(1000))
				m.tx.Put([]byte(k), []byte(v))
				m.writes[k] = &v
			case op < 6:
				k := key()
				m.tx.Delete([]byte(k))
				m.writes[k] = nil
			case op < 8:
				lo := key()
				hi := ""
				if r.IntN(3) > 0 {
					hi = key()
				}
				var hib []byte
				if hi != "" {
					hib = []byte(hi)
				}
				// Half the scans run in reverse; some stop early, and
				// then only the part iterated joins the read set.
				reverse := r.IntN(2) == 0
				limit := -1
				if r.IntN(3) == 0 {
					limit = r.IntN(4)
				}
				scan := m.tx.Range
				if reverse {
					scan = m.tx.RangeReverse
				}
				var got []string
				var last string
				stoppedEarly := false
				for k, v := range scan([]byte(lo), hib) {
					last = string(k) // the scan observed it, even if we stop here
					if len(got) == limit {
						stoppedEarly = true
						break
					}
					got = append(got, string(k)+"="+string(v))
				}
				var want []string
				merged := map[string]string{}
				for k, v := range model {
					merged[k] = v
				}
				for k, w := range m.writes {
					if w == nil {
						delete(merged, k)
					} else {
						merged[k] = *w
					}
				}
				for k, v := range merged {
					if k >= lo && (hi == "" || k < hi) {
						want = append(want, k+"="+v)
					}
				}
				slices.Sort(want)
				if reverse {
					slices.Reverse(want)
				}
				if stoppedEarly {
					want = want[:limit]
				}
				if !slices.Equal(got, want) {
					t.Fatalf("range [%s,%s) reverse=%v limit=%d at %d: %v, model %v", lo, hi, reverse, limit, m.snap, got, want)
				}
				switch {
				case !stoppedEarly:
					m.ranges = append(m.ranges, [2]string{lo, hi})
				case reverse:
					m.ranges = append(m.ranges, [2]string{last, hi})
				default:
					m.ranges = append(m.ranges, [2]string{lo, last + "\x00"})
				}
			default:
				open = slices.Delete(open, i, i+1)
				err := m.tx.Commit()
				if len(m.writes) == 0 {
					if err != nil {
						t.Fatalf("read-only commit: %v", err)
					}
					continue
				}
				var ce *ConflictError
				if err != nil && !errors.As(err, &ce) {
					t.Fatal(err)
				}
				pos := uint64(m.tx.Position())
				if ce != nil && ce.Pos != pos {
					t.Fatalf("conflict names position %d, the intention is at %d", ce.Pos, pos)
				}
				conflict := false
				for _, q := range committed {
					if q <= m.snap || q >= pos {
						continue
					}
					for _, k := range writes[q] {
						if slices.Contains(m.reads, k) {
							conflict = true
						}
						for _, rg := range m.ranges {
							if k >= rg[0] && (rg[1] == "" || k < rg[1]) {
								conflict = true
							}
						}
					}
				}
				if conflict != (err != nil) {
					t.Fatalf("commit at %d (snapshot %d): db says %v, model says conflict=%v", pos, m.snap, err, conflict)
				}
				if err == nil {
					next := map[string]string{}
					for k, v := range states[committed0(committed)] {
						next[k] = v
					}
					for k, w := range m.writes {
						writes[pos] = append(writes[pos], k)
						if w == nil {
							delete(next, k)
						} else {
							next[k] = *w
						}
					}
					states[pos] = next
					committed = append(committed, pos)
				}
			}
		}
	}
	for _, m := range open {
		m.tx.Rollback()
	}
	// The final state equals the model's.
	final := states[committed0(committed)]
	var want []string
	for k, v := range final {
		want = append(want, k+"="+v)
	}
	slices.Sort(want)
	got := []string{}
	err := db.View(ctx, func(tx *Txn) error {
		got = got[:0] // View runs fn again after a peer's trim
		for k, v := range tx.Range(nil, nil) {
			got = append(got, string(k)+"="+string(v))
		}
		return tx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("final state differs: %v vs %v", got, want)
	}
	if len(committed) < 20 {
		t.Fatalf("only %d commits: the test exercised little", len(committed))
	}
}

func committed0(c []uint64) uint64 {
	if len(c) == 0 {
		return 0
	}
	return c[len(c)-1]
}
