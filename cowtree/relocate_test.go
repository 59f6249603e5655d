package cowtree

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// relocateCopy is the checkpoint relocation done the obvious way, as the
// test oracle of Cut: a copy of the whole tree in which node n in post-order
// is a new node at (cut, n), every child pointer pointing at a copy.
func relocateCopy(t *testing.T, tr Tree, cut uint64) (Tree, []*Node) {
	t.Helper()
	var nodes []*Node
	var cp func(n *Node) *Node
	cp = func(n *Node) *Node {
		c := &Node{kp: n.kp, kv: n.kv, klen: n.klen, vlen: n.vlen, height: n.height, tomb: n.tomb,
			pos: n.pos, akind: AddrIntention, apos: cut}
		for _, s := range [2]struct{ from, to *Ref }{{&n.left, &c.left}, {&n.right, &c.right}} {
			ch, err := resolve(s.from, tr.ld)
			if err != nil {
				t.Fatal(err)
			}
			if ch == nil {
				s.to.set(nil)
				continue
			}
			s.to.set(cp(ch))
		}
		c.off = uint32(len(nodes))
		nodes = append(nodes, c)
		return c
	}
	nt := Tree{ld: tr.ld, root: &Ref{minTomb: NoTombstone}}
	root, err := tr.RootNode()
	if err != nil {
		t.Fatal(err)
	}
	if root != nil {
		nt.root.set(cp(root))
	}
	return nt, nodes
}

// stored is what the log keeps of a node: every field an afterimage
// writes, child pointers as addresses with their subtree sizes.
func stored(n *Node) string {
	return fmt.Sprintf("%v key=%q val=%q pos=%d tomb=%t max=%d mt=%d h=%d L=%v/%d R=%v/%d",
		n.Addr(), n.Key(), n.Value(), n.pos, n.tomb, n.MaxPos(), n.MinTomb(), n.height,
		n.left.Addr(), n.left.cnt, n.right.Addr(), n.right.cnt)
}

// memLoader is a log of nodes by address, and a pager's view of cuts: an
// image is loadable once complete; before that, node n of a pending cut is
// found in the cut's tree by its number (Tree.NodeAt), as the pager does.
// Addresses below the trim point are gone.
type memLoader struct {
	nodes     map[Addr]*Node
	pending   map[uint64]Tree
	complete  map[uint64]bool
	trimBelow uint64
	atLoads   int // LoadNodeAt calls
}

var errTrimmed = errors.New("trimmed")

func (m *memLoader) LoadNode(a Addr) (*Node, error) {
	if a.Pos < m.trimBelow {
		return nil, fmt.Errorf("address %v: %w", a, errTrimmed)
	}
	if t, ok := m.pending[a.Pos]; ok && a.Kind == AddrIntention {
		return t.NodeAt(a.Off)
	}
	n, ok := m.nodes[a]
	if !ok {
		return nil, fmt.Errorf("address %v: no node", a)
	}
	// A load gives a fresh node with unresolved children, as the pager's.
	f := NodeFields{Key: n.Key(), Value: n.Value(), Pos: n.pos, Tombstone: n.tomb, MaxPos: n.MaxPos(),
		MinTomb: n.MinTomb(), Height: int(n.height), Left: n.left.Addr(), Right: n.right.Addr(),
		LeftCount: n.left.cnt, RightCount: n.right.cnt, ImageValue: n.left.aux}
	return NewLoaded(a, f), nil
}

func (m *memLoader) LoadNodeAt(a, reloc Addr) (*Node, error) {
	m.atLoads++
	if m.complete[reloc.Pos] {
		return m.LoadNode(reloc)
	}
	n, err := m.LoadNode(a)
	if errors.Is(err, errTrimmed) {
		return m.LoadNode(reloc)
	}
	return n, err
}

func (m *memLoader) add(nodes []*Node) {
	for _, n := range nodes {
		m.nodes[n.Addr()] = n
	}
}

// evictSome unlinks about a third of the nodes of tr's latest version.
func evictSome(r *rand.Rand, tr Tree) {
	var all []*Node
	it := tr.Ascend(nil).WithTombstones()
	for it.Next() {
		all = append(all, it.Node())
	}
	for i := len(all) - 1; i >= 0; i-- {
		if r.IntN(3) == 0 {
			keep := func(*Node) bool { return true }
			tr.EvictSubtree(all[i], keep, func(*Node) {}, func() bool { return true })
		}
	}
}

// Cut relocates without copying: the deltas after it, the image Walk
// numbers and NodeAt finds are those of the copying oracle, node for node
// and pointer for pointer, with nodes evicted and reloaded on both sides
// and the log below the cut trimmed halfway through.
func TestCutMatchesCopy(t *testing.T) {
	atLoads, imageValues := 0, 0
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			a, v := cutMatchesCopy(t, seed)
			atLoads, imageValues = atLoads+a, imageValues+v
		})
	}
	if atLoads == 0 || imageValues == 0 {
		t.Fatalf("%d nodes loaded by both addresses, %d copies knew their value's image node", atLoads, imageValues)
	}
	t.Logf("%d loads by both addresses, %d image values checked", atLoads, imageValues)
}

func cutMatchesCopy(t *testing.T, seed uint64) (atLoads, imageValues int) {
	r := rand.New(rand.NewPCG(seed, 7))
	keys := 20 + r.IntN(300)
	key := func() []byte { return []byte(fmt.Sprintf("k%04d", r.IntN(keys))) }
	ld := &memLoader{nodes: map[Addr]*Node{}, pending: map[uint64]Tree{}, complete: map[uint64]bool{}}
	tr := New(ld)
	pos := uint64(1)
	apply := func(tr Tree, pos uint64, ops []func(*Delta) error) (Tree, []*Node) {
		t.Helper()
		d := tr.Begin(pos)
		for _, op := range ops {
			if err := op(d); err != nil {
				t.Fatalf("seed %d pos %d: %v", seed, pos, err)
			}
		}
		nt, nodes, err := d.Finish()
		if err != nil {
			t.Fatalf("seed %d pos %d: %v", seed, pos, err)
		}
		return nt, nodes
	}
	randOps := func() []func(*Delta) error {
		var ops []func(*Delta) error
		n := 1 + r.IntN(4)
		if r.IntN(25) == 0 {
			n = 60 + r.IntN(60) // a delta that meets more numbered nodes than Delta lists
		}
		for range n {
			k, v := key(), []byte(fmt.Sprint(r.Uint32()))
			switch x := r.IntN(10); {
			case x < 6:
				ops = append(ops, func(d *Delta) error { return d.Put(k, v) })
			case x < 9:
				ops = append(ops, func(d *Delta) error { return d.Delete(k) })
			default:
				before := pos / 2
				ops = append(ops, func(d *Delta) error { return d.DropTombstones(before) })
			}
		}
		return ops
	}
	for range 1 + r.IntN(400) {
		var nodes []*Node
		tr, nodes = apply(tr, pos, randOps())
		ld.add(nodes)
		pos++
		if r.IntN(20) == 0 {
			evictSome(r, tr)
		}
	}
	// Two cuts: the second one's image is written, and its nodes found by
	// number, after the log was trimmed below the first (its tree holds
	// nodes whose own addresses are gone: they are read from the first
	// image, through the numbers of the previous cut).
	oracle, ct := tr, tr
	for round := range 2 {
		cut := pos + uint64(r.IntN(3))
		pos = cut + 1
		var image []*Node
		oracle, image = relocateCopy(t, oracle, cut)
		var err error
		if ct, err = ct.Cut(cut); err != nil {
			t.Fatal(err)
		}
		ld.pending[cut] = ct
		// The image Walk numbers is the oracle's, in order.
		i := 0
		err = ct.Walk(func(n *Node, num uint32) error {
			if int(num) != i || i >= len(image) {
				return fmt.Errorf("node %d numbered %d", i, num)
			}
			o := image[i]
			if !bytes.Equal(n.Key(), o.Key()) || n.pos != o.pos || n.Count() != o.Count() ||
				n.left.cnt != o.left.cnt || n.right.cnt != o.right.cnt {
				return fmt.Errorf("node %d: %s, oracle %s", i, stored(n), stored(o))
			}
			i++
			return nil
		})
		if err != nil || i != len(image) {
			t.Fatalf("seed %d round %d: walk: %v after %d of %d nodes", seed, round, err, i, len(image))
		}
		if err := ct.Check(); err != nil {
			t.Fatalf("seed %d round %d: %v", seed, round, err)
		}
		if c, _ := ct.Nodes(); c != uint64(len(image)) {
			t.Fatalf("seed %d: Nodes %d, image has %d", seed, c, len(image))
		}
		for range 10 {
			if len(image) == 0 {
				break
			}
			k := uint32(r.IntN(len(image)))
			n, err := ct.NodeAt(k)
			if err != nil || !bytes.Equal(n.Key(), image[k].Key()) {
				t.Fatalf("seed %d round %d: NodeAt(%d): %v %v, want %q", seed, round, k, n, err, image[k].Key())
			}
		}
		if _, err := ct.NodeAt(uint32(len(image))); !errors.Is(err, ErrNoNode) {
			t.Fatalf("seed %d: NodeAt past the end: %v", seed, err)
		}
		// The same deltas after the cut, on both: identical afterimages.
		steps := 1 + r.IntN(200)
		for step := range steps {
			if step == steps/2 {
				// The image has authority; the log below the cut is gone.
				ld.add(image)
				delete(ld.pending, cut)
				ld.complete[cut] = true
				ld.trimBelow = cut
				evictSome(r, ct)
				evictSome(r, oracle)
			}
			ops := randOps()
			var want, got []*Node
			oracle, want = apply(oracle, pos, ops)
			ct, got = apply(ct, pos, ops)
			if len(want) != len(got) {
				t.Fatalf("seed %d pos %d: %d nodes, oracle %d", seed, pos, len(got), len(want))
			}
			for j := range want {
				if a, b := stored(got[j]), stored(want[j]); a != b {
					t.Fatalf("seed %d pos %d node %d:\n got %s\nwant %s", seed, pos, j, a, b)
				}
				// A value written before the cut is node k of the image.
				if n := got[j]; n.pos < cut && !n.tomb {
					k, ok := n.ImageValue()
					if !ok || int(k) >= len(image) || !bytes.Equal(image[k].Key(), n.Key()) || image[k].pos != n.pos {
						t.Fatalf("seed %d pos %d node %d (%s): image value %d %v, image has %d nodes", seed, pos, j, stored(n), k, ok, len(image))
					}
					imageValues++
				}
				for _, ref := range []*Ref{&got[j].left, &got[j].right} {
					if a := ref.Addr(); a.Kind != AddrNone && a.Pos < cut {
						t.Fatalf("seed %d pos %d: pointer %v below the cut", seed, pos, a)
					}
				}
			}
			ld.add(got)
			pos++
			if r.IntN(10) == 0 {
				evictSome(r, ct)
			}
		}
	}
	if err := ct.Check(); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	// Every reader sees the oracle's entries, after the trims too.
	a, b := oracle.Ascend(nil).WithTombstones(), ct.Ascend(nil).WithTombstones()
	for a.Next() {
		if !b.Next() || !bytes.Equal(a.Key(), b.Key()) || !bytes.Equal(a.Value(), b.Value()) {
			t.Fatalf("seed %d: trees differ at %q", seed, a.Key())
		}
		if n, err := ct.Lookup(a.Key()); err != nil || n == nil || n.pos != a.Node().pos {
			t.Fatalf("seed %d: Lookup(%q): %v %v", seed, a.Key(), n, err)
		}
		if n, err := ct.KeyWrittenAfter(a.Key(), 0); err != nil || n == nil {
			t.Fatalf("seed %d: KeyWrittenAfter(%q): %v %v", seed, a.Key(), n, err)
		}
	}
	if b.Next() || a.Err() != nil || b.Err() != nil {
		t.Fatalf("seed %d: trees differ at the end: %v %v", seed, a.Err(), b.Err())
	}
	if _, err := ct.WrittenAfter(nil, nil, 0); err != nil {
		t.Fatalf("seed %d: WrittenAfter: %v", seed, err)
	}
	d := ct.Descend(nil)
	for d.Next() {
	}
	if d.Err() != nil {
		t.Fatalf("seed %d: Descend: %v", seed, d.Err())
	}
	return ld.atLoads, imageValues
}

func TestCutOrder(t *testing.T) {
	tr := New(nil)
	d := tr.Begin(5)
	if err := d.Put([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	tr, _, _ = d.Finish()
	if _, err := tr.Cut(5); !errors.Is(err, ErrDeltaOrder) {
		t.Fatalf("cut at the tree's position: %v", err)
	}
	if _, err := tr.Cut(0); !errors.Is(err, ErrDeltaOrder) {
		t.Fatalf("cut at 0: %v", err)
	}
	empty := New(nil)
	et, err := empty.Cut(3)
	if err != nil || !et.Root().IsNil() {
		t.Fatalf("empty cut: %v", err)
	}
	if err := et.Walk(func(*Node, uint32) error { return errors.New("visited") }); err != nil {
		t.Fatalf("walk of an empty cut: %v", err)
	}
	if err := tr.Walk(func(*Node, uint32) error { return nil }); err == nil {
		t.Fatalf("walk of a version that is not a cut's accepted")
	}
}

// TestCheckFindsBrokenTrees: Check fails on each invariant it claims to
// verify, broken by hand in a valid tree.
func TestCheckFindsBrokenTrees(t *testing.T) {
	fresh := func() Tree {
		tr := build(t, 50)
		if err := tr.Check(); err != nil {
			t.Fatalf("valid tree: %v", err)
		}
		return tr
	}
	cases := []struct {
		name    string
		breakIt func(root *Node)
	}{
		{"count", func(root *Node) { root.left.cnt++ }},
		{"height", func(root *Node) { root.height++ }},
		{"order", func(root *Node) {
			l := root.left.Node()
			l.kv, l.klen, l.kp = root.kv, root.klen, root.kp
		}},
	}
	for _, c := range cases {
		tr := fresh()
		root, err := tr.RootNode()
		if err != nil || root == nil {
			t.Fatal(root, err)
		}
		c.breakIt(root)
		if err := tr.Check(); !errors.Is(err, ErrInvariant) {
			t.Errorf("%s broken: Check says %v", c.name, err)
		}
	}
	// A pointer into the cut's image with the wrong number.
	tr := fresh()
	ct, err := tr.Cut(1000)
	if err != nil {
		t.Fatal(err)
	}
	d := ct.Begin(1001)
	if err := d.Put([]byte("zzz"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	nt, _, err := d.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := nt.Check(); err != nil {
		t.Fatalf("valid tree after a cut: %v", err)
	}
	root, _ := nt.RootNode()
	if root.left.kind != AddrIntention || root.left.pos != 1000 {
		t.Fatalf("root's left child is %v, want a pointer into the cut's image", root.left.Addr())
	}
	x := root.left.Node() // node root.left.off of the image, in memory
	want := int64(root.left.off) - 1 - int64(x.right.cnt)
	x.left.setAddr(Addr{Kind: AddrIntention, Pos: 1000, Off: uint32(want)})
	if err := nt.Check(); err != nil {
		t.Fatalf("right image number: %v", err)
	}
	x.left.off++
	if err := nt.Check(); !errors.Is(err, ErrInvariant) {
		t.Errorf("wrong image number: Check says %v", err)
	}
}
