package cowtree

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

type modelEntry struct {
	val  []byte
	pos  uint64
	tomb bool
}

// check verifies the AVL invariant, key order and every summary.
func check(t *testing.T, tr Tree) {
	t.Helper()
	var walk func(n *Node, lo, hi []byte) (h int8, maxPos, minTomb uint64)
	walk = func(n *Node, lo, hi []byte) (int8, uint64, uint64) {
		if n == nil {
			return 0, 0, NoTombstone
		}
		if lo != nil && bytes.Compare(n.Key(), lo) <= 0 || hi != nil && bytes.Compare(n.Key(), hi) >= 0 {
			t.Fatalf("key order broken at %q", n.Key())
		}
		lh, lm, lt := walk(n.left.Node(), lo, n.Key())
		rh, rm, rt := walk(n.right.Node(), n.Key(), hi)
		if d := int(lh) - int(rh); d > 1 || d < -1 {
			t.Fatalf("unbalanced at %q: %d vs %d", n.Key(), lh, rh)
		}
		h := max(lh, rh) + 1
		mp := max(n.pos, lm, rm)
		mt := min(lt, rt)
		if n.tomb {
			mt = min(mt, n.pos)
		}
		if h != n.height || mp != n.MaxPos() || mt != n.MinTomb() {
			t.Fatalf("summary wrong at %q: h %d/%d max %d/%d tomb %d/%d", n.Key(), h, n.height, mp, n.MaxPos(), mt, n.MinTomb())
		}
		if n.akind == AddrNone {
			t.Fatalf("node %q has no address", n.Key())
		}
		return h, mp, mt
	}
	walk(tr.root.Node(), nil, nil)
}

func TestModel(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	model := map[string]modelEntry{}
	var tr Tree
	versions := []Tree{}
	models := []map[string]modelEntry{}
	for pos := uint64(1); pos <= 600; pos++ {
		d := tr.Begin(pos)
		for range 1 + r.IntN(8) {
			k := fmt.Sprintf("k%03d", r.IntN(300))
			if r.IntN(4) == 0 {
				if err := d.Delete([]byte(k)); err != nil {
					t.Fatal(err)
				}
				model[k] = modelEntry{pos: pos, tomb: true}
			} else {
				v := fmt.Appendf(nil, "v%d", pos)
				if err := d.Put([]byte(k), v); err != nil {
					t.Fatal(err)
				}
				model[k] = modelEntry{val: v, pos: pos}
			}
		}
		if pos%50 == 0 {
			cut := pos - 40
			if err := d.DropTombstones(cut); err != nil {
				t.Fatal(err)
			}
			for k, e := range model {
				if e.tomb && e.pos < cut {
					delete(model, k)
				}
			}
		}
		nt, nodes, err := d.Finish()
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range nodes {
			if n.off != uint32(i) || n.delta() != pos || n.Addr() != (Addr{Kind: AddrIntention, Pos: pos, Off: uint32(i)}) {
				t.Fatalf("node %d numbered %d delta %d", i, n.off, n.delta())
			}
		}
		if len(nodes) > 0 && nodes[len(nodes)-1] != nt.root.Node() {
			t.Fatal("root is not last")
		}
		tr = nt
		check(t, tr)
		versions = append(versions, tr)
		models = append(models, maps_clone(model))
	}
	// Every version still reads as it did (persistence).
	for i, v := range versions {
		m := models[i]
		for k, e := range m {
			n, err := v.Lookup([]byte(k))
			if err != nil || n == nil {
				t.Fatalf("version %d: %q missing", i, k)
			}
			if n.pos != e.pos || n.tomb != e.tomb || !bytes.Equal(n.Value(), e.val) {
				t.Fatalf("version %d: %q = %q@%d tomb %v, want %q@%d tomb %v", i, k, n.Value(), n.pos, n.tomb, e.val, e.pos, e.tomb)
			}
		}
		// The pruned point check agrees with the model for present and
		// absent keys, at snapshots below, at and above each entry.
		for j := range 300 {
			k := fmt.Sprintf("k%03d", j)
			e, ok := m[k]
			for _, s := range []uint64{0, e.pos - 1, e.pos, e.pos + 1, uint64(i + 1)} {
				n, err := v.KeyWrittenAfter([]byte(k), s)
				if err != nil {
					t.Fatal(err)
				}
				if want := ok && e.pos > s; (n != nil) != want || (n != nil && (n.pos != e.pos || string(n.Key()) != k)) {
					t.Fatalf("version %d: KeyWrittenAfter(%q, %d) = %v, want %v (entry at %d)", i, k, s, n, want, e.pos)
				}
			}
		}
		var keys []string
		for k, e := range m {
			if !e.tomb {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		var got []string
		it := v.Ascend(nil)
		for it.Next() {
			got = append(got, string(it.Key()))
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("version %d ascend: %v want %v", i, got, keys)
		}
		got = got[:0]
		it = v.Descend(nil)
		for it.Next() {
			got = append(got, string(it.Key()))
		}
		slices.Reverse(keys)
		if !slices.Equal(got, keys) {
			t.Fatalf("version %d descend mismatch", i)
		}
	}
}

func maps_clone(m map[string]modelEntry) map[string]modelEntry {
	c := make(map[string]modelEntry, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func build(t testing.TB, n int) Tree {
	var tr Tree
	for i := range n {
		d := tr.Begin(uint64(i + 1))
		if err := d.Put(fmt.Appendf(nil, "key%05d", i*2), []byte("v")); err != nil {
			t.Fatal(err)
		}
		tr, _, _ = d.Finish()
	}
	return tr
}

func TestSeekAndRange(t *testing.T) {
	tr := build(t, 100) // keys key00000, key00002, ... key00198 at pos 1..100
	it := tr.Ascend([]byte("key00051"))
	if !it.Next() || string(it.Key()) != "key00052" {
		t.Fatalf("ascend seek got %q", it.Key())
	}
	it = tr.Descend([]byte("key00052"))
	if !it.Next() || string(it.Key()) != "key00050" {
		t.Fatalf("descend seek got %q", it.Key())
	}
	// WrittenAfter: keys at pos > 90 are key00180..key00198.
	n, err := tr.WrittenAfter([]byte("key00100"), []byte("key00181"), 90)
	if err != nil || n == nil || string(n.Key()) != "key00180" {
		t.Fatalf("WrittenAfter got %v %v", n, err)
	}
	if n, _ := tr.WrittenAfter([]byte("key00100"), []byte("key00180"), 90); n != nil {
		t.Fatalf("WrittenAfter found %q outside the range", n.Key())
	}
	if n, _ := tr.WrittenAfter(nil, nil, 100); n != nil {
		t.Fatalf("WrittenAfter found %q after the last position", n.Key())
	}
}

func TestCopyOncePerDelta(t *testing.T) {
	tr := build(t, 1000)
	d := tr.Begin(2000)
	for i := range 50 {
		if err := d.Put(fmt.Appendf(nil, "key%05d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, nodes, err := d.Finish()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[*Node]bool{}
	for _, n := range nodes {
		if seen[n] {
			t.Fatal("node listed twice")
		}
		seen[n] = true
	}
	// 50 writes into keys 0..49 touch a small region: far fewer than 50 full paths.
	if len(nodes) >= 50*int(tr.root.Node().height) {
		t.Fatalf("%d nodes for 50 clustered writes: nodes copied more than once", len(nodes))
	}
	// The old version is untouched.
	if v, _, _ := tr.Get([]byte("key00000")); string(v) != "v" {
		t.Fatalf("old version changed: %q", v)
	}
}

func TestDeltaOrder(t *testing.T) {
	tr := build(t, 10)
	d := tr.Begin(5)
	if d.Err() == nil {
		t.Fatal("delta below the tree's positions accepted")
	}
}

// TestPrefixOrder: keys that differ only after 8 or 16 bytes, or only in
// length or trailing zero bytes, still come out in byte order.
func TestPrefixOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte{0, 1, 'a', 0xff}
	var tr Tree
	want := map[string]bool{}
	for pos := uint64(1); pos <= 400; pos++ {
		d := tr.Begin(pos)
		k := make([]byte, 1+r.IntN(24))
		for i := range k {
			k[i] = alphabet[r.IntN(len(alphabet))]
		}
		if r.IntN(2) == 0 { // a long shared prefix
			k = append([]byte("namespace:000000"), k...)
		}
		d.Put(k, k)
		want[string(k)] = true
		tr, _, _ = d.Finish()
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var got []string
	for it := tr.Ascend(nil); it.Next(); {
		got = append(got, string(it.Key()))
	}
	if !slices.Equal(got, keys) {
		t.Fatal("ascending order differs from byte order")
	}
	for _, k := range keys {
		if v, ok, _ := tr.Get([]byte(k)); !ok || string(v) != k {
			t.Fatalf("lookup %q failed", k)
		}
	}
	check(t, tr)
}

// The node layout is chosen for the processor's walks (see Node); a field
// added carelessly pushes it into the next size class.
func TestNodeLayout(t *testing.T) {
	var n Node
	if s := unsafe.Sizeof(n); s != 160 {
		t.Errorf("Node is %d bytes, want 160", s)
	}
	if o := unsafe.Offsetof(n.left) + unsafe.Offsetof(n.left.p); o+8 > 64 {
		t.Errorf("left child pointer at offset %d, outside the first cache line", o)
	}
	if o := unsafe.Offsetof(n.touched); o+4 > 64 {
		t.Errorf("clock mark at offset %d, outside the first cache line", o)
	}
}

// KeyInline gives every node's key, short ones rebuilt from the inline
// prefix (up to 20 bytes), including keys that end in
// zero bytes (the prefix is zero-padded) and keys longer than the prefix,
// in the delta that wrote them and in copies a later delta made of them
// (a write to a neighbour copies the path through them), and in nodes
// loaded back from their stored fields.
func TestKeyInline(t *testing.T) {
	var keys [][]byte
	for n := 1; n <= 24; n++ {
		keys = append(keys, bytes.Repeat([]byte{byte('a' + n)}, n))
		zero := bytes.Repeat([]byte{'z'}, n)
		zero[n-1] = 0
		keys = append(keys, zero)
	}
	var tr Tree
	d := tr.Begin(1)
	for _, k := range keys {
		if err := d.Put(k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	tr, _, err := d.Finish()
	if err != nil {
		t.Fatal(err)
	}
	check := func(n *Node, k []byte) {
		t.Helper()
		var buf [KeyInlineLen]byte
		if got := n.KeyInline(&buf); !bytes.Equal(got, k) {
			t.Fatalf("KeyInline = %q, want %q", got, k)
		}
	}
	for _, k := range keys {
		n, err := tr.Lookup(k)
		if err != nil || n == nil {
			t.Fatalf("Lookup(%q): %v %v", k, n, err)
		}
		check(n, k)
		check(NewLoaded(n.Addr(), NodeFields{Key: n.Key(), Value: n.Value(), Pos: n.Pos(), Height: n.Height()}), k)
	}
	d = tr.Begin(2)
	for _, k := range everyThird(keys) {
		if err := d.Put(k, []byte("w")); err != nil {
			t.Fatal(err)
		}
	}
	tr2, nodes, err := d.Finish()
	if err != nil {
		t.Fatal(err)
	}
	copied := 0
	for _, n := range nodes {
		if n.Pos() == 1 {
			copied++
		}
		check(n, n.Key())
	}
	if copied == 0 {
		t.Fatal("the second delta copied no node of the first")
	}
	for _, k := range keys {
		n, err := tr2.Lookup(k)
		if err != nil || n == nil {
			t.Fatalf("Lookup(%q): %v %v", k, n, err)
		}
		check(n, k)
	}
}

func everyThird(keys [][]byte) [][]byte {
	var out [][]byte
	for i := 0; i < len(keys); i += 3 {
		out = append(out, keys[i])
	}
	return out
}
