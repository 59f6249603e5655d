package cowtree

import (
	"fmt"
	"testing"
)

// mapLoader reloads a node by handing back the node made at that address.
type mapLoader struct {
	nodes map[Addr]*Node
	loads int
}

func (l *mapLoader) LoadNode(a Addr) (*Node, error) {
	n, ok := l.nodes[a]
	if !ok {
		return nil, fmt.Errorf("no node at %v", a)
	}
	l.loads++
	return n, nil
}

// evictTree is a tree of 127 keys made by one delta, and a loader for it.
func evictTree(t *testing.T) (Tree, *mapLoader) {
	t.Helper()
	ld := &mapLoader{nodes: map[Addr]*Node{}}
	base := New(ld)
	d := base.Begin(1)
	for i := range 127 {
		if err := d.Put(fmt.Appendf(nil, "k%03d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	tr, nodes, err := d.Finish()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		ld.nodes[n.Addr()] = n
	}
	return tr, ld
}

// inMemory counts the nodes reachable from n through in-memory pointers.
func inMemory(n *Node) int {
	if n == nil {
		return 0
	}
	return 1 + inMemory(n.left.Node()) + inMemory(n.right.Node())
}

// readAll checks that every key reads back, loading what was evicted.
func readAll(t *testing.T, tr Tree) {
	t.Helper()
	for i := range 127 {
		v, ok, err := tr.Get(fmt.Appendf(nil, "k%03d", i))
		if err != nil || !ok || string(v) != "v" {
			t.Fatalf("k%03d after eviction: %q %v %v", i, v, ok, err)
		}
	}
}

func all(*Node) bool { return true }
func always() bool   { return true }

func TestEvictSubtree(t *testing.T) {
	tr, ld := evictTree(t)
	root, _ := tr.RootNode()
	l := root.left.Node()
	size := inMemory(l)
	var order []*Node
	gone := map[*Node]bool{}
	evicted, stale := tr.EvictSubtree(l, all, func(n *Node) {
		// Deepest first: a node goes only once its children are gone.
		for _, c := range []*Ref{&n.left, &n.right} {
			if c.Node() != nil {
				t.Fatalf("%q evicted with a child in memory", n.Key())
			}
		}
		gone[n] = true
		order = append(order, n)
	}, always)
	if !evicted || stale {
		t.Fatalf("EvictSubtree = %v, %v; want true, false", evicted, stale)
	}
	if len(order) != size || order[len(order)-1] != l {
		t.Fatalf("evicted %d of %d nodes, last %q (want %q)", len(order), size, order[len(order)-1].Key(), l.Key())
	}
	if root.left.Node() != nil || inMemory(root) != 127-size {
		t.Fatalf("%d nodes in memory after evicting %d of 127", inMemory(root), size)
	}
	readAll(t, tr)
	if ld.loads != size {
		t.Fatalf("%d loads to read back %d evicted nodes", ld.loads, size)
	}
	check(t, tr)
}

func TestEvictSubtreeKeepsRefusedNodes(t *testing.T) {
	tr, _ := evictTree(t)
	root, _ := tr.RootNode()
	l := root.left.Node()
	// Refuse one node three levels down: it, and its ancestors up to l,
	// stay; everything else below l goes.
	keep := l.left.Node().right.Node().left.Node()
	var n int
	evicted, stale := tr.EvictSubtree(l, func(m *Node) bool { return m != keep }, func(*Node) { n++ }, always)
	if evicted || stale {
		t.Fatalf("EvictSubtree = %v, %v; want false, false", evicted, stale)
	}
	if got := inMemory(l); got != 3+inMemory(keep) {
		t.Fatalf("%d nodes left under l, want the 3 ancestors and keep's %d", got, inMemory(keep))
	}
	if l.left.Node().right.Node().left.Node() != keep || keep.left.Node() == nil {
		t.Fatal("the refused node or its children were evicted")
	}
	if l.right.Node() != nil || l.left.Node().left.Node() != nil {
		t.Fatal("subtrees beside the refused node stayed")
	}
	if want := inMemory(root.left.Node()) + n; want != 63 {
		t.Fatalf("evicted %d and kept %d of l's 63 nodes", n, inMemory(l))
	}
	readAll(t, tr)
}

func TestEvictSubtreeStopsWhenTold(t *testing.T) {
	tr, _ := evictTree(t)
	root, _ := tr.RootNode()
	for _, budget := range []int{0, 1, 5, 20} {
		n := 0
		before := inMemory(root)
		tr.EvictSubtree(root.right.Node(), all, func(*Node) { n++ }, func() bool { return n < budget })
		if n != min(budget, before-1) || inMemory(root) != before-n {
			t.Fatalf("budget %d: evicted %d, %d -> %d in memory", budget, n, before, inMemory(root))
		}
		readAll(t, tr) // reloads them, so the next round starts full again
	}
}

func TestEvictSubtreeRootAndStale(t *testing.T) {
	tr, ld := evictTree(t)
	root, _ := tr.RootNode()
	// The root stays (the tree is resident from the root down); what is
	// below it goes.
	evicted, stale := tr.EvictSubtree(root, all, func(*Node) {}, always)
	if evicted || stale || inMemory(root) != 1 {
		t.Fatalf("root: %v, %v, %d in memory", evicted, stale, inMemory(root))
	}
	readAll(t, tr)

	// A node a later delta replaced is stale in the new version: nothing
	// is unlinked there, and the old version keeps it.
	old := root.left.Node().left.Node()
	d := tr.Begin(2)
	if err := d.Put(old.Key(), []byte("w")); err != nil {
		t.Fatal(err)
	}
	tr2, nodes, err := d.Finish()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		ld.nodes[n.Addr()] = n
	}
	root2, _ := tr2.RootNode()
	before := inMemory(root2)
	evicted, stale = tr2.EvictSubtree(old, all, func(*Node) { t.Fatal("evicted from a stale node") }, always)
	if evicted || !stale || inMemory(root2) != before {
		t.Fatalf("stale node: %v, %v, %d -> %d in memory", evicted, stale, before, inMemory(root2))
	}
	if root.left.Node().left.Node() != old {
		t.Fatal("the old version lost the node")
	}

	// Evict takes a leaf, and keeps a node with children in memory.
	leaf := root2.left.Node()
	for leaf.left.Node() != nil {
		leaf = leaf.left.Node()
	}
	if ev, st := tr2.Evict(root2.left.Node()); ev || st {
		t.Fatalf("Evict of an inner node: %v, %v", ev, st)
	}
	if ev, st := tr2.Evict(leaf); !ev || st {
		t.Fatalf("Evict of a leaf: %v, %v", ev, st)
	}
	if v, _, err := tr2.Get(old.Key()); err != nil || string(v) != "w" {
		t.Fatalf("new version reads %q %v", v, err)
	}
}
