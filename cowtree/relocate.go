package cowtree

import "fmt"

// Relocate returns a copy of the tree in which every node, tombstones
// included, is a new node of "delta" id: node n in post-order (root last)
// gets the intention address (id, n), and every child pointer points at a
// copy. Nothing else changes: keys, values, entry positions, heights and
// summaries are those of t. It is the checkpoint's cut: afterwards, every
// node of the latest version lives at or after id in the log once the
// copy's image is written, so the log below id can be trimmed. The copies
// share key and value memory with t's nodes; nodes not in memory are read
// through the loader (without being linked into t). It also returns t's
// nodes that the copy replaces, for caches. The result depends only on the
// tree and id.
func (t *Tree) Relocate(id uint64) (Tree, []*Node, []*Node, error) {
	nt := Tree{ld: t.ld, root: &Ref{minTomb: NoTombstone}}
	root, err := resolve(t.root, t.ld)
	if err != nil {
		return Tree{}, nil, nil, err
	}
	if root == nil {
		return nt, nil, nil, nil
	}
	if root.maxPos >= id {
		return Tree{}, nil, nil, fmt.Errorf("%w: relocation %d, tree has %d", ErrDeltaOrder, id, root.maxPos)
	}
	r := relocator{id: id, ld: t.ld}
	c, err := r.copy(root)
	if err != nil {
		return Tree{}, nil, nil, err
	}
	nt.root.set(c)
	return nt, r.nodes, r.old, nil
}

type relocator struct {
	id         uint64
	ld         Loader
	nodes, old []*Node
}

func (r *relocator) child(ref *Ref) (*Node, error) {
	if n := ref.Node(); n != nil {
		return n, nil
	}
	if ref.kind == AddrNone {
		return nil, nil
	}
	if r.ld == nil {
		return nil, fmt.Errorf("cowtree: relocate %v: %w", ref.Addr(), ErrNotResident)
	}
	n, err := r.ld.LoadNode(ref.Addr())
	if err != nil {
		return nil, fmt.Errorf("cowtree: relocate: load %v: %w", ref.Addr(), err)
	}
	return n, nil
}

// copy copies the subtree at n in post-order.
func (r *relocator) copy(n *Node) (*Node, error) {
	c := &Node{
		kp:      n.kp,
		kv:      n.kv,
		klen:    n.klen,
		vlen:    n.vlen,
		height:  n.height,
		tomb:    n.tomb,
		pos:     n.pos,
		maxPos:  n.maxPos,
		minTomb: n.minTomb,
		akind:   AddrIntention,
		apos:    r.id,
	}
	for _, side := range [2]struct{ from, to *Ref }{{&n.left, &c.left}, {&n.right, &c.right}} {
		ch, err := r.child(side.from)
		if err != nil {
			return nil, err
		}
		if ch == nil {
			side.to.set(nil)
			continue
		}
		cc, err := r.copy(ch)
		if err != nil {
			return nil, err
		}
		side.to.set(cc)
	}
	c.off = uint32(len(r.nodes))
	r.nodes = append(r.nodes, c)
	r.old = append(r.old, n)
	return c, nil
}
