package cowtree

// Prefetch walks the paths of keys (at most manyBlock of them are used)
// down the nodes already in memory, in lockstep, so that the cache misses of
// the independent paths overlap; a following Lookup or Delta.Put of those
// keys then finds their nodes in the processor's caches instead of paying
// each miss one after the other.
//
// It is a hint and nothing else: it returns nothing, stops at the first node
// not in memory (it never loads), does not mark nodes as used for the node
// cache, and changes nothing, so what a caller computes after it does not
// depend on whether it ran. Callers apply it to blocks of keys they are
// about to read or write, such as an intention's.
func (t *Tree) Prefetch(keys [][]byte) {
	if t.root == nil {
		return
	}
	if root := t.root.Node(); root != nil {
		t.lookupBlock(root, keys, nil) // no loads: no error
	}
}
