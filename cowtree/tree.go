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

// resolve returns the node behind r, loading it if needed.
func resolve(r *Ref, ld Loader) (*Node, error) {
	if r == nil {
		return nil, nil
	}
	if n := r.Node(); n != nil {
		n.touch()
		return n, nil
	}
	if r.kind == AddrNone {
		return nil, nil
	}
	if ld == nil {
		return nil, fmt.Errorf("cowtree: resolve %v: %w", r.Addr(), ErrNotResident)
	}
	n, err := ld.LoadNode(r.Addr())
	if err != nil {
		return nil, fmt.Errorf("cowtree: load %v: %w", r.Addr(), err)
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

// Tracker is an optional interface of a Loader: Installed is called once a
// loaded node has been linked into the tree (and so can be evicted again).
type Tracker interface {
	Installed(n *Node)
}

// RootNode returns the root node (nil for an empty tree).
func (t *Tree) RootNode() (*Node, error) { return resolve(t.root, t.ld) }

// Child resolves a child pointer of a node of this tree.
func (t *Tree) Child(r *Ref) (*Node, error) { return resolve(r, t.ld) }

// Lookup returns the entry for key, tombstones included, or nil.
func (t *Tree) Lookup(key []byte) (*Node, error) {
	kp := prefix(key)
	n, err := resolve(t.root, t.ld)
	for n != nil && err == nil {
		c := n.compare(kp, key)
		switch {
		case c == 0:
			return n, nil
		case c < 0:
			n, err = resolve(&n.left, t.ld)
		default:
			n, err = resolve(&n.right, t.ld)
		}
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
	r := t.root
	for r != nil {
		if r.h >= 0 && r.maxPos <= s {
			return nil, nil // known summary (0 for an empty subtree)
		}
		n := r.Node()
		if n == nil {
			var err error
			if n, err = resolve(r, t.ld); n == nil || err != nil {
				return nil, err
			}
		}
		if n.maxPos <= s {
			return nil, nil
		}
		switch c := n.compare(kp, key); {
		case c == 0:
			if n.pos > s {
				return n, nil
			}
			return nil, nil
		case c < 0:
			r = &n.left
		default:
			r = &n.right
		}
	}
	return nil, nil
}

// WrittenAfter returns the first entry (in key order) within [lo, hi) whose
// last write is after position s, tombstones included, or nil. A nil lo or
// hi is unbounded. Subtrees whose highest position is at most s are skipped
// without being visited, so the cost follows the number of recent writes.
func (t *Tree) WrittenAfter(lo, hi []byte, s uint64) (*Node, error) {
	n, err := resolve(t.root, t.ld)
	if err != nil {
		return nil, err
	}
	return t.writtenAfter(n, lo, hi, s)
}

func (t *Tree) writtenAfter(n *Node, lo, hi []byte, s uint64) (*Node, error) {
	for n != nil && n.maxPos > s {
		k := n.Key()
		if lo != nil && bytes.Compare(k, lo) < 0 {
			r, err := resolve(&n.right, t.ld)
			if err != nil {
				return nil, err
			}
			n = r
			continue
		}
		if hi != nil && bytes.Compare(k, hi) >= 0 {
			l, err := resolve(&n.left, t.ld)
			if err != nil {
				return nil, err
			}
			n = l
			continue
		}
		l, err := resolve(&n.left, t.ld)
		if err != nil {
			return nil, err
		}
		if hit, err := t.writtenAfter(l, lo, hi, s); hit != nil || err != nil {
			return hit, err
		}
		if n.pos > s {
			return n, nil
		}
		r, err := resolve(&n.right, t.ld)
		if err != nil {
			return nil, err
		}
		n = r
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
	kp, key := n.kp, n.Key()
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
