package cowtree

import (
	"fmt"
	"testing"
)

// marked clears every in-memory node's read mark under n and counts the
// ones that were set.
func marked(n *Node) int {
	if n == nil {
		return 0
	}
	c := 0
	if n.TakeTouched() {
		c = 1
	}
	return c + marked(n.left.Node()) + marked(n.right.Node())
}

// TestPrefetchChangesNothing checks that Prefetch is only a hint: it
// loads no node, marks none as read, and leaves what is in memory as it
// was, for present, absent and evicted keys and blocks longer than it walks.
func TestPrefetchChangesNothing(t *testing.T) {
	tr, ld := evictTree(t)
	root, _ := tr.RootNode()
	tr.EvictSubtree(root.left.Node(), all, func(*Node) {}, always)
	marked(root)
	before := inMemory(root)
	var keys [][]byte
	for i := -3; i < 130; i += 3 {
		keys = append(keys, fmt.Appendf(nil, "k%03d", i)) // both halves, and absent keys
	}
	keys = append(keys, nil, []byte("k063"), []byte("zz"))
	for i := 0; i < len(keys); i += 5 {
		tr.Prefetch(keys[i:])
	}
	tr.Prefetch(nil)
	if ld.loads != 0 {
		t.Fatalf("Prefetch loaded %d nodes", ld.loads)
	}
	if n := marked(root); n != 0 {
		t.Fatalf("Prefetch marked %d nodes as read", n)
	}
	if got := inMemory(root); got != before {
		t.Fatalf("%d nodes in memory after Prefetch, %d before", got, before)
	}
	readAll(t, tr)
	check(t, tr)

	var empty Tree
	empty.Prefetch(keys)
	nt := New(nil)
	nt.Prefetch(keys)
}
