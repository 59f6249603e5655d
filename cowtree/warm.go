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
	var (
		kps [manyBlock]keyPrefix
		cur [manyBlock]*Node
		act [manyBlock]uint8
	)
	keys = keys[:min(len(keys), manyBlock)]
	if t.root == nil {
		return
	}
	root := t.root.Node()
	if root == nil {
		return
	}
	na := 0
	for i, k := range keys {
		kps[i], cur[i] = prefix(k), root
		act[na] = uint8(i)
		na++
	}
	for na > 0 {
		w := 0
		for _, i := range act[:na] {
			n := cur[i]
			c := n.compare(kps[i], keys[i])
			if c == 0 {
				continue
			}
			next := n.right.Node()
			if c < 0 {
				next = n.left.Node()
			}
			if next == nil {
				continue // absent, or not in memory
			}
			cur[i] = next
			act[w] = i
			w++
		}
		na = w
	}
}
