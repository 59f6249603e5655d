package cowtree

import (
	"bytes"
	"cmp"
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
//
// The layout is for the processor's walks: 160 bytes (a size class), with
// the key's first 16 bytes, the clock mark and the left child pointer in
// the first 64 bytes and the right child pointer at the start of the next,
// with the key's bytes 16..19 (keyExt, kept in the right ref's spare word),
// so a lookup step reads one or two cache lines, and none of the key's own
// allocation for keys of up to 20 bytes. The subtree's summaries (MaxPos,
// MinTomb) are not stored in the node: they follow from its own entry and
// its child pointers' summaries (see Ref), which saves a copy of 16 bytes
// on every node of every path a write copies.
type Node struct {
	kp      keyHead // the key's first 16 bytes (bytes 16..19: keyExt): most comparisons end here
	touched uint32  // set on access, cleared by the cache's clock hand
	cached  uint32  // the node cache's word (see CacheWord)
	left    Ref
	right   Ref
	kv      *byte // key then value, one allocation
	klen    uint32
	vlen    uint32
	pos     uint64 // position of the intention that last wrote the entry
	// The node's own address. A node made by a delta has kind AddrIntention
	// and apos the delta's id from the moment it is made (that is how a
	// delta recognises its own nodes); off is set when the delta finishes.
	apos   uint64
	off    uint32
	akind  AddrKind
	height int8
	tomb   bool
}

func (n *Node) touch() {
	if atomic.LoadUint32(&n.touched) == 0 {
		atomic.StoreUint32(&n.touched, 1)
	}
}

// TakeTouched clears the node's read mark and reports whether it was set,
// that is, whether the node was read since the last call: the node cache's
// clock hand gives such a node a second chance. It changes the mark; cowtree
// only sets it (on every read) and never reads it, so nothing the tree does
// depends on it.
func (n *Node) TakeTouched() bool { return atomic.SwapUint32(&n.touched, 0) == 1 }

// CacheWord returns the word the node keeps for the node cache (package
// flusher/nodecache, which alone reads and writes it, atomically: its
// State). cowtree never reads it, so that nothing the tree does depends on
// cache state.
func (n *Node) CacheWord() *uint32 { return &n.cached }

// Ref is a child pointer: the child's address in the log and, when it is in
// memory, the child itself. Fresh nodes (not yet reachable by readers) have
// their refs written plainly; refs of published nodes only change through
// atomic install/clear.
type Ref struct {
	p unsafe.Pointer // *Node
	// The child's address (kind, pos, off) and its summaries, copied from
	// it when the ref is set, so that a parent's summaries are recomputed
	// without touching its children. h is -1 when they are unknown (a
	// child of a node loaded from the log): maxPos and minTomb are then
	// the parent's own summaries, as the log stored them, which bound the
	// child's (its subtree is part of the parent's), so that the parent's
	// summaries computed from its refs (Node.MaxPos, Node.MinTomb) are
	// exact whether its refs are known or not. A delta learns a ref's
	// summaries before it changes the node's subtree (Delta.update).
	pos     uint64
	maxPos  uint64
	minTomb uint64
	off     uint32
	// cnt is the number of nodes in the child's subtree (0 for an empty
	// one), always known, even when h is not: it is stored with the
	// pointer in the log. It numbers a checkpoint's image (see Tree.Cut).
	cnt  uint32
	kind AddrKind
	h    int8
	// aux is a word of the node that holds the ref, not of the child: the
	// ref's padding has room for it, so Node stays 160 bytes. Nothing
	// that sets a ref changes it.
	//   - In a node's left ref it is the node's own image value number
	//     plus one, 0 for none (see Node.ImageValue, setImageValue).
	//   - In a node's right ref it is bytes 16..19 of the node's key,
	//     big-endian, zero-padded (0 for a key of at most 16 bytes): with
	//     Node.kp, the first 20 bytes of the key inline (see keyPrefix,
	//     Node.keyExt). setKV sets it; a copy of a node copies it.
	//   - A ref outside a node (a Tree's root) leaves it 0.
	aux uint32
}

// Node returns the in-memory child, or nil if it is empty or not resident.
func (r *Ref) Node() *Node { return (*Node)(atomic.LoadPointer(&r.p)) }

// Addr returns the child's address (Kind AddrNone for an empty child, or for
// a child of an unfinished delta).
func (r *Ref) Addr() Addr { return Addr{Kind: r.kind, Off: r.off, Pos: r.pos} }

// Count is the number of nodes in the child's subtree (0 for an empty one).
func (r *Ref) Count() uint32 { return r.cnt }

func (r *Ref) setAddr(a Addr) { r.kind, r.off, r.pos = a.Kind, a.Off, a.Pos }

// IsNil reports whether the child is an empty subtree.
func (r *Ref) IsNil() bool { return r.kind == AddrNone && r.Node() == nil }

// set points a fresh node's ref at n (plain write: the owner is unpublished).
func (r *Ref) set(n *Node) {
	if n == nil {
		*r = Ref{minTomb: NoTombstone, aux: r.aux}
	} else {
		r.kind, r.off, r.pos = n.akind, n.off, n.apos
		r.learn(n)
	}
}

// learn points a fresh node's ref at n, its child, and takes n's summaries,
// keeping the address the ref has. A ref that already points at n is not
// written again: a pointer store costs a write barrier while the collector
// marks, and a delta's writes refresh the same refs over and over (each
// write's way back up its path, and Delta.flushPath).
func (r *Ref) learn(n *Node) {
	if r.p != unsafe.Pointer(n) {
		r.p = unsafe.Pointer(n)
	}
	r.h, r.maxPos, r.minTomb, r.cnt = n.height, n.MaxPos(), n.MinTomb(), n.count()
}

// copyFrom copies another ref into a fresh node's ref.
func (r *Ref) copyFrom(o *Ref) {
	r.p = atomic.LoadPointer(&o.p) // may be cleared by Evict meanwhile
	r.pos, r.maxPos, r.minTomb, r.off, r.kind, r.h, r.cnt = o.pos, o.maxPos, o.minTomb, o.off, o.kind, o.h, o.cnt
}

// Key returns the entry's key. The slice must not be modified.
func (n *Node) Key() []byte { return unsafe.Slice(n.kv, n.klen) }

// KeyLen is len(n.Key()), read from the node alone.
func (n *Node) KeyLen() int { return int(n.klen) }

// KeyInlineLen is the length of the longest key a node keeps whole inline
// (its first 16 bytes in the node's first cache line, bytes 16..19 in the
// right child ref's spare word): KeyInline rebuilds such a key from the
// node alone.
const KeyInlineLen = keyPrefixLen

// KeyInline returns the entry's key like Key, but a key of up to
// KeyInlineLen bytes (cruzd's string keys are 17: a type byte and
// redis-benchmark's 16) is rebuilt in buf from the node's inline prefix,
// without reading the key's own allocation, which for the nodes a delta copied (most of an
// afterimage) was last touched when their entries were written. The
// result is buf's or the node's; it must not be modified.
func (n *Node) KeyInline(buf *[KeyInlineLen]byte) []byte {
	if n.klen > KeyInlineLen {
		return n.Key()
	}
	binary.BigEndian.PutUint64(buf[:8], n.kp.hi)
	binary.BigEndian.PutUint64(buf[8:16], n.kp.lo)
	binary.BigEndian.PutUint32(buf[16:], n.keyExt())
	return buf[:n.klen]
}

// Value returns the entry's value (nil for a tombstone). The slice must not
// be modified.
func (n *Node) Value() []byte {
	if n.tomb {
		return nil
	}
	if n.vlen == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(n.kv), n.klen)), n.vlen)
}

// Pos is the position of the intention that last wrote the entry.
func (n *Node) Pos() uint64 { return n.pos }

// ImageValue reports where else the node's value is kept when it was
// written before its tree's newest checkpoint cut c (Pos < c): the value is
// that of node k of c's image (the node with this key in the cut's tree),
// which holds every value inline. A copy of a node of the cut's tree learns
// k from the descent's numbering (see Tree.Cut), a copy of a later node from
// that node, and a node loaded from the log from its afterimage. An
// afterimage can then point at the value instead of storing it again, and
// the intention that wrote it may be trimmed. ok is false when the node has
// no such number: its value was written at or after the cut, the tree knew
// no cut when the node was made, or it was loaded from an afterimage that
// recorded none.
func (n *Node) ImageValue() (k uint32, ok bool) {
	if n.left.aux == 0 {
		return 0, false
	}
	return n.left.aux - 1, true
}

func (n *Node) setImageValue(k int64) {
	if k < 0 || k >= math.MaxUint32 {
		n.left.aux = 0
		return
	}
	n.left.aux = uint32(k) + 1
}

// Tombstone reports whether the entry is a delete marker.
func (n *Node) Tombstone() bool { return n.tomb }

// MaxPos is the highest Pos in the subtree.
func (n *Node) MaxPos() uint64 { return max(n.pos, n.left.maxPos, n.right.maxPos) }

// MinTomb is the lowest tombstone Pos in the subtree, or NoTombstone.
func (n *Node) MinTomb() uint64 {
	t := min(n.left.minTomb, n.right.minTomb)
	if n.tomb {
		t = min(t, n.pos)
	}
	return t
}

// Count is the number of nodes in the subtree (tombstones included).
func (n *Node) Count() uint64 { return uint64(n.count()) }

func (n *Node) count() uint32 { return 1 + n.left.cnt + n.right.cnt }

// Height is the subtree height (a leaf has height 1).
func (n *Node) Height() int { return int(n.height) }

// Addr is the node's own address (valid once its delta is finished).
func (n *Node) Addr() Addr { return Addr{Kind: n.akind, Off: n.off, Pos: n.apos} }

// Delta is the intention position of the delta that created the node, or 0
// for a node loaded from the log.
func (n *Node) Delta() uint64 { return n.delta() }

func (n *Node) delta() uint64 {
	if n.akind == AddrIntention {
		return n.apos
	}
	return 0
}

// Off is the node's offset in its delta's post-order numbering.
func (n *Node) Off() uint32 { return n.off }

// Left and Right return the child pointers.
func (n *Node) Left() *Ref  { return &n.left }
func (n *Node) Right() *Ref { return &n.right }

// Size is the node's approximate memory footprint in bytes, used for cache
// and backpressure accounting.
func (n *Node) Size() int64 { return int64(n.klen) + int64(n.vlen) + nodeOverhead }

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
	// LeftCount and RightCount are the children's subtree sizes (0 for
	// an empty child).
	LeftCount, RightCount uint32
	// ImageValue is k+1 when the afterimage says the value is that of node
	// k of the image of the cut before the node's delta (see
	// Node.ImageValue), 0 when it says nothing.
	ImageValue uint32
}

// NewLoaded builds a node read from the log at addr. Children are left
// unresolved; they are loaded through their addresses on demand. The key and
// value are copied.
func NewLoaded(addr Addr, f NodeFields) *Node {
	n := &Node{
		height: int8(f.Height),
		tomb:   f.Tombstone,
		pos:    f.Pos,
		akind:  addr.Kind,
		apos:   addr.Pos,
		off:    addr.Off,
	}
	n.setKV(joinKV(f.Key, f.Value), len(f.Key))
	n.left.aux = f.ImageValue
	for _, c := range [2]struct {
		r   *Ref
		a   Addr
		cnt uint32
	}{{&n.left, f.Left, f.LeftCount}, {&n.right, f.Right, f.RightCount}} {
		c.r.setAddr(c.a)
		c.r.cnt = c.cnt
		c.r.minTomb = NoTombstone
		if c.a.Kind != AddrNone {
			// Summaries unknown until the child is loaded: the node's
			// own stand in for them (see Ref).
			c.r.h, c.r.maxPos, c.r.minTomb = -1, f.MaxPos, f.MinTomb
		}
	}
	return n
}

// joinKV copies key and value into one allocation.
func joinKV(key, value []byte) []byte {
	kv := make([]byte, len(key)+len(value))
	copy(kv, key)
	copy(kv[len(key):], value)
	return kv
}

// setKV points the node at kv, whose first klen bytes are the key (keys are
// never empty, so kv always has a first byte to point at), and sets the
// key prefix inline: its first 16 bytes in kp, bytes 16..19 in right.aux.
func (n *Node) setKV(kv []byte, klen int) {
	n.kv, n.klen, n.vlen = unsafe.SliceData(kv), uint32(klen), uint32(len(kv)-klen)
	p := prefix(kv[:klen])
	n.kp, n.right.aux = p.keyHead, p.x
}

// keyExt is bytes 16..19 of the node's key (see Ref.aux).
func (n *Node) keyExt() uint32 { return n.right.aux }

// keyPrefix returns the node's key prefix, read from the node alone.
func (n *Node) keyPrefix() keyPrefix { return keyPrefix{n.kp, n.keyExt()} }

// keyHead is a key's first 16 bytes as two big-endian numbers,
// zero-padded: the part of its prefix a node keeps in its first cache line.
type keyHead struct{ hi, lo uint64 }

// keyPrefixLen is the number of a key's first bytes that keyPrefix holds.
const keyPrefixLen = 20

// keyPrefix is a key's first 20 bytes as three big-endian numbers,
// zero-padded: bytes 0..15 in keyHead, 16..19 in x. Comparing prefixes
// orders keys correctly whenever the prefixes differ, and a node's prefix
// is inline (Node.kp and Node.keyExt), so the comparison reads only the
// node, not the key's separate allocation; 20 bytes cover keys that share
// a namespace ("user:0000...") and cruzd's metadata keys of 16-byte names.
type keyPrefix struct {
	keyHead
	x uint32
}

// prefix computes key's prefix: once per lookup, not per node.
func prefix(key []byte) keyPrefix {
	if len(key) >= keyPrefixLen {
		return keyPrefix{
			keyHead{binary.BigEndian.Uint64(key), binary.BigEndian.Uint64(key[8:])},
			binary.BigEndian.Uint32(key[16:]),
		}
	}
	var b [keyPrefixLen]byte
	copy(b[:], key)
	return keyPrefix{
		keyHead{binary.BigEndian.Uint64(b[:]), binary.BigEndian.Uint64(b[8:])},
		binary.BigEndian.Uint32(b[16:]),
	}
}

// compare orders key (with prefix kp) against n's key.
//
// When the prefixes are equal and either key is at most 20 bytes long, that
// key is the other's first bytes (the prefix pads with zeros, so any bytes
// of the longer key past the shorter one's end, within the 20, are zeros
// too): the keys are ordered by length, and n's key, a separate allocation,
// is not read. This is every comparison that ends a lookup of a key of up
// to 20 bytes. Two longer keys compare from their 21st byte on. The first
// 16 bytes are in the node's first cache line, the next 4 (keyExt) in the
// second, next to the right child pointer; they are read only when the
// first 16 tie.
func (n *Node) compare(kp keyPrefix, key []byte) int {
	if kp.hi != n.kp.hi {
		if kp.hi < n.kp.hi {
			return -1
		}
		return 1
	}
	if kp.lo != n.kp.lo {
		if kp.lo < n.kp.lo {
			return -1
		}
		return 1
	}
	if x := n.keyExt(); kp.x != x {
		if kp.x < x {
			return -1
		}
		return 1
	}
	if len(key) <= keyPrefixLen || n.klen <= keyPrefixLen {
		return cmp.Compare(len(key), int(n.klen))
	}
	return bytes.Compare(key[keyPrefixLen:], n.Key()[keyPrefixLen:])
}
