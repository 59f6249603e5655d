package cowtree

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// compareKeys returns keys built to tie on the inline prefix or just miss
// it: random keys of lengths 0 to 40 over an alphabet rich in 0x00 and
// 0xff (so that many keys differ only by trailing zero bytes, or by their
// length around 16 and 20, or past byte 20), keys sharing a start of 15 to
// 21 bytes, every truncation of two keys, all-zero and all-0xff keys of
// every length, and the shapes of cruzd's metadata keys.
func compareKeys(r *rand.Rand) [][]byte {
	alphabet := []byte{0, 0, 1, 0x7f, 0x80, 0xfe, 0xff, 0xff}
	randKey := func(n int) []byte {
		k := make([]byte, n)
		for i := range k {
			k[i] = alphabet[r.IntN(len(alphabet))]
		}
		return k
	}
	var keys [][]byte
	for range 300 {
		keys = append(keys, randKey(r.IntN(41)))
	}
	// Groups that share their first s bytes, s = 15..21, with tails that
	// begin inside, at the end of, or past the 20 inline bytes.
	for s := 15; s <= 21; s++ {
		base := randKey(s)
		for range 30 {
			k := append(bytes.Clone(base), randKey(r.IntN(41-s))...)
			keys = append(keys, k)
		}
		// The same start with one byte changed at each place near it.
		for i := max(0, s-3); i < s; i++ {
			for _, b := range []byte{0, 1, 0xfe, 0xff} {
				k := append(bytes.Clone(base), randKey(r.IntN(6))...)
				k[i] = b
				keys = append(keys, k)
			}
		}
	}
	for _, base := range [][]byte{randKey(40), []byte("kkey:000000012345xyz-and-a-long-tail!!")} {
		for n := 0; n <= len(base); n++ {
			keys = append(keys, base[:n])
		}
	}
	for n := 0; n <= 40; n++ {
		keys = append(keys, make([]byte, n), bytes.Repeat([]byte{0xff}, n))
	}
	keys = append(keys, []byte("key:000000000001"), []byte("key:0000000000010"),
		[]byte("kkey:000000000001"), []byte("kkey:000000000002"), []byte("kkey:0000000000010"),
		[]byte("kkey:000000000001\x00\x00\x00"), []byte("kkey:000000000001\x00\x00\x00\x00"))
	return keys
}

// TestCompareMatchesBytes checks the node comparison, which orders keys by
// their 20-byte inline prefixes and then by length or by their tails,
// against bytes.Compare on every pair of compareKeys.
func TestCompareMatchesBytes(t *testing.T) {
	keys := compareKeys(rand.New(rand.NewPCG(3, 4)))
	nodes := make([]*Node, len(keys))
	for i, k := range keys {
		nodes[i] = &Node{}
		nodes[i].setKV(joinKV(k, []byte("v")), len(k))
	}
	checked, tails := 0, 0
	for _, a := range keys {
		kp := prefix(a)
		for j, n := range nodes {
			want := bytes.Compare(a, keys[j])
			if got := n.compare(kp, a); got != want {
				t.Fatalf("compare(%x, %x) = %d, want %d", a, keys[j], got, want)
			}
			if kp == n.keyPrefix() && len(a) > keyPrefixLen && len(keys[j]) > keyPrefixLen {
				tails++
			}
			checked++
		}
	}
	if checked != len(keys)*len(keys) {
		t.Fatalf("checked %d pairs", checked)
	}
	// The keys must exercise the comparison past the inline prefix.
	if tails < len(keys) {
		t.Fatalf("only %d pairs tie on the 20-byte prefix with longer keys", tails)
	}
}

// TestPrefixInline checks the inline prefix of keys of every length up to
// 24: bytes 16..19 big-endian in keyExt, zero-padded, 0 for short keys.
func TestPrefixInline(t *testing.T) {
	key := []byte("0123456789abcdefGHIJklmn")
	for l := 0; l <= len(key); l++ {
		n := &Node{}
		n.setKV(joinKV(key[:l], nil), l)
		var want uint32
		for i := 16; i < 20; i++ {
			want <<= 8
			if i < l {
				want |= uint32(key[i])
			}
		}
		if got := n.keyExt(); got != want {
			t.Errorf("length %d: keyExt %08x, want %08x", l, got, want)
		}
		if n.keyPrefix() != prefix(key[:l]) {
			t.Errorf("length %d: node prefix %x, key prefix %x", l, n.keyPrefix(), prefix(key[:l]))
		}
	}
}

// TestPrefixSurvivesCopies checks that every way a node is built keeps the
// key's bytes 16..19 beside it: nodes made by a delta, copied by later
// deltas (updates, rotations, removals, with a cut so that the left ref's
// image number is set too), and loaded from the log (NewLoaded) compare
// every key alike, and alike with bytes.Compare.
func TestPrefixSurvivesCopies(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	keys := compareKeys(r)
	var uniq [][]byte
	seen := map[string]bool{}
	for _, k := range keys {
		if len(k) > 0 && !seen[string(k)] {
			seen[string(k)] = true
			uniq = append(uniq, k)
		}
	}
	var tr Tree
	model := map[string]bool{}
	pos := uint64(1)
	apply := func(f func(d *Delta) error) {
		t.Helper()
		d := tr.Begin(pos)
		if err := f(d); err != nil {
			t.Fatal(err)
		}
		nt, _, err := d.Finish()
		if err != nil {
			t.Fatal(err)
		}
		tr = nt
		pos++
		if err := tr.Check(); err != nil {
			t.Fatal(err)
		}
	}
	// Insert in blocks (many rotations), then overwrite and delete some
	// keys: their paths are copied.
	for i := 0; i < len(uniq); i += 64 {
		apply(func(d *Delta) error {
			for _, k := range uniq[i:min(i+64, len(uniq))] {
				if err := d.Put(k, []byte("v1")); err != nil {
					return err
				}
				model[string(k)] = true
			}
			return nil
		})
	}
	for range 5 {
		apply(func(d *Delta) error {
			for range 40 {
				k := uniq[r.IntN(len(uniq))]
				del := r.IntN(3) == 0
				var err error
				if del {
					err = d.Delete(k)
				} else {
					err = d.Put(k, []byte("v2"))
				}
				model[string(k)] = !del
				if err != nil {
					return err
				}
			}
			return d.DropTombstones(pos)
		})
	}
	var nodes []*Node
	it := tr.Ascend(nil)
	for it.Next() {
		nodes = append(nodes, it.Node())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if len(nodes) < len(uniq)/2 {
		t.Fatalf("%d nodes of %d keys", len(nodes), len(uniq))
	}
	copied := 0
	for _, n := range nodes {
		if n.Delta() > 1+uint64(len(uniq)/64) {
			copied++ // made or copied by an update delta
		}
		f := NodeFields{Key: n.Key(), Value: n.Value(), Pos: n.pos, Tombstone: n.tomb, MaxPos: n.MaxPos(),
			MinTomb: n.MinTomb(), Height: int(n.height), Left: n.left.Addr(), Right: n.right.Addr(),
			LeftCount: n.left.cnt, RightCount: n.right.cnt}
		l := NewLoaded(n.Addr(), f)
		if l.keyPrefix() != n.keyPrefix() || n.keyPrefix() != prefix(n.Key()) {
			t.Fatalf("key %x: loaded prefix %x, made %x, want %x", n.Key(), l.keyPrefix(), n.keyPrefix(), prefix(n.Key()))
		}
		for _, k := range keys {
			kp := prefix(k)
			want := bytes.Compare(k, n.Key())
			if got, gotL := n.compare(kp, k), l.compare(kp, k); got != want || gotL != want {
				t.Fatalf("compare(%x, %x): made %d, loaded %d, want %d", k, n.Key(), got, gotL, want)
			}
		}
	}
	if copied == 0 {
		t.Fatal("no node of the updates left in the tree")
	}
	// Every key reads back through the tree as the model says.
	for _, k := range keys {
		v, ok, err := tr.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		if ok != model[string(k)] {
			t.Fatalf("Get(%x): present %v, want %v", k, ok, model[string(k)])
		}
		if ok && string(v) != "v1" && string(v) != "v2" {
			t.Fatalf("Get(%x) = %q", k, v)
		}
	}
}
