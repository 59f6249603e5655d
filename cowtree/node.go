package cowtree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"
	"unsafe"
)

// AddrKind says how an Addr locates a node in the log.
type AddrKind uint8

const (
	// AddrNone: no address; as a child address it means an empty subtree,
	// as a node's own address it means the node is still being built.
	AddrNone AddrKind = iota
	// AddrIntention: node Off of the active afterimage of the intention at Pos.
	AddrIntention
	// AddrAfterimage: node Off of the afterimage at log position Pos.
	AddrAfterimage
)

// Addr is where a node lives in the log. Every node has an intention address
// from the moment its delta is finished; a node loaded through a physical
// pointer keeps that physical address.
type Addr struct {
	Kind AddrKind
	Off  uint32
	Pos  uint64
}

func (a Addr) String() string {
	switch a.Kind {
	case AddrIntention:
		return fmt.Sprintf("intention(%d,%d)", a.Pos, a.Off)
	case AddrAfterimage:
		return fmt.Sprintf("afterimage(%d,%d)", a.Pos, a.Off)
	}
	return "none"
}

// NoTombstone is MinTomb of a subtree without tombstones.
const NoTombstone = math.MaxUint64

// Node is one entry of the tree and the root of a subtree. A node is
// immutable once the delta that made it is finished; only the in-memory
// pointers to its children may be installed (after a load) or cleared (on
// eviction), atomically.
type Node struct {
	kp      keyPrefix // the key's first 16 bytes: most comparisons end here
	touched uint32    // set on access, cleared by the cache's clock hand (same cache line as kp)
	cached  uint32    // cache accounting: 0 not counted, 1 counted, 2 out of the latest version
	kv      []byte    // key then value, one allocation
	klen    uint32
	off     uint32 // offset within the delta, valid after Finish
	height  int8
	tomb    bool
	pos     uint64 // position of the intention that last wrote the entry
	maxPos  uint64 // highest pos in the subtree
	minTomb uint64 // lowest tombstone pos in the subtree, or NoTombstone
	delta   uint64 // the delta (intention position) that created this node; 0 for loaded nodes
	addr    Addr
	left    Ref
	right   Ref
}

func (n *Node) touch() {
	if atomic.LoadUint32(&n.touched) == 0 {
		atomic.StoreUint32(&n.touched, 1)
	}
}

// Touched reports whether the node was read since the last call, and clears
// the mark (the cache's clock hand).
func (n *Node) Touched() bool { return atomic.SwapUint32(&n.touched, 0) == 1 }

// MarkCached records that a cache counts the node, unless it already does
// or the node has left the latest version (Replaced). It reports whether
// the cache should count it now.
func (n *Node) MarkCached() bool { return atomic.CompareAndSwapUint32(&n.cached, 0, 1) }

// Replaced records that the node is no longer part of the latest version
// (a delta copied or removed it, or it was evicted). It reports whether a
// cache was counting it, so the cache can stop; only the first call does.
func (n *Node) Replaced() bool { return atomic.SwapUint32(&n.cached, 2) == 1 }

// IsReplaced reports whether Replaced was called.
func (n *Node) IsReplaced() bool { return atomic.LoadUint32(&n.cached) == 2 }

// Ref is a child pointer: the child's address in the log and, when it is in
// memory, the child itself. Fresh nodes (not yet reachable by readers) have
// their refs written plainly; refs of published nodes only change through
// atomic install/clear.
type Ref struct {
	p    unsafe.Pointer // *Node
	addr Addr
	// The child's summaries, copied from it when the ref is set, so that a
	// parent's summaries are recomputed without touching its children. h is
	// -1 when unknown (a child of a node loaded from the log).
	h       int8
	maxPos  uint64
	minTomb uint64
}

// Node returns the in-memory child, or nil if it is empty or not resident.
func (r *Ref) Node() *Node { return (*Node)(atomic.LoadPointer(&r.p)) }

// Addr returns the child's address (Kind AddrNone for an empty child, or for
// a child of an unfinished delta).
func (r *Ref) Addr() Addr { return r.addr }

// IsNil reports whether the child is an empty subtree.
func (r *Ref) IsNil() bool { return r.addr.Kind == AddrNone && r.Node() == nil }

// set points a fresh node's ref at n (plain write: the owner is unpublished).
func (r *Ref) set(n *Node) {
	r.p = unsafe.Pointer(n)
	if n == nil {
		r.addr, r.h, r.maxPos, r.minTomb = Addr{}, 0, 0, NoTombstone
	} else {
		r.addr, r.h, r.maxPos, r.minTomb = n.addr, n.height, n.maxPos, n.minTomb
	}
}

// copyFrom copies another ref into a fresh node's ref.
func (r *Ref) copyFrom(o *Ref) {
	r.p = atomic.LoadPointer(&o.p)
	r.addr, r.h, r.maxPos, r.minTomb = o.addr, o.h, o.maxPos, o.minTomb
}

// Key returns the entry's key. The slice must not be modified.
func (n *Node) Key() []byte { return n.kv[:n.klen:n.klen] }

// Value returns the entry's value (nil for a tombstone). The slice must not
// be modified.
func (n *Node) Value() []byte {
	if n.tomb {
		return nil
	}
	return n.kv[n.klen:]
}

// Pos is the position of the intention that last wrote the entry.
func (n *Node) Pos() uint64 { return n.pos }

// Tombstone reports whether the entry is a delete marker.
func (n *Node) Tombstone() bool { return n.tomb }

// MaxPos is the highest Pos in the subtree.
func (n *Node) MaxPos() uint64 { return n.maxPos }

// MinTomb is the lowest tombstone Pos in the subtree, or NoTombstone.
func (n *Node) MinTomb() uint64 { return n.minTomb }

// Height is the subtree height (a leaf has height 1).
func (n *Node) Height() int { return int(n.height) }

// Addr is the node's own address (valid once its delta is finished).
func (n *Node) Addr() Addr { return n.addr }

// Delta is the intention position of the delta that created the node, or 0
// for a node loaded from the log.
func (n *Node) Delta() uint64 { return n.delta }

// Off is the node's offset in its delta's post-order numbering.
func (n *Node) Off() uint32 { return n.off }

// Left and Right return the child pointers.
func (n *Node) Left() *Ref  { return &n.left }
func (n *Node) Right() *Ref { return &n.right }

// Size is the node's approximate memory footprint in bytes, used for cache
// and backpressure accounting.
func (n *Node) Size() int64 { return int64(len(n.kv)) + nodeOverhead }

const nodeOverhead = int64(unsafe.Sizeof(Node{})) + 16

// NodeFields are the stored fields of a node loaded from the log.
type NodeFields struct {
	Key, Value []byte
	Pos        uint64
	Tombstone  bool
	MaxPos     uint64
	MinTomb    uint64
	Height     int
	Left       Addr
	Right      Addr
}

// NewLoaded builds a node read from the log at addr. Children are left
// unresolved; they are loaded through their addresses on demand. The key and
// value are copied.
func NewLoaded(addr Addr, f NodeFields) *Node {
	n := &Node{
		klen:    uint32(len(f.Key)),
		height:  int8(f.Height),
		tomb:    f.Tombstone,
		pos:     f.Pos,
		maxPos:  f.MaxPos,
		minTomb: f.MinTomb,
		addr:    addr,
	}
	n.kv = make([]byte, len(f.Key)+len(f.Value))
	copy(n.kv, f.Key)
	copy(n.kv[len(f.Key):], f.Value)
	n.kp = prefix(f.Key)
	for _, c := range [2]struct {
		r *Ref
		a Addr
	}{{&n.left, f.Left}, {&n.right, f.Right}} {
		c.r.addr, c.r.minTomb = c.a, NoTombstone
		if c.a.Kind != AddrNone {
			c.r.h = -1 // summaries unknown until the child is loaded
		}
	}
	return n
}

// keyPrefix is a key's first 16 bytes as two big-endian numbers,
// zero-padded. Comparing prefixes orders keys correctly whenever the prefixes
// differ, and it reads only the node itself, not the key's separate
// allocation; 16 bytes cover keys that share a namespace ("user:0000...").
type keyPrefix struct{ hi, lo uint64 }

func prefix(key []byte) keyPrefix {
	if len(key) >= 16 {
		return keyPrefix{binary.BigEndian.Uint64(key), binary.BigEndian.Uint64(key[8:])}
	}
	var b [16]byte
	copy(b[:], key)
	return keyPrefix{binary.BigEndian.Uint64(b[:]), binary.BigEndian.Uint64(b[8:])}
}

// compare orders key (with prefix kp) against n's key.
func (n *Node) compare(kp keyPrefix, key []byte) int {
	switch {
	case kp.hi < n.kp.hi:
		return -1
	case kp.hi > n.kp.hi:
		return 1
	case kp.lo < n.kp.lo:
		return -1
	case kp.lo > n.kp.lo:
		return 1
	}
	return bytes.Compare(key, n.Key())
}
