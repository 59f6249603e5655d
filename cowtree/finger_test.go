package cowtree

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFingerMatchesRoot checks that writes starting at the last write's
// path (Delta.path: a key above the last one starts at the deepest node
// of that path whose subtree holds it) make the same deltas as writes
// that all start at the root: node for node (every stored field, in
// Finish's order), the same nodes replaced, the same tree. Intentions of
// sorted runs (inserts and overwrites, with rotations), unsorted and
// repeated keys, deletes and dropped tombstones, on trees cut by
// checkpoints and with nodes evicted and loaded back.
func TestFingerMatchesRoot(t *testing.T) {
	fingered := 0
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 22))
		ld := &memLoader{nodes: map[Addr]*Node{}, pending: map[uint64]Tree{}, complete: map[uint64]bool{}}
		tr := New(ld)
		for pos := uint64(1); pos <= 40; pos++ {
			if pos%13 == 0 {
				ct, err := tr.Cut(pos)
				if err != nil {
					t.Fatal(err)
				}
				ld.pending[pos] = ct
				tr = ct
				continue
			}
			type op struct {
				key, val []byte
				del      bool
			}
			var ops []op
			keys := map[int]bool{}
			for n := 1 + r.IntN(150); len(keys) < n; {
				keys[r.IntN(2000)] = true
			}
			ks := slices.Sorted(func(yield func(int) bool) {
				for k := range keys {
					if !yield(k) {
						return
					}
				}
			})
			switch r.IntN(6) {
			case 0:
				r.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
			case 1:
				ks = append(ks, ks[:len(ks)/2]...) // a second run, repeating keys
			}
			for _, k := range ks {
				ops = append(ops, op{key: fmt.Appendf(nil, "key:%06d", k), val: fmt.Appendf(nil, "v%d", pos), del: r.IntN(8) == 0})
			}
			drop := pos > 20 && r.IntN(3) == 0
			var got [2][]string
			var trees [2]Tree
			var nodes [2][]*Node
			for v, noFinger := range []bool{false, true} {
				d := tr.BeginScratch(pos, len(ops), nil)
				d.noFinger = noFinger
				for _, o := range ops {
					var err error
					if o.del {
						err = d.Delete(o.key)
					} else {
						err = d.Put(o.key, o.val)
					}
					if err != nil {
						t.Fatal(err)
					}
					if !noFinger && len(d.path) > 1 {
						fingered++
					}
				}
				if drop {
					if err := d.DropTombstones(pos - 15); err != nil {
						t.Fatal(err)
					}
				}
				nt, ns, err := d.Finish()
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range ns {
					iv, ok := n.ImageValue()
					got[v] = append(got[v], fmt.Sprintf("%s iv=%d/%t", stored(n), iv, ok))
				}
				got[v] = append(got[v], fmt.Sprintf("replaced %d", len(d.Replaced())))
				for _, n := range d.Replaced() {
					got[v] = append(got[v], stored(n))
				}
				trees[v], nodes[v] = nt, ns
			}
			if !slices.Equal(got[0], got[1]) {
				for i := range min(len(got[0]), len(got[1])) {
					if got[0][i] != got[1][i] {
						t.Fatalf("seed %d position %d: entry %d of %d/%d differs:\n finger %s\n root   %s", seed, pos, i, len(got[0]), len(got[1]), got[0][i], got[1][i])
					}
				}
				t.Fatalf("seed %d position %d: %d entries with the finger, %d from the root", seed, pos, len(got[0]), len(got[1]))
			}
			if err := trees[0].Check(); err != nil {
				t.Fatalf("seed %d position %d: %v", seed, pos, err)
			}
			ld.add(nodes[0])
			tr = trees[0]
			if r.IntN(4) == 0 {
				evictSome(r, tr)
			}
		}
	}
	if fingered == 0 {
		t.Fatal("no write started below the root")
	}
}
