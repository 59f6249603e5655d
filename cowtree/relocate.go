package cowtree

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Checkpoint relocation without copying.
//
// A checkpoint cut at log position c gives every node of the tree at c a
// second address, (c, n): n is the node's post-order number in that tree
// (root last), which is also where the checkpoint's image stores it. Nothing
// is relabelled or copied at c: every child pointer carries the size of the
// child's subtree, so a descent computes each node's number from its
// parent's (the root is count-1; a right child is its parent's number minus
// one; a left child that minus the right subtree's size). Every walk of a
// version after c does that arithmetic, so it knows both addresses of each
// node of the cut's tree it meets: the one it was written at, which the
// pointers of the old nodes hold, and (c, n). A delta after c copies nodes
// as ever, but the pointers it writes to nodes of the cut's tree are (c, n)
// ones (see Delta.copyChild), so no afterimage written for a later
// intention points below c. A load passes both addresses to a RelocLoader,
// which reads the old one until the image is complete and (c, n) after:
// the log below c may then be trimmed.
//
// The processor's work at a cut is O(1) (Cut); the image is written from
// the cut's version in the background (Walk).

// ErrNoNode is returned by NodeAt for a number the cut's tree does not have.
var ErrNoNode = errors.New("cowtree: no such node in the cut's tree")

// Cut returns the version t with the checkpoint cut at position cut: the
// same nodes, each of which now also has the address (cut, n) (see the
// comment above). cut must be above every position in t. The result
// depends only on the tree and cut; it costs O(1).
func (t *Tree) Cut(cut uint64) (Tree, error) {
	if cut == 0 {
		return Tree{}, fmt.Errorf("%w: cut at position 0", ErrDeltaOrder)
	}
	nt := Tree{ld: t.ld, root: &Ref{minTomb: NoTombstone}, cut: cut, prev: t.cut, prevRoot: t.rootNum()}
	root, err := resolveAt(t.root, t.ld, t.cut, nt.prevRoot)
	if err != nil {
		return Tree{}, err
	}
	if root == nil {
		return nt, nil
	}
	if root.MaxPos() >= cut {
		return Tree{}, fmt.Errorf("%w: cut %d, tree has %d", ErrDeltaOrder, cut, root.MaxPos())
	}
	nt.root.set(root)
	nt.root.setAddr(Addr{Kind: AddrIntention, Pos: cut, Off: root.count() - 1})
	return nt, nil
}

// CutPos returns the newest checkpoint cut the version descends from (0:
// none known to it).
func (t *Tree) CutPos() uint64 { return t.cut }

// Nodes returns the number of nodes in the tree, tombstones included.
func (t *Tree) Nodes() (uint64, error) {
	root, err := t.RootNode()
	if root == nil || err != nil {
		return 0, err
	}
	return root.Count(), nil
}

// Walk visits the nodes of t, a version returned by Cut, in post-order,
// passing each node's number in the cut's image (0, 1, ... root last). A
// node not in memory is read through the loader, by its (cut, n) address
// once the image is complete, and is not linked into the tree: an image
// writer reads the whole tree without filling the cache with it. A node's
// children are numbered left = n-1-Right().Count(), right = n-1. Walk
// stops at the first error visit returns, and returns it.
func (t *Tree) Walk(visit func(n *Node, num uint32) error) error {
	if t.root == nil || t.root.IsNil() {
		return nil
	}
	num := t.rootNum()
	if num < 0 {
		return fmt.Errorf("cowtree: walk of a version that is not a cut's")
	}
	pn := int64(-1)
	if t.prev != 0 {
		pn = t.prevRoot
	}
	root, err := t.peek(t.root, num, pn)
	if root == nil || err != nil {
		return err
	}
	return t.walk(root, num, pn, visit)
}

func (t *Tree) walk(n *Node, num, pn int64, visit func(*Node, uint32) error) error {
	// The walk reads nodes scattered over the heap, most of them out of
	// the caches, one dependent load after the other: a child's address is
	// in its parent, a value's in its node. Reading here, before the
	// descent, the lines of n's children and grandchildren and the keys
	// and values of n and its children starts those misses together; the
	// right side's are served while the left subtree is walked, and the
	// descent finds the next levels under way (an image of 100K keys:
	// 390 -> 210 ns a node, BenchmarkWriteImage in flusher). The reads
	// change nothing.
	l, r := n.left.Node(), n.right.Node()
	w := warmKV(n)
	if l != nil {
		w ^= warmLines(l) ^ warmKV(l) ^ warmLines(l.left.Node()) ^ warmLines(l.right.Node())
	}
	if r != nil {
		w ^= warmLines(r) ^ warmKV(r) ^ warmLines(r.left.Node()) ^ warmLines(r.right.Node())
	}
	if w == warmMagic {
		warmHits.Add(1)
	}
	for _, left := range [2]bool{true, false} {
		r := side(n, left)
		cn := childNum(t.cut, r, n, num, left)
		cpn := childNum(t.prev, r, n, pn, left)
		c, err := t.peek(r, cn, cpn)
		if err != nil {
			return err
		}
		if c == nil {
			continue
		}
		if err := t.walk(c, cn, cpn, visit); err != nil {
			return err
		}
	}
	return visit(n, uint32(num))
}

// peek returns the node behind r, node num of the cut's image and pn of
// the previous cut's, from memory or loaded but not linked: by the
// previous cut's address where the node has one (its own may be trimmed),
// else by its own. Never by this cut's: the walk is what writes its image.
func (t *Tree) peek(r *Ref, num, pn int64) (*Node, error) {
	if n := r.Node(); n != nil {
		return n, nil
	}
	if pn >= 0 {
		return fetch(r, t.ld, t.prev, pn)
	}
	return fetch(r, t.ld, 0, -1)
}

// NodeAt returns node k of the image of t's cut, t being a version
// returned by Cut, by a descent from the root that follows the numbers:
// the right subtree of node m holds m-Right().Count() .. m-1, the left one
// the numbers below. Nodes not in memory are loaded and linked, as any
// read does; it is how a loader finds (cut, k) before the image is
// complete, so it loads them by their own addresses, or, where those were
// trimmed with the log below the previous cut, from that cut's image, never
// from this one's. ErrNoNode means the tree has no node k.
func (t *Tree) NodeAt(k uint32) (*Node, error) {
	num := t.rootNum()
	if num < 0 {
		return nil, fmt.Errorf("%w: node %d of a version that is not a cut's", ErrNoNode, k)
	}
	pn := int64(-1)
	if t.prev != 0 {
		pn = t.prevRoot
	}
	n, err := resolveAt(t.root, t.ld, t.prev, pn)
	for n != nil && err == nil {
		switch {
		case int64(k) == num:
			return n, nil
		case int64(k) > num:
			return nil, fmt.Errorf("%w: %d (cut %d)", ErrNoNode, k, t.cut)
		}
		left := int64(k) < num-int64(n.right.cnt)
		r := side(n, left)
		num = childNum(t.cut, r, n, num, left)
		pn = childNum(t.prev, r, n, pn, left)
		n, err = resolveAt(r, t.ld, t.prev, pn)
	}
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %d (cut %d)", ErrNoNode, k, t.cut)
}

// warmLines reads a word of each cache line a node spans (a node is 160
// bytes, starting at a multiple of 32: three lines, whatever its place),
// fields that never change once the node is reachable, and returns their
// xor; 0 for nil.
func warmLines(n *Node) uint64 {
	if n == nil {
		return 0
	}
	return n.kp.hi ^ n.right.maxPos ^ n.pos
}

// warmKV reads the first and last byte of n's key and value (one
// allocation) and returns their xor.
func warmKV(n *Node) uint64 {
	kv := unsafe.Slice(n.kv, n.klen+n.vlen)
	return uint64(kv[0] ^ kv[len(kv)-1])
}

// warmHits keeps the compiler from dropping the reads of warmLines and
// warmKV: it is counted when their xor is warmMagic, which branch
// prediction passes over without waiting for the reads.
var (
	warmHits  atomic.Uint64
	warmMagic uint64 = 0x5eed_cafe_f00d_d00d
)
