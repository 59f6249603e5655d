package cowtree

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// sameLookups checks LookupMany(keys) against Lookup of each key: the same
// node for every key when no Lookup fails, an error wrapping errTrimmed
// when one does. manyFirst runs LookupMany first (it then does the loads of
// evicted nodes, and Lookup finds the nodes it installed).
func sameLookups(t *testing.T, tr Tree, keys [][]byte, manyFirst bool) (found int, failed bool) {
	t.Helper()
	out := make([]*Node, len(keys)+1)
	sentinel := &Node{}
	out[len(keys)] = sentinel
	var manyErr error
	if manyFirst {
		manyErr = tr.LookupMany(keys, out[:len(keys)])
	}
	want := make([]*Node, len(keys))
	var oneErr error
	for i, k := range keys {
		n, err := tr.Lookup(k)
		if err != nil {
			oneErr = err
			continue
		}
		want[i] = n
	}
	if !manyFirst {
		manyErr = tr.LookupMany(keys, out[:len(keys)])
	}
	if out[len(keys)] != sentinel {
		t.Fatal("LookupMany wrote past len(keys)")
	}
	if oneErr != nil {
		// LookupMany walks the same paths: it meets an error too (perhaps
		// on another key's path, so compare the sentinel only).
		if manyErr == nil || !errors.Is(manyErr, errTrimmed) || !errors.Is(oneErr, errTrimmed) {
			t.Fatalf("Lookup failed with %v, LookupMany with %v", oneErr, manyErr)
		}
		return 0, true
	}
	if manyErr != nil {
		t.Fatalf("LookupMany: %v (Lookup of every key succeeded)", manyErr)
	}
	for i, k := range keys {
		if out[i] != want[i] {
			t.Fatalf("key %d %q: LookupMany %v, Lookup %v", i, k, out[i], want[i])
		}
		if out[i] != nil {
			if !bytes.Equal(out[i].Key(), k) {
				t.Fatalf("key %d %q: entry of %q", i, k, out[i].Key())
			}
			found++
		}
	}
	return found, false
}

// manyKeys draws n keys for a tree of keys made by key(): present and
// absent ones, duplicates, short and long (sharing a 16-byte prefix).
func manyKeys(r *rand.Rand, key func() []byte, n int) [][]byte {
	keys := make([][]byte, 0, n)
	for range n {
		switch x := r.IntN(10); {
		case x < 6 || len(keys) == 0:
			keys = append(keys, key())
		case x < 8:
			keys = append(keys, keys[r.IntN(len(keys))]) // a duplicate
		case x < 9:
			keys = append(keys, append(key(), 'x')) // absent, between keys
		default:
			keys = append(keys, []byte{byte(r.IntN(256))}) // absent, short
		}
	}
	return keys
}

// TestLookupManyMatchesLookup compares LookupMany with Lookup on random
// trees: written by many deltas with deletes (tombstones), with nodes
// evicted and reloaded, then cut, read while the cut's image is pending,
// and after the image took over and the log below it was trimmed; and a
// tree whose trimmed nodes cannot be loaded at all (errors).
func TestLookupManyMatchesLookup(t *testing.T) {
	var found, failed, calls int
	for seed := range uint64(24) {
		r := rand.New(rand.NewPCG(seed, 11))
		nkeys := 10 + r.IntN(400)
		long := r.IntN(2) == 0 // 20-byte keys sharing their first 16 bytes
		key := func() []byte {
			if long {
				return fmt.Appendf(nil, "namespace:00000:%04d", r.IntN(nkeys))
			}
			return fmt.Appendf(nil, "k%04d", r.IntN(nkeys))
		}
		ld := &memLoader{nodes: map[Addr]*Node{}, pending: map[uint64]Tree{}, complete: map[uint64]bool{}}
		tr := New(ld)
		pos := uint64(1)
		apply := func() {
			d := tr.Begin(pos)
			for range 1 + r.IntN(8) {
				var err error
				if r.IntN(4) == 0 {
					err = d.Delete(key())
				} else {
					err = d.Put(key(), fmt.Append(nil, r.Uint32()))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var nodes []*Node
			var err error
			tr, nodes, err = d.Finish()
			if err != nil {
				t.Fatal(err)
			}
			ld.add(nodes)
			pos++
		}
		compare := func(stage string) {
			t.Helper()
			for range 4 {
				evictSome(r, tr)
				keys := manyKeys(r, key, r.IntN(3*manyBlock+3))
				f, bad := sameLookups(t, tr, keys, r.IntN(2) == 0)
				if bad {
					t.Fatalf("seed %d %s: a lookup failed", seed, stage)
				}
				found += f
				calls++
			}
		}
		for range 1 + r.IntN(150) {
			apply()
		}
		compare("before the cut")
		cut := pos
		pos++
		image, _ := relocateCopy(t, tr, cut)
		ct, err := tr.Cut(cut)
		if err != nil {
			t.Fatal(err)
		}
		tr = ct
		ld.pending[cut] = ct
		for range r.IntN(20) {
			apply()
		}
		compare("image pending")
		// The image takes over: the log below the cut is trimmed.
		var imageNodes []*Node
		it := image.Ascend(nil).WithTombstones()
		for it.Next() {
			imageNodes = append(imageNodes, it.Node())
		}
		ld.add(imageNodes)
		delete(ld.pending, cut)
		ld.complete[cut] = true
		ld.trimBelow = cut
		compare("after the trim")
		for range r.IntN(20) {
			apply()
		}
		compare("deltas after the trim")

		// Lost nodes: the image is gone too. Lookups meeting an evicted
		// node fail; LookupMany must fail exactly when some Lookup does.
		ld.complete[cut] = false
		ld.trimBelow = pos
		for range 4 {
			evictSome(r, tr)
			keys := manyKeys(r, key, 1+r.IntN(2*manyBlock))
			if _, bad := sameLookups(t, tr, keys, r.IntN(2) == 0); bad {
				failed++
			}
		}
	}
	if found == 0 || failed == 0 || calls == 0 {
		t.Fatalf("%d keys found in %d calls, %d calls failed: the test exercised too little", found, calls, failed)
	}
	t.Logf("%d calls, %d keys found, %d failing calls", calls, found, failed)
}

func TestLookupManyEdges(t *testing.T) {
	tr, ld := evictTree(t)
	if err := tr.LookupMany(nil, nil); err != nil {
		t.Fatalf("no keys: %v", err)
	}
	keys := [][]byte{[]byte("k001"), []byte("k002")}
	if err := tr.LookupMany(keys, make([]*Node, 1)); !errors.Is(err, ErrShortOut) {
		t.Fatalf("short out: %v", err)
	}
	var empty Tree
	out := []*Node{{}, {}}
	if err := empty.LookupMany(keys, out); err != nil || out[0] != nil || out[1] != nil {
		t.Fatalf("empty tree: %v %v", out, err)
	}

	// 40 copies of one key, and every key of the tree after evicting all
	// but the root: each evicted node is loaded once.
	dup := make([][]byte, 40)
	for i := range dup {
		dup[i] = []byte("k064")
	}
	out = make([]*Node, len(dup))
	if err := tr.LookupMany(dup, out); err != nil {
		t.Fatal(err)
	}
	for i, n := range out {
		if n == nil || string(n.Key()) != "k064" || n != out[0] {
			t.Fatalf("duplicate %d: %v", i, n)
		}
	}
	root, _ := tr.RootNode()
	for _, c := range []*Node{root.left.Node(), root.right.Node()} {
		if ev, stale := tr.EvictSubtree(c, all, func(*Node) {}, always); !ev || stale {
			t.Fatal("eviction failed")
		}
	}
	ld.loads = 0
	all127 := make([][]byte, 127)
	for i := range all127 {
		all127[i] = fmt.Appendf(nil, "k%03d", 126-i)
	}
	out = make([]*Node, len(all127))
	if err := tr.LookupMany(all127, out); err != nil {
		t.Fatal(err)
	}
	for i, n := range out {
		if n == nil || !bytes.Equal(n.Key(), all127[i]) || string(n.Value()) != "v" {
			t.Fatalf("key %q: %v", all127[i], n)
		}
	}
	if ld.loads != 126 {
		t.Fatalf("%d loads for 126 evicted nodes", ld.loads)
	}
	check(t, tr)

	// Without a loader, an evicted node is an error naming the key.
	root, _ = tr.RootNode()
	tr.EvictSubtree(root.left.Node(), all, func(*Node) {}, always)
	noLoader := Tree{root: tr.root}
	err := noLoader.LookupMany([][]byte{[]byte("k100"), []byte("k010")}, make([]*Node, 2))
	if !errors.Is(err, ErrNotResident) {
		t.Fatalf("no loader: %v", err)
	}
	if want := "key 1"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}

// FuzzLookupMany compares LookupMany with Lookup for keys cut from the
// input at each ',' on a fixed tree (keys "k000".."k254", even numbers
// live, multiples of 3 deleted), part of it evicted.
func FuzzLookupMany(f *testing.F) {
	f.Add([]byte("k000,k001,k002,k002"))
	f.Add([]byte("k254,,k255,k1,k0000000000000000000,k003"))
	f.Add([]byte("k010,k020,k030,k040,k050,k060,k070,k080,k090,k100,k110,k120,k130,k140,k150,k160,k170,k180"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ld := &memLoader{nodes: map[Addr]*Node{}, pending: map[uint64]Tree{}, complete: map[uint64]bool{}}
		tr := New(ld)
		for pos := uint64(1); pos <= 3; pos++ {
			d := tr.Begin(pos)
			for i := range 255 {
				k := fmt.Appendf(nil, "k%03d", i)
				var err error
				switch {
				case pos == 1 && i%2 == 0:
					err = d.Put(k, k)
				case pos == 2 && i%3 == 0:
					err = d.Delete(k)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var nodes []*Node
			var err error
			if tr, nodes, err = d.Finish(); err != nil {
				t.Fatal(err)
			}
			ld.add(nodes)
		}
		evictSome(rand.New(rand.NewPCG(uint64(len(data)), 3)), tr)
		var keys [][]byte
		for k := range bytes.SplitSeq(data, []byte(",")) {
			if len(k) > 0 {
				keys = append(keys, k)
			}
		}
		sameLookups(t, tr, keys, len(data)%2 == 0)
	})
}

// metaTree is a tree of about 256K random 17-byte keys, cruzd's metadata
// keys of redis-benchmark's "key:%012d" ('k' + the name), written in deltas
// of 256 with 100-byte values, and the key of number i. The keys share
// their first 16 bytes in groups of 10: a comparison within a group is
// decided by the 17th byte.
func metaTree(b *testing.B, r *rand.Rand) (Tree, func(i int) []byte) {
	const size = 1 << 18
	key := func(i int) []byte { return fmt.Appendf(nil, "kkey:%012d", i) }
	var tr Tree
	val := make([]byte, 100)
	for pos := uint64(1); pos <= size/256; pos++ {
		d := tr.Begin(pos)
		for range 256 {
			if err := d.Put(key(r.IntN(size)), val); err != nil {
				b.Fatal(err)
			}
		}
		tr, _, _ = d.Finish()
	}
	return tr, key
}

// BenchmarkLookupMany looks up random keys of metaTree one at a time with
// Lookup, and 16 per call with LookupMany, on the tree as written and
// (cut/) after a checkpoint cut and 16 more deltas of 256 writes, as
// cruzd's tree is between checkpoints; cpu-ns/key is the process's CPU
// time per key (the machine is shared).
func BenchmarkLookupMany(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	plain, key := metaTree(b, r)
	keys := make([][]byte, 4096)
	for i := range keys {
		keys[i] = key(r.IntN(1 << 18))
	}
	cut, err := plain.Cut(1 << 20)
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 100)
	for pos := uint64(1<<20 + 1); pos <= 1<<20+16; pos++ {
		d := cut.Begin(pos)
		for range 256 {
			if err := d.Put(key(r.IntN(1<<18)), val); err != nil {
				b.Fatal(err)
			}
		}
		if cut, _, err = d.Finish(); err != nil {
			b.Fatal(err)
		}
	}
	for _, v := range []struct {
		name string
		tr   Tree
	}{{"", plain}, {"cut/", cut}} {
		tr := v.tr
		b.Run(v.name+"Lookup", func(b *testing.B) {
			c0 := cpuNanos()
			i := 0
			for range b.N {
				if _, err := tr.Lookup(keys[i%len(keys)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(cpuNanos()-c0)/float64(b.N), "cpu-ns/key")
		})
		b.Run(v.name+"LookupMany16", func(b *testing.B) {
			var out [16]*Node
			c0 := cpuNanos()
			i := 0
			for n := 0; n < b.N; n += 16 {
				j := i % len(keys)
				if err := tr.LookupMany(keys[j:j+16], out[:]); err != nil {
					b.Fatal(err)
				}
				i += 16
			}
			b.ReportMetric(float64(cpuNanos()-c0)/float64(b.N), "cpu-ns/key")
		})
	}
}

// BenchmarkApplyMetaKeys writes deltas of 16 random keys of metaTree's
// shape into it (overwrites and inserts, as cruzd's SETs): the processor's
// apply cost per write, whose comparisons are those of a lookup;
// cpu-ns/put is the process's CPU time per write.
func BenchmarkApplyMetaKeys(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	tr, key := metaTree(b, r)
	val := make([]byte, 100)
	pos := uint64(1 << 20)
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpuNanos()
	for n := 0; n < b.N; n += 16 {
		d := tr.Begin(pos)
		for range 16 {
			if err := d.Put(key(r.IntN(1<<19)), val); err != nil {
				b.Fatal(err)
			}
		}
		var err error
		if tr, _, err = d.Finish(); err != nil {
			b.Fatal(err)
		}
		pos++
	}
	b.ReportMetric(float64(cpuNanos()-c0)/float64(b.N), "cpu-ns/put")
}

// TestPrefixOrderMatchesCompare checks the branch-free step of
// lookupBlock against Node.compare: when the 20-byte prefixes differ,
// prefixOrder's side is compare's; when they tie, the prefixes are equal.
// The keys are short and long, share 8, 16 and 19 bytes, and end in zero
// bytes.
func TestPrefixOrderMatchesCompare(t *testing.T) {
	r := rand.New(rand.NewPCG(24, 3))
	stems := []string{"", "kkey:000", "kkey:00000001234", "user:00000000000/00", "\x00\x00\x00"}
	var keys [][]byte
	for range 400 {
		k := []byte(stems[r.IntN(len(stems))])
		for range r.IntN(24) {
			k = append(k, "\x00\x01az09:"[r.IntN(7)])
		}
		if len(k) == 0 {
			k = append(k, 'x')
		}
		keys = append(keys, k)
	}
	for _, a := range keys {
		for _, b := range keys[:100] {
			n := NewLoaded(Addr{}, NodeFields{Key: b, Value: []byte("v")})
			kp := prefix(a)
			c := n.compare(kp, a)
			less, tie := prefixOrder(kp, n)
			if tie {
				if kp != n.keyPrefix() {
					t.Fatalf("%q against %q: a tie of different prefixes", a, b)
				}
				continue
			}
			if c == 0 || (less == 1) != (c < 0) {
				t.Fatalf("%q against %q: prefixOrder less=%d, compare %d", a, b, less, c)
			}
		}
	}
}
