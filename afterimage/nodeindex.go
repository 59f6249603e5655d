package afterimage

import (
	"sync"

	"github.com/cruzlog/cruzdb/internal/wire"
)

// NodeIndex reads single nodes of one afterimage payload on demand. A payload
// ends with the offset of every node, so reading node off parses that node
// alone. A payload written without them (an older build) is parsed up to
// the node, remembering where each node parsed so far starts, so reading any
// number of its nodes parses it at most once. Loading evicted nodes one at a
// time (a cold scan reads one or two nodes of each of many afterimages)
// costs then a fraction of decoding whole afterimages: with cruzd's combined
// commits an afterimage holds ~2,000 nodes. Safe for concurrent use.
type NodeIndex struct {
	payload         []byte
	intention, base uint64
	n               int
	hasOffsets      bool // the payload ends with its nodes' offsets and checksums
	nodesEnd        int  // where the nodes end (the offsets field starts)

	mu     sync.Mutex // for payloads without offsets:
	starts []uint32   // byte offsets of nodes 0..len(starts)-1
	next   int        // byte offset after the last node parsed
	err    error      // the first parse error, sticky
}

// NewNodeIndex reads the header of payload, which the index then owns: the
// caller must not modify it. An error wraps ErrMalformed.
func NewNodeIndex(payload []byte) (*NodeIndex, error) {
	in, base, n, start, end, offsets, err := layout(payload)
	if err != nil {
		return nil, err
	}
	x := &NodeIndex{payload: payload, intention: in, base: base, n: n, hasOffsets: offsets != nil, nodesEnd: end, next: start}
	if offsets == nil {
		// Every node takes at least one byte, which bounds the offsets a
		// malformed count can make room for.
		x.starts = make([]uint32, 0, min(n, len(payload)-start))
	}
	return x, nil
}

// Intention, Base and Len are the afterimage's header fields.
func (x *NodeIndex) Intention() uint64 { return x.intention }
func (x *NodeIndex) Base() uint64      { return x.base }
func (x *NodeIndex) Len() int          { return x.n }

// MaxSize bounds the memory the index holds, in bytes, however many of its
// nodes are read: the payload and the node offsets.
func (x *NodeIndex) MaxSize() int64 { return int64(len(x.payload)) + 4*int64(cap(x.starts)) }

// Node decodes node off, checked as Decode checks it. Its key and value
// alias the payload. An error wraps ErrMalformed, also when off is not a
// node of the afterimage, or when the payload's offsets do not bound exactly
// one node there.
func (x *NodeIndex) Node(off uint32) (Node, error) {
	if uint64(off) >= uint64(x.n) {
		return Node{}, malformedf("node %d requested of an afterimage of %d nodes", off, x.n)
	}
	if x.hasOffsets {
		return x.nodeAt(off)
	}
	x.mu.Lock()
	for len(x.starts) <= int(off) && x.err == nil {
		i := len(x.starts)
		r := wire.NewReader(x.payload[x.next:x.nodesEnd])
		var nd Node
		if x.err = nd.decode(&r, i); x.err == nil {
			x.starts = append(x.starts, uint32(x.next))
			x.next += r.Offset()
		}
	}
	if len(x.starts) <= int(off) {
		err := x.err
		x.mu.Unlock()
		return Node{}, err
	}
	at := x.starts[off]
	x.mu.Unlock()
	r := wire.NewReader(x.payload[at:x.nodesEnd])
	var nd Node
	if err := nd.decode(&r, int(off)); err != nil {
		return Node{}, err // parsed once already: cannot fail
	}
	return nd, nil
}

// nodeAt decodes node off from the span the offsets give it, checked
// against its checksum (Decode checks every node's).
func (x *NodeIndex) nodeAt(off uint32) (Node, error) {
	h := Head{Nodes: x.n, NodesStart: x.next, HasOffsets: true}
	es, ee, err := h.EntryRange(len(x.payload), off)
	if err != nil {
		return Node{}, err
	}
	start, end, sum, err := h.NodeSpan(x.payload[es:ee], len(x.payload), off)
	if err != nil {
		return Node{}, err
	}
	return DecodeNodeBytes(x.payload[start:end], off, sum)
}
