package afterimage

import (
	"encoding/binary"

	"github.com/cruzlog/cruzdb/internal/wire"
)

// Head is what the first bytes of an afterimage payload say: enough, with
// the payload's length, to find any one node's bytes and checksum and read
// them alone (three small reads of the log instead of the whole entry; see
// log.RangeReader). Every byte of the node read that way is checked against
// its checksum; a wrong header or offsets field leads to bytes that do not
// match it.
type Head struct {
	Intention, Base uint64
	Nodes           int  // how many nodes
	NodesStart      int  // where node 0 starts
	HasOffsets      bool // false for a record written before the offsets
}

// MaxHeadSize is how many leading bytes of a payload ReadHead needs at most.
const MaxHeadSize = MaxHeaderSize

// ReadHead reads the header from prefix, the first bytes of a payload (all
// of it if shorter than MaxHeadSize). An error wraps ErrMalformed.
func ReadHead(prefix []byte) (Head, error) {
	r := wire.NewReader(prefix)
	fields, err := r.ArrayLen(1)
	if err != nil {
		return Head{}, malformed("record", err)
	}
	if fields != numFields && fields != numFieldsNoOffsets {
		return Head{}, malformedf("record has %d fields, want %d", fields, numFields)
	}
	var h Head
	if h.Intention, err = r.Uint(); err != nil {
		return Head{}, malformed("intention", err)
	}
	if h.Base, err = r.Uint(); err != nil {
		return Head{}, malformed("base", err)
	}
	if h.Base > h.Intention {
		return Head{}, malformedf("base %d after the intention %d", h.Base, h.Intention)
	}
	// The prefix is not the whole payload: the count is checked against the
	// payload's length by EntryRange.
	if h.Nodes, err = r.ArrayLenOfPrefix(); err != nil {
		return Head{}, malformed("nodes", err)
	}
	h.NodesStart, h.HasOffsets = r.Offset(), fields == numFields
	return h, nil
}

// EntryRange returns where, in a payload of payloadLen bytes, the offsets
// entry of node off lies, followed by the next node's (which bounds it), if
// any: bytes [start, end) of the payload.
func (h Head) EntryRange(payloadLen int, off uint32) (start, end int, err error) {
	table, _, err := h.TableRange(payloadLen)
	if err != nil {
		return 0, 0, err
	}
	if uint64(off) >= uint64(h.Nodes) {
		return 0, 0, malformedf("node %d requested of an afterimage of %d nodes", off, h.Nodes)
	}
	start = table + offsetEntry*int(off)
	end = start + offsetEntry
	if int(off)+1 < h.Nodes {
		end += offsetEntry
	}
	return start, end, nil
}

// TableRange returns where, in a payload of payloadLen bytes, the offsets
// entries of all the nodes lie, in node order: bytes [start, end) of the
// payload, end being payloadLen.
func (h Head) TableRange(payloadLen int) (start, end int, err error) {
	if !h.HasOffsets {
		return 0, 0, malformedf("record without node offsets")
	}
	if h.Nodes < 0 || h.Nodes > payloadLen/offsetEntry {
		return 0, 0, malformedf("no room for the offsets of %d nodes in %d bytes", h.Nodes, payloadLen)
	}
	start = payloadLen - offsetEntry*h.Nodes
	if start-h.NodesStart < wire.BinHeaderSize(offsetEntry*h.Nodes)+minNodeSize*h.Nodes {
		return 0, 0, malformedf("no room for %d nodes and their offsets in %d bytes", h.Nodes, payloadLen)
	}
	return start, payloadLen, nil
}

// NodeSpan reads, from entries (the bytes EntryRange named), where node off
// lies in a payload of payloadLen bytes, [start, end), and its checksum.
func (h Head) NodeSpan(entries []byte, payloadLen int, off uint32) (start, end int, sum uint32, err error) {
	if len(entries) < offsetEntry {
		return 0, 0, 0, malformedf("offsets entry of %d bytes", len(entries))
	}
	nodesEnd := payloadLen - OffsetsSize(h.Nodes)
	start = int(binary.BigEndian.Uint32(entries))
	sum = binary.BigEndian.Uint32(entries[4:])
	end = nodesEnd
	if int(off)+1 < h.Nodes {
		if len(entries) < 2*offsetEntry {
			return 0, 0, 0, malformedf("offsets entries of %d bytes", len(entries))
		}
		end = int(binary.BigEndian.Uint32(entries[offsetEntry:]))
	}
	if start < h.NodesStart || start >= end || end > nodesEnd {
		return 0, 0, 0, malformedf("node %d at bytes [%d, %d) of a payload whose nodes are at [%d, %d)", off, start, end, h.NodesStart, nodesEnd)
	}
	return start, end, sum, nil
}

// DecodeNodeBytes decodes node off from b, exactly its encoding, after
// checking b against sum. The node is checked as Decode checks it; its key
// and value alias b. An error wraps ErrMalformed.
func DecodeNodeBytes(b []byte, off uint32, sum uint32) (Node, error) {
	if nodeSum(b) != sum {
		return Node{}, malformedf("node %d does not match its checksum", off)
	}
	r := wire.NewReader(b)
	var nd Node
	if err := nd.decode(&r, int(off)); err != nil {
		return Node{}, err
	}
	if r.Len() != 0 {
		return Node{}, malformedf("node %d ends %d bytes before the next node's offset", off, r.Len())
	}
	return nd, nil
}
