package flusher

import (
	"math/bits"
	"sync"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/processor"
)

// Physical maps an intention position to the position of its active
// afterimage, if known.
type Physical func(intention uint64) (afterimage uint64, ok bool)

// InlineValueMax is the largest value an afterimage node stores itself.
// Larger values are left in the intention that wrote them (already durable
// in the log) and read from there when the node is loaded, so that path
// copying never writes a large value again.
const InlineValueMax = 1024

// InlineHeight is the greatest height of a node that carries a value it did
// not write itself. Path copying rewrites every ancestor of a changed entry,
// each of which would otherwise write its unchanged value again (about
// 10x write amplification for 100-byte values at 100K keys). A node stores its
// value when its delta wrote the entry, or when it sits within InlineHeight
// of the leaves (three quarters of all nodes, rarely copied, and the ones
// most likely to be cold); the rest point at the intention at their Pos,
// which holds the value and is durable before any afterimage refers to it.
// The upper nodes are the ones every reader passes, so they are rarely
// evicted; loading one costs an extra log read (the node cache keeps decoded
// intentions).
const InlineHeight = 2

// storedValue returns what the afterimage node for n stores: its value,
// or nil and true when the value is left in the intention at n.Pos(). A
// value written before epoch (the newest checkpoint cut the delta knows of)
// is never left in its intention: the log below the cut may be trimmed.
// When n knows the value's node in the image of its tree's cut (cut, k:
// see cowtree.Node.ImageValue), the record says so (imageCut, imageNum), and
// a node the rule above would not have store its value points at the image
// instead; otherwise the value is stored. The record names the image even
// when it stores the value, so that a node loaded back from it copies as
// one that never left memory does (afterimages must not depend on what a
// node's cache evicted).
func storedValue(n *cowtree.Node, delta, epoch, cut uint64) (v []byte, inIntention bool, imageCut uint64, imageNum uint32) {
	if n.Tombstone() {
		return nil, false, 0, 0
	}
	v = n.Value()
	away := len(v) > InlineValueMax || (n.Pos() != delta && n.Height() > InlineHeight)
	if n.Pos() < epoch {
		k, ok := n.ImageValue()
		if !ok || cut == 0 || n.Pos() >= cut {
			return v, false, 0, 0
		}
		if away {
			return nil, false, cut, k
		}
		return v, false, cut, k
	}
	if away {
		return nil, true, 0, 0
	}
	return v, false, 0, 0
}

// Serialize turns a delta into its afterimage record, with base as its
// Base (see afterimage.Afterimage). A child in the same delta becomes a self
// pointer; a child of another delta a physical pointer when phys knows that
// delta's active afterimage, else an intention pointer. With a nil phys and
// base = d.Pos, every cross-delta pointer is an intention pointer: the
// canonical form, identical on every node for the same log.
func Serialize(d *processor.Delta, base uint64, phys Physical) (*afterimage.Afterimage, afterimage.PointerCounts) {
	ai := &afterimage.Afterimage{Intention: d.Pos, Base: base, Nodes: make([]afterimage.Node, len(d.Nodes))}
	s := serializer{d: d, phys: phys, cut: d.Tree.CutPos()}
	var key [cowtree.KeyInlineLen]byte
	for i, n := range d.Nodes {
		ai.Nodes[i] = s.node(n, &key)
		ai.Nodes[i].Key = n.Key() // not key: the record keeps every key
	}
	return ai, s.counts
}

// AppendEntry appends the complete log entry of d's afterimage to dst: the
// bytes of entry.AppendAfterimage(dst, Serialize(d, base, phys)), encoded
// node by node without building the record (the flusher's path: no
// allocation when dst has room).
//
// It reads each node once, deciding what it stores as it encodes it (a
// first pass that summed the sizes read every node of a delta twice: a
// cruzd transaction's thousand nodes do not stay in the cache between the
// two), and grows dst as it goes, to powers of two, so that a kept buffer
// (the flusher's) then fits the next entries of about this size.
func AppendEntry(dst []byte, d *processor.Delta, base uint64, phys Physical) ([]byte, afterimage.PointerCounts) {
	s := serializer{d: d, phys: phys, cut: d.Tree.CutPos()}
	var keptStarts [keptNodes]uint32
	starts := keptStarts[:0]
	var ps *[]uint32
	if len(d.Nodes) > keptNodes {
		ps = startsPool.Get().(*[]uint32)
		starts = (*ps)[:0]
	}
	// Room for nodes of nodeGuess bytes at once: an empty buffer is then
	// not grown through every power of two below its entry's size.
	dst = reserve(dst, entry.FrameSize+afterimage.MaxHeaderSize+len(d.Nodes)*nodeGuess)
	dst, start := entry.Begin(dst, afterimage.MaxHeaderSize)
	payload := len(dst)
	dst = afterimage.AppendHeader(dst, d.Pos, base, len(d.Nodes))
	var key [cowtree.KeyInlineLen]byte
	for _, n := range d.Nodes {
		var sv stored
		sv.v, sv.inIntention, sv.cut, sv.num = storedValue(n, d.Pos, d.Epoch, s.cut)
		dst = reserve(dst, afterimage.MaxNodeOverhead+n.KeyLen()+len(sv.v))
		nd := s.nodeStored(n, &sv, &key)
		starts = append(starts, uint32(len(dst)-payload))
		dst = nd.AppendTo(dst)
	}
	dst = reserve(dst, afterimage.OffsetsSize(len(starts)))
	dst = afterimage.AppendOffsets(dst, payload, starts)
	if ps != nil {
		*ps = starts[:0]
		startsPool.Put(ps)
	}
	return entry.Seal(dst, start, entry.TypeAfterimage), s.counts
}

// reserve returns dst with room for n more bytes: dst itself, or a copy
// with a capacity of the next power of two (twice what is needed for one
// larger than maxPooledEntry, which is not kept).
func reserve(dst []byte, n int) []byte {
	need := len(dst) + n
	if cap(dst) >= need {
		return dst
	}
	c := 2 * need
	if need <= maxPooledEntry {
		c = 1 << bits.Len(uint(need-1))
	}
	grown := make([]byte, len(dst), c)
	copy(grown, dst)
	return grown
}

// nodeGuess is about the fewest bytes an afterimage node takes: a short
// key, its value left in its intention, two pointers (cruzd's combined
// SETs: 80 bytes a node on average).
const nodeGuess = 48

// startsPool holds the node start offsets of deltas of more than keptNodes
// nodes (cruzd's combined transactions: about a thousand).
var startsPool = sync.Pool{New: func() any { return new([]uint32) }}

// keptNodes is how many nodes' start offsets AppendEntry keeps on the
// stack: a path of a tree of a billion keys, a few writes' paths of the
// usual trees.
const keptNodes = 48

// stored is what an afterimage node stores of its value (see storedValue).
type stored struct {
	v           []byte
	inIntention bool
	cut         uint64
	num         uint32
}

// serializer converts one delta's nodes, counting pointer kinds.
type serializer struct {
	d      *processor.Delta
	cut    uint64 // the cut of d's tree (0: none)
	phys   Physical
	counts afterimage.PointerCounts
}

// node converts n; the result's Key may alias key (a short key is rebuilt
// there) until the next call with it. (The caller keeps key on its stack:
// a buffer in the serializer would move the serializer to the heap.)
func (s *serializer) node(n *cowtree.Node, key *[cowtree.KeyInlineLen]byte) afterimage.Node {
	var sv stored
	sv.v, sv.inIntention, sv.cut, sv.num = storedValue(n, s.d.Pos, s.d.Epoch, s.cut)
	return s.nodeStored(n, &sv, key)
}

// nodeStored is node for n, whose value is stored as sv says.
func (s *serializer) nodeStored(n *cowtree.Node, sv *stored, key *[cowtree.KeyInlineLen]byte) afterimage.Node {
	return afterimage.Node{
		Key:              n.KeyInline(key),
		Value:            sv.v,
		ValueInIntention: sv.inIntention,
		ValueCut:         sv.cut,
		ValueNum:         sv.num,
		Pos:              n.Pos(),
		Tombstone:        n.Tombstone(),
		MaxPos:           n.MaxPos(),
		MinTomb:          n.MinTomb(),
		Height:           uint8(n.Height()),
		Left:             s.ptr(n.Left()),
		Right:            s.ptr(n.Right()),
		LeftCount:        n.Left().Count(),
		RightCount:       n.Right().Count(),
	}
}

func (s *serializer) ptr(r *cowtree.Ref) afterimage.Ptr {
	a := r.Addr()
	switch {
	case a.Kind == cowtree.AddrNone:
		s.counts.Nil++
		return afterimage.Ptr{}
	case a.Kind == cowtree.AddrIntention && a.Pos == s.d.Pos:
		s.counts.Self++
		return afterimage.SelfPtr(a.Off)
	case a.Kind == cowtree.AddrAfterimage:
		s.counts.Afterimage++
		return afterimage.AfterimagePtr(a.Pos, a.Off)
	}
	if s.phys != nil {
		if at, ok := s.phys(a.Pos); ok {
			s.counts.Afterimage++
			return afterimage.AfterimagePtr(at, a.Off)
		}
	}
	if a.Pos == s.d.Epoch {
		s.counts.Image++ // node n of the newest checkpoint's image
	} else {
		s.counts.Intention++
	}
	return afterimage.IntentionPtr(a.Pos, a.Off)
}
