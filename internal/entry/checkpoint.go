package entry

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Checkpoint entries (TypeCheckpoint) come in three kinds, told apart by the
// payload's first byte:
//
//   - a cut: a request to checkpoint the state at the cut's own position.
//     Every node's processor handles it alike: the tree at the cut is
//     relocated, each node becoming node n (post-order) of the cut's image.
//     Payload: kind, token uvarint (recognises the requester's own cut),
//     then the database header's payload: the log is trimmed below a cut,
//     position 0 with it, and the cut at the trim point keeps the header.
//   - a chunk: consecutive nodes of a cut's image. Payload: kind, first node
//     number uvarint, then an afterimage payload (afterimage.AppendHeader
//     with Intention = Base = the cut, its nodes and their offsets) whose
//     child pointers are self pointers within the chunk and intention
//     pointers (cut, n) to earlier chunks. Chunks are byte-identical
//     whichever node writes them.
//   - a marker: names the chunks of a complete image; appended only once
//     every chunk is durable. The first marker for a cut after the cut is
//     the cut's active image, as the first afterimage after an intention is
//     its active afterimage. Payload: kind, cut, nodes, bytes, chunk count,
//     then each chunk's position and first node number, all uvarints.
const (
	CheckpointCut    = 1
	CheckpointChunk  = 2
	CheckpointMarker = 3
)

// ErrCheckpointMalformed marks a checkpoint payload that does not decode.
var ErrCheckpointMalformed = errors.New("entry: malformed checkpoint payload")

// ChunkRef locates one chunk of an image.
type ChunkRef struct {
	Pos   uint64 // log position of the chunk entry
	First uint64 // number of its first node
}

// Marker completes the image of the cut at Cut.
type Marker struct {
	Cut    uint64
	Nodes  uint64 // nodes in the image (the tree at the cut)
	Bytes  uint64 // bytes of the chunk entries
	Chunks []ChunkRef
}

// CheckpointKind returns the kind of a checkpoint payload.
func CheckpointKind(payload []byte) (byte, error) {
	if len(payload) == 0 || payload[0] < CheckpointCut || payload[0] > CheckpointMarker {
		return 0, fmt.Errorf("%w: unknown kind", ErrCheckpointMalformed)
	}
	return payload[0], nil
}

// AppendCut appends the complete log entry of a cut with token to dst,
// carrying the database header h.
func AppendCut(dst []byte, token uint64, h *Header) []byte {
	dst, start := begin(dst, 1+binary.MaxVarintLen64+32)
	dst = append(dst, CheckpointCut)
	dst = binary.AppendUvarint(dst, token)
	dst = h.AppendPayload(dst)
	return seal(dst, start, TypeCheckpoint)
}

// DecodeCut returns the token and the header of a cut payload.
func DecodeCut(payload []byte) (uint64, *Header, error) {
	if k, err := CheckpointKind(payload); err != nil || k != CheckpointCut {
		return 0, nil, fmt.Errorf("%w: not a cut", ErrCheckpointMalformed)
	}
	tok, n := uvarint(payload[1:])
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: bad cut token", ErrCheckpointMalformed)
	}
	h, err := decodeHeader(payload[1+n:])
	if err != nil {
		return 0, nil, fmt.Errorf("%w: cut header: %w", ErrCheckpointMalformed, err)
	}
	return tok, h, nil
}

// BeginChunk starts the payload of a chunk whose first node is first, in an
// entry begun with Begin; the afterimage payload follows, and the entry is
// sealed with Seal(dst, start, TypeCheckpoint).
func BeginChunk(dst []byte, first uint64) []byte {
	dst = append(dst, CheckpointChunk)
	return binary.AppendUvarint(dst, first)
}

// DecodeChunk splits a chunk payload into its first node number and its
// afterimage payload (aliasing payload).
func DecodeChunk(payload []byte) (first uint64, ai []byte, err error) {
	if k, err := CheckpointKind(payload); err != nil || k != CheckpointChunk {
		return 0, nil, fmt.Errorf("%w: not a chunk", ErrCheckpointMalformed)
	}
	first, n := uvarint(payload[1:])
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: bad chunk start", ErrCheckpointMalformed)
	}
	return first, payload[1+n:], nil
}

// AppendMarker appends the complete log entry of m to dst.
func AppendMarker(dst []byte, m *Marker) []byte {
	dst, start := begin(dst, 1+(4+2*len(m.Chunks))*binary.MaxVarintLen64)
	dst = append(dst, CheckpointMarker)
	dst = binary.AppendUvarint(dst, m.Cut)
	dst = binary.AppendUvarint(dst, m.Nodes)
	dst = binary.AppendUvarint(dst, m.Bytes)
	dst = binary.AppendUvarint(dst, uint64(len(m.Chunks)))
	for _, c := range m.Chunks {
		dst = binary.AppendUvarint(dst, c.Pos)
		dst = binary.AppendUvarint(dst, c.First)
	}
	return seal(dst, start, TypeCheckpoint)
}

// DecodeMarker decodes and checks a marker payload: its chunks start at
// node 0, with ascending first nodes below Nodes, at ascending positions
// after the cut. The caller checks that they lie before the marker.
func DecodeMarker(payload []byte) (*Marker, error) {
	if k, err := CheckpointKind(payload); err != nil || k != CheckpointMarker {
		return nil, fmt.Errorf("%w: not a marker", ErrCheckpointMalformed)
	}
	b := payload[1:]
	next := func() (uint64, bool) {
		v, n := uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	m := &Marker{}
	var ok1, ok2, ok3, ok4 bool
	m.Cut, ok1 = next()
	m.Nodes, ok2 = next()
	m.Bytes, ok3 = next()
	count, ok4 := next()
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, fmt.Errorf("%w: truncated marker", ErrCheckpointMalformed)
	}
	if count > uint64(len(b))/2 || count > m.Nodes {
		return nil, fmt.Errorf("%w: %d chunks for %d nodes in %d bytes", ErrCheckpointMalformed, count, m.Nodes, len(b))
	}
	if (count == 0) != (m.Nodes == 0) {
		return nil, fmt.Errorf("%w: %d chunks for %d nodes", ErrCheckpointMalformed, count, m.Nodes)
	}
	m.Chunks = make([]ChunkRef, count)
	for i := range m.Chunks {
		pos, ok1 := next()
		first, ok2 := next()
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: truncated chunk list", ErrCheckpointMalformed)
		}
		switch {
		case i == 0 && first != 0,
			i > 0 && (first <= m.Chunks[i-1].First || pos <= m.Chunks[i-1].Pos),
			first >= m.Nodes,
			pos <= m.Cut:
			return nil, fmt.Errorf("%w: chunk %d (position %d, first node %d) out of order", ErrCheckpointMalformed, i, pos, first)
		}
		m.Chunks[i] = ChunkRef{Pos: pos, First: first}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCheckpointMalformed, len(b))
	}
	return m, nil
}

// Locate returns the chunk holding node n of the image and n's offset in it.
func (m *Marker) Locate(n uint64) (pos uint64, off uint32, err error) {
	if n >= m.Nodes {
		return 0, 0, fmt.Errorf("%w: node %d of an image of %d nodes", ErrCheckpointMalformed, n, m.Nodes)
	}
	lo, hi := 0, len(m.Chunks)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if m.Chunks[mid].First <= n {
			lo = mid
		} else {
			hi = mid
		}
	}
	return m.Chunks[lo].Pos, uint32(n - m.Chunks[lo].First), nil
}

// uvarint reads a canonical (shortest) uvarint, so that every payload has one
// encoding; n <= 0 on a truncated, overlong or non-canonical one.
func uvarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n != uvarintLen(v) {
		return 0, -1
	}
	return v, n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
