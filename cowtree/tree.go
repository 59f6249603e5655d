package cowtree

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Loader brings a node that is not in memory back from the log. It is called
// with the address stored in the parent's child pointer. Implementations must
// return a node equal in every stored field to the one that was written; they
// may be called concurrently, and should collapse concurrent loads of one
// address into one read.
type Loader interface {
	LoadNode(a Addr) (*Node, error)
}

// ErrNotResident is returned when a node is not in memory and the tree has
// no Loader.
var ErrNotResident = errors.New("cowtree: node not in memory and no loader")

// Tree is an immutable version of the tree. The zero Tree is empty. Trees are
// cheap values; any number of goroutines may read one concurrently.
type Tree struct {
	root *Ref // shared by copies of the Tree, so a lazy root load is seen by all
	ld   Loader
	// cut is the newest checkpoint cut this version descends from (0:
	// none known). Every node of the tree at the cut has a second address,
	// (cut, n), n its post-order number there; the nodes of later deltas
	// point at them by it (see Cut).
	cut uint64
	// prev is the cut before cut, and prevRoot the root's number in its
	// image (-1: the root is not in prev's tree): while cut's image is
	// being written, nodes of its tree whose own addresses were trimmed
	// below prev are read from prev's image (see NodeAt).
	prev     uint64
	prevRoot int64
}

// New returns an empty tree that loads missing nodes through ld (may be nil).
func New(ld Loader) Tree { return Tree{ld: ld} }

// FromRoot returns the tree whose root is at addr, loaded lazily through ld.
func FromRoot(addr Addr, ld Loader) Tree {
	r := &Ref{minTomb: NoTombstone}
	r.setAddr(addr)
	if addr.Kind != AddrNone {
		r.h = -1
	}
	return Tree{root: r, ld: ld}
}

// Root returns the root pointer of the tree.
func (t *Tree) Root() *Ref {
	if t.root == nil {
		return &Ref{minTomb: NoTombstone}
	}
	return t.root
}

// Loader returns the tree's loader.
func (t *Tree) Loader() Loader { return t.ld }

// RelocLoader is an optional interface of a Loader, for trees that were
// cut (see Tree.Cut): a node of the cut's tree is found both at its address
// a, where it was written, and at reloc, (cut, n), node n of the cut's
// image. The loader chooses: a until the image is complete, reloc after
// (the log below the cut may then be trimmed).
type RelocLoader interface {
	LoadNodeAt(a, reloc Addr) (*Node, error)
}

// resolve returns the node behind r, loading it if needed.
func resolve(r *Ref, ld Loader) (*Node, error) { return resolveAt(r, ld, 0, -1) }

// resolveAt is resolve for a ref whose node is node num of the image of
// cut (num -1: it is not in the cut's tree, or there is no cut).
func resolveAt(r *Ref, ld Loader, cut uint64, num int64) (*Node, error) {
	if r == nil {
		return nil, nil
	}
	if n := r.Node(); n != nil {
		n.touch()
		return n, nil
	}
	n, err := fetch(r, ld, cut, num)
	if n == nil || err != nil {
		return nil, err
	}
	if !atomic.CompareAndSwapPointer(&r.p, nil, unsafe.Pointer(n)) {
		// Another reader installed it first; use theirs.
		if o := r.Node(); o != nil {
			return o, nil
		}
		return n, nil
	}
	if tr, ok := ld.(Tracker); ok {
		tr.Installed(n)
	}
	return n, nil
}

// fetch loads the node behind r, which is not in memory, without linking
// it into the tree.
func fetch(r *Ref, ld Loader, cut uint64, num int64) (*Node, error) {
	if r.kind == AddrNone {
		return nil, nil
	}
	if ld == nil {
		return nil, fmt.Errorf("cowtree: resolve %v: %w", r.Addr(), ErrNotResident)
	}
	var n *Node
	var err error
	reloc := Addr{Kind: AddrIntention, Pos: cut, Off: uint32(num)}
	if rl, ok := ld.(RelocLoader); ok && num >= 0 && r.Addr() != reloc {
		n, err = rl.LoadNodeAt(r.Addr(), reloc)
	} else {
		n, err = ld.LoadNode(r.Addr())
	}
	if err != nil {
		return nil, fmt.Errorf("cowtree: load %v: %w", r.Addr(), err)
	}
	return n, nil
}

// childNum returns the number in the image of cut of the child of p behind
// r (p's left child if left), p being node pn of that image (-1: p is not
// in the cut's tree). Post-order numbers the root count-1, its right child
// one less, its left child one less again than the right subtree's size;
// a child pointer relocated by a delta after the cut says its number. -1
// means the child is not in the cut's tree (or there is no cut).
func childNum(cut uint64, r *Ref, p *Node, pn int64, left bool) int64 {
	switch {
	case cut == 0 || r.kind == AddrNone:
		return -1
	case r.kind == AddrIntention && r.pos == cut:
		return int64(r.off)
	case pn < 0:
		return -1
	case left:
		return pn - 1 - int64(p.right.cnt)
	}
	return pn - 1
}

// rootNum is the number of t's root in the image of t's cut, or -1.
func (t *Tree) rootNum() int64 {
	if t.root == nil {
		return -1
	}
	return childNum(t.cut, t.root, nil, -1, false)
}

// step resolves n's left (or right) child, n being node num of the image
// of t's cut, and returns the child and its number.
func (t *Tree) step(n *Node, num int64, left bool) (*Node, int64, error) {
	r := &n.right
	if left {
		r = &n.left
	}
	cn := childNum(t.cut, r, n, num, left)
	c, err := resolveAt(r, t.ld, t.cut, cn)
	return c, cn, err
}

// Tracker is an optional interface of a Loader: Installed is called once a
// loaded node has been linked into the tree (and so can be evicted again).
type Tracker interface {
	Installed(n *Node)
}

// RootNode returns the root node (nil for an empty tree).
func (t *Tree) RootNode() (*Node, error) { return resolveAt(t.root, t.ld, t.cut, t.rootNum()) }

// Child resolves a child pointer of a node of this tree.
func (t *Tree) Child(r *Ref) (*Node, error) { return resolve(r, t.ld) }

// Lookup returns the entry for key, tombstones included, or nil.
//
// The walk through nodes in memory reads only their refs' pointers and
// kinds: a node's number in the cut's image (which a left step computes
// from the right child's count, in the node's second cache line) is needed
// only to load a node, so at the first node not in memory the lookup starts
// again from the root with the numbered walk (lookupNumbered), which loads
// it. Both find the same node.
func (t *Tree) Lookup(key []byte) (*Node, error) {
	kp := prefix(key)
	for r := t.root; r != nil; {
		n := r.Node()
		if n == nil {
			if r.kind == AddrNone {
				return nil, nil // an empty subtree: absent
			}
			return t.lookupNumbered(kp, key)
		}
		n.touch()
		c := n.compare(kp, key)
		if c == 0 {
			return n, nil
		}
		r = side(n, c < 0)
	}
	return nil, nil
}

// lookupNumbered is Lookup keeping the path's numbers in the cut's image,
// loading the nodes not in memory.
func (t *Tree) lookupNumbered(kp keyPrefix, key []byte) (*Node, error) {
	num := t.rootNum()
	n, err := resolveAt(t.root, t.ld, t.cut, num)
	for n != nil && err == nil {
		c := n.compare(kp, key)
		if c == 0 {
			return n, nil
		}
		n, num, err = t.step(n, num, c < 0)
	}
	return nil, err
}

// Get returns the value of key and whether it is present (tombstones are
// absent). The returned slice must not be modified.
func (t *Tree) Get(key []byte) ([]byte, bool, error) {
	n, err := t.Lookup(key)
	if err != nil || n == nil || n.tomb {
		return nil, false, err
	}
	return n.Value(), true, nil
}

// KeyWrittenAfter returns key's entry if its last write is after position
// s (tombstones included), else nil. It is the conflict check of a point
// read, and it stops as soon as a subtree's highest position is at most s —
// read from the child pointer's summary when known, so with a recent
// snapshot it visits only the few nodes written since. Unlike Lookup, it
// does not count as use of the nodes for the cache.
func (t *Tree) KeyWrittenAfter(key []byte, s uint64) (*Node, error) {
	kp := prefix(key)
	r, num := t.root, t.rootNum()
	for r != nil {
		if r.h >= 0 && r.maxPos <= s {
			return nil, nil // known summary (0 for an empty subtree)
		}
		n := r.Node()
		if n == nil {
			var err error
			if n, err = resolveAt(r, t.ld, t.cut, num); n == nil || err != nil {
				return nil, err
			}
		}
		if n.MaxPos() <= s {
			return nil, nil
		}
		switch c := n.compare(kp, key); {
		case c == 0:
			if n.pos > s {
				return n, nil
			}
			return nil, nil
		case c < 0:
			r, num = &n.left, childNum(t.cut, &n.left, n, num, true)
		default:
			r, num = &n.right, childNum(t.cut, &n.right, n, num, false)
		}
	}
	return nil, nil
}

// WrittenAfter returns the first entry (in key order) within [lo, hi) whose
// last write is after position s, tombstones included, or nil. A nil lo or
// hi is unbounded. Subtrees whose highest position is at most s are skipped
// without being visited, so the cost follows the number of recent writes.
func (t *Tree) WrittenAfter(lo, hi []byte, s uint64) (*Node, error) {
	num := t.rootNum()
	n, err := resolveAt(t.root, t.ld, t.cut, num)
	if err != nil {
		return nil, err
	}
	return t.writtenAfter(n, num, lo, hi, s)
}

func (t *Tree) writtenAfter(n *Node, num int64, lo, hi []byte, s uint64) (*Node, error) {
	var err error
	for n != nil && n.MaxPos() > s {
		k := n.Key()
		if lo != nil && bytes.Compare(k, lo) < 0 {
			if n, num, err = t.step(n, num, false); err != nil {
				return nil, err
			}
			continue
		}
		if hi != nil && bytes.Compare(k, hi) >= 0 {
			if n, num, err = t.step(n, num, true); err != nil {
				return nil, err
			}
			continue
		}
		l, lnum, err := t.step(n, num, true)
		if err != nil {
			return nil, err
		}
		if hit, err := t.writtenAfter(l, lnum, lo, hi, s); hit != nil || err != nil {
			return hit, err
		}
		if n.pos > s {
			return n, nil
		}
		if n, num, err = t.step(n, num, false); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// Count returns the number of live (non-tombstone) entries. It visits every
// node; it is meant for tests and tools.
func (t *Tree) Count() (int, error) {
	it := t.Ascend(nil)
	c := 0
	for it.Next() {
		c++
	}
	return c, it.Err()
}

// EvictSubtree is Evict for n together with the nodes in memory below it:
// deepest first, it unlinks each node that ok accepts once neither of its
// children is in memory any more, calling evicted for it, for as long as
// more reports true, and then n the same way. A node ok refuses (one not
// yet durable and confirmed, say) keeps itself and its ancestors. It reports
// whether n itself was unlinked, and stale as Evict does (nothing is then
// unlinked).
//
// Evict alone frees a path of nodes in memory one node per turn of a clock,
// bottom first, since a node with a child in memory stays; after writes
// spread over a large tree most of what is in memory is such paths, and a
// clock that evicts only leaves turns many times to free a little.
// EvictSubtree frees a path, or a whole cold subtree, in one step. The
// concurrency rules are Evict's, node by node.
func (t *Tree) EvictSubtree(n *Node, ok func(*Node) bool, evicted func(*Node), more func() bool) (nEvicted, stale bool) {
	ref, parent, found := t.findInMemory(n)
	if !found {
		return false, true
	}
	l := evictBelow(&n.left, ok, evicted, more)
	r := evictBelow(&n.right, ok, evicted, more)
	if !l || !r || parent == nil || ref.kind == AddrNone || !more() {
		return false, false
	}
	if atomic.CompareAndSwapPointer(&ref.p, unsafe.Pointer(n), nil) {
		evicted(n)
		return true, false
	}
	return false, false
}

// evictBelow unlinks the node ref holds and what is in memory below it, as
// EvictSubtree says, and reports whether nothing is left in memory there.
func evictBelow(ref *Ref, ok func(*Node) bool, evicted func(*Node), more func() bool) bool {
	m := ref.Node()
	if m == nil {
		return true
	}
	if ref.kind == AddrNone || !ok(m) || !more() {
		return false
	}
	l := evictBelow(&m.left, ok, evicted, more)
	r := evictBelow(&m.right, ok, evicted, more)
	if !l || !r || !more() {
		return false
	}
	if atomic.CompareAndSwapPointer(&ref.p, unsafe.Pointer(m), nil) {
		evicted(m)
		return true
	}
	return false
}

// findInMemory searches n's key from the root through nodes in memory and
// returns the ref that holds n and n's parent (nil for the root); found is
// false when n is not in memory in this version.
func (t *Tree) findInMemory(n *Node) (ref *Ref, parent *Node, found bool) {
	if t.root == nil {
		return nil, nil, false
	}
	kp, key := n.keyPrefix(), n.Key()
	ref = t.root
	for {
		m := ref.Node()
		if m == nil {
			return nil, nil, false
		}
		c := m.compare(kp, key)
		if c == 0 {
			return ref, parent, m == n
		}
		parent = m
		if c < 0 {
			ref = &m.left
		} else {
			ref = &m.right
		}
	}
}

// Evict unlinks n from this version of the tree, so that the tree reloads
// it from the log through its parent's pointer when it is next needed. It
// finds n's parent by searching n's key from the root through nodes in
// memory. It reports stale when n is not in memory in this version (it was
// replaced by a newer copy, or an ancestor was evicted): n is then held only
// by older versions still being read, and needs no eviction. It keeps (false,
// false) a root, or a node with children in memory: the tree stays resident
// from the root down, so nothing evicted keeps memory alive. Only nodes whose
// afterimage is durable and confirmed active may be evicted, on the latest
// version. Evict may run while a delta is being made on the same version:
// unlinking is one atomic swap, and a delta that copies the parent meanwhile
// either keeps the node in memory (it stays valid; a cache merely stops
// counting it) or copies the cleared pointer and reloads the node from the
// log when it needs it.
func (t *Tree) Evict(n *Node) (evicted, stale bool) {
	keep := func(*Node) bool { return false }
	return t.EvictSubtree(n, keep, func(*Node) {}, func() bool { return true })
}
