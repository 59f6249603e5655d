package afterimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/cruzlog/cruzdb/internal/wire"
)

// ErrMalformed marks a payload that does not decode as an afterimage, or an
// afterimage that breaks a structural rule (see Validate). The caller that
// knows the log position turns it into corruption (entry.Corrupt).
var ErrMalformed = errors.New("afterimage: malformed payload")

// NoTombstone is Node.MinTomb of a subtree without tombstones.
const NoTombstone = math.MaxUint64

// Field counts of the payload's arrays (see AppendPayload).
const (
	numFields = 4
	// numFieldsNoOffsets is the record written before the node offsets
	// existed; it is still read.
	numFieldsNoOffsets = 3
	nodeFields         = 12

	// Smallest encodings, to refuse impossible lengths: a node is a
	// fixarray and twelve one-byte values.
	minNodeSize = 13
)

// EncodedSize is the exact number of bytes AppendPayload appends.
func (a *Afterimage) EncodedSize() int {
	n := a.headerSize()
	for i := range a.Nodes {
		n += a.Nodes[i].encodedSize()
	}
	return n + OffsetsSize(len(a.Nodes))
}

func (a *Afterimage) headerSize() int {
	return 1 + wire.UintSize(a.Intention) + wire.UintSize(a.Base) + wire.ArrayLenSize(len(a.Nodes))
}

// OffsetsSize is the number of bytes of the offsets field of an afterimage
// of n nodes (see AppendOffsets).
func OffsetsSize(n int) int { return wire.BinHeaderSize(offsetEntry*n) + offsetEntry*n }

// offsetEntry is the size of one node's entry in the offsets field: where
// the node starts, and the CRC-32C of its bytes.
const offsetEntry = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func nodeSum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// appendOffsetEntry appends the entry of the node encoded in b, which
// starts at byte at of the payload.
func appendOffsetEntry(dst []byte, at int, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(at))
	return binary.BigEndian.AppendUint32(dst, nodeSum(b))
}

// MaxNodeOverhead bounds what a node's encoding takes beyond its key and
// value: array header, two bin headers, five uints, two bools, the height
// and two pointers of at most an array header and three uints.
const MaxNodeOverhead = 1 + 2*wire.MaxBytesOverhead + 5*wire.MaxUintSize + 2 + 2 +
	2*(1+3*wire.MaxUintSize) + 2*wire.MaxUintSize

// maxSize is a cheap upper bound of EncodedSize.
func (a *Afterimage) maxSize() int {
	n := MaxHeaderSize + OffsetsSize(len(a.Nodes))
	for i := range a.Nodes {
		n += a.Nodes[i].MaxEncodedSize()
	}
	return n
}

func (nd *Node) encodedSize() int {
	n := 1 + wire.BytesSize(nd.Key) + wire.BytesSize(nd.Value) +
		wire.UintSize(nd.Pos) + 2 + wire.UintSize(nd.MaxPos) +
		wire.UintSize(uint64(nd.Height)) + nd.Left.encodedSize() + nd.Right.encodedSize() +
		wire.UintSize(uint64(nd.LeftCount)) + wire.UintSize(uint64(nd.RightCount))
	if nd.ValueCut != 0 {
		n += wire.UintSize(nd.ValueCut) + wire.UintSize(uint64(nd.ValueNum)) // and an array header for the bool
	}
	if nd.MinTomb == NoTombstone {
		n++
	} else {
		n += wire.UintSize(nd.MinTomb)
	}
	return n
}

func (p Ptr) encodedSize() int {
	switch p.Kind {
	case PtrNil:
		return 1
	case PtrSelf:
		return 2 + wire.UintSize(uint64(p.Off))
	}
	return 2 + wire.UintSize(p.Pos) + wire.UintSize(uint64(p.Off))
}

// AppendPayload appends the msgpack payload of a to dst and returns the
// extended slice; it grows dst at most once, and not at all if dst has room.
// The payload is one msgpack array in canonical (shortest) form, byte for
// byte what msgpack.Encoder's primitives write:
//
//	[intention uint, base uint, [node, ...], offsets bin]
//
//	node = [key bin|nil, value bin|nil, pos uint, tombstone bool,
//	        maxpos uint, mintomb uint|nil, height uint, left ptr, right ptr,
//	        value-at, left-count uint, right-count uint]
//
//	value-at = bool                    ValueInIntention (false: Value here)
//	         | [cut uint, num uint]    ValueCut, ValueNum
//
//	ptr  = nil                        PtrNil
//	     | [1, off uint]              PtrSelf
//	     | [2, pos uint, off uint]    PtrAfterimage
//	     | [3, pos uint, off uint]    PtrIntention
//
// offsets holds, for each node in order, the byte offset of its encoding
// from the start of the payload and the CRC-32C of that encoding (two
// uint32, big-endian), in a bin written in its shortest form, so that a
// reader finds it from the end of the payload without parsing the nodes and
// reads any one node alone, from the whole payload (NodeIndex) or from just
// the bytes it needs (Head), with the node's own checksum standing in for the
// envelope's; it costs 8 bytes a node, about 12 % of a typical afterimage.
// Records of three fields, written before the offsets existed, are still
// read.
//
// mintomb is nil for NoTombstone, the common case, which would otherwise take
// 9 bytes. A nil key or value is written as msgpack nil and an empty one as
// an empty bin, so the difference survives a round trip.
//
// The same afterimage always gives the same bytes. It encodes what a holds
// without checking it (see Validate), except that fields a pointer's kind
// does not use are not written: Pos and Off of a PtrNil, Pos of a PtrSelf. A
// pointer of an unknown kind is written with its kind, Pos and Off, and
// fails to decode. a is only read.
func (a *Afterimage) AppendPayload(dst []byte) []byte {
	if room := cap(dst) - len(dst); room < a.maxSize() {
		if need := a.EncodedSize(); room < need {
			grown := make([]byte, len(dst), len(dst)+need)
			copy(grown, dst)
			dst = grown
		}
	}
	p0 := len(dst)
	dst = AppendHeader(dst, a.Intention, a.Base, len(a.Nodes))
	for i := range a.Nodes {
		dst = a.Nodes[i].AppendTo(dst)
	}
	dst = wire.AppendBinHeader(dst, offsetEntry*len(a.Nodes))
	off := a.headerSize()
	for i := range a.Nodes {
		size := a.Nodes[i].encodedSize()
		dst = appendOffsetEntry(dst, off, dst[p0+off:p0+off+size])
		off += size
	}
	return dst
}

// MaxHeaderSize bounds what AppendHeader appends.
const MaxHeaderSize = 1 + 2*wire.MaxUintSize + wire.MaxArrayLenSize

// AppendHeader appends the start of an afterimage payload: the intention,
// the base and the number of nodes that must follow, each appended with
// Node.AppendTo, and then AppendOffsets. Together they give exactly the bytes
// of AppendPayload; they let a writer encode nodes as it makes them, without
// an Afterimage record.
func AppendHeader(dst []byte, intention, base uint64, nodes int) []byte {
	dst = wire.AppendArrayLen(dst, numFields)
	dst = wire.AppendUint(dst, intention)
	dst = wire.AppendUint(dst, base)
	return wire.AppendArrayLen(dst, nodes)
}

// AppendOffsets appends the last field of an afterimage payload that starts
// at dst[payload:] and whose nodes end dst: for each node, where it starts
// (starts[i] for node i, in bytes from the start of the payload, as the
// writer of AppendHeader and Node.AppendTo saw them) and the checksum of its
// bytes.
func AppendOffsets(dst []byte, payload int, starts []uint32) []byte {
	end := len(dst) - payload
	dst = wire.AppendBinHeader(dst, offsetEntry*len(starts))
	for i, s := range starts {
		next := end
		if i+1 < len(starts) {
			next = int(starts[i+1])
		}
		dst = appendOffsetEntry(dst, int(s), dst[payload+int(s):payload+next])
	}
	return dst
}

// MaxEncodedSize bounds the bytes AppendTo appends for nd.
func (nd *Node) MaxEncodedSize() int { return MaxNodeOverhead + len(nd.Key) + len(nd.Value) }

// AppendTo appends the encoding of one node of an afterimage payload (see
// AppendHeader). nd is only read.
func (nd *Node) AppendTo(dst []byte) []byte {
	dst = wire.AppendArrayLen(dst, nodeFields)
	dst = wire.AppendBytes(dst, nd.Key)
	dst = wire.AppendBytes(dst, nd.Value)
	dst = wire.AppendUint(dst, nd.Pos)
	dst = wire.AppendBool(dst, nd.Tombstone)
	dst = wire.AppendUint(dst, nd.MaxPos)
	if nd.MinTomb == NoTombstone {
		dst = wire.AppendNil(dst)
	} else {
		dst = wire.AppendUint(dst, nd.MinTomb)
	}
	dst = wire.AppendUint(dst, uint64(nd.Height))
	dst = nd.Left.appendTo(dst)
	dst = nd.Right.appendTo(dst)
	if nd.ValueCut != 0 {
		dst = wire.AppendArrayLen(dst, 2)
		dst = wire.AppendUint(dst, nd.ValueCut)
		dst = wire.AppendUint(dst, uint64(nd.ValueNum))
	} else {
		dst = wire.AppendBool(dst, nd.ValueInIntention)
	}
	dst = wire.AppendUint(dst, uint64(nd.LeftCount))
	return wire.AppendUint(dst, uint64(nd.RightCount))
}

func (p Ptr) appendTo(dst []byte) []byte {
	switch p.Kind {
	case PtrNil:
		return wire.AppendNil(dst)
	case PtrSelf:
		dst = wire.AppendArrayLen(dst, 2)
		dst = wire.AppendUint(dst, uint64(p.Kind))
		return wire.AppendUint(dst, uint64(p.Off))
	}
	dst = wire.AppendArrayLen(dst, 3)
	dst = wire.AppendUint(dst, uint64(p.Kind))
	dst = wire.AppendUint(dst, p.Pos)
	return wire.AppendUint(dst, uint64(p.Off))
}

// Decode decodes and validates an afterimage payload (see Validate). The
// result does not alias payload: the keys and values of all nodes are
// sub-slices of one new backing array holding just those bytes,
// capacity-limited to their length, so retaining any one of them retains that
// array. It allocates three times (the Afterimage, its Nodes, the backing
// array).
//
// Decode reads any msgpack form of the fields: integers of any width
// (non-negative signed ones too; a mintomb of math.MaxUint64 as a number),
// str as well as bin. Re-encoding gives the canonical form. An error wraps
// ErrMalformed. Decode never panics and never allocates from a length the
// payload cannot hold. payload is only read.
func Decode(payload []byte) (*Afterimage, error) {
	a, total, err := decode(payload)
	if err != nil {
		return nil, err
	}
	a.detach(total)
	return a, nil
}

// DecodeNoCopy is Decode whose result aliases payload: keys and values are
// sub-slices of payload (capacity-limited, so appending to one never writes
// into payload). The caller must own payload and must not modify it while
// the afterimage, or any slice taken from it, is in use. It allocates twice.
func DecodeNoCopy(payload []byte) (*Afterimage, error) {
	a, _, err := decode(payload)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// DecodeNode decodes only node off of an afterimage payload, for resolving
// one pointer without decoding the whole afterimage (a NodeIndex used once:
// to read several nodes of one payload, keep a NodeIndex). Only node off is
// parsed (in a record without offsets, the nodes before it too, not kept),
// and it is checked as Decode checks it. Its key and value share one
// new allocation; they do not alias payload. An error wraps ErrMalformed,
// also when off is not a node of the afterimage.
func DecodeNode(payload []byte, off uint32) (Node, error) {
	x, err := NewNodeIndex(payload)
	if err != nil {
		return Node{}, err
	}
	nd, err := x.Node(off)
	if err != nil {
		return Node{}, err
	}
	var c copier
	c.buf = make([]byte, len(nd.Key)+len(nd.Value))
	nd.Key = c.take(nd.Key)
	nd.Value = c.take(nd.Value)
	return nd, nil
}

func malformed(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
}

func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func readIntentionAndCount(r *wire.Reader) (uint64, uint64, int, error) {
	pos, base, n, _, err := readHeader(r)
	return pos, base, n, err
}

// readHeader reads the record's header, and reports whether the record ends
// with the node offsets.
func readHeader(r *wire.Reader) (pos, base uint64, n int, hasOffsets bool, err error) {
	fields, err := r.ArrayLen(1)
	if err != nil {
		return 0, 0, 0, false, malformed("record", err)
	}
	if fields != numFields && fields != numFieldsNoOffsets {
		return 0, 0, 0, false, malformedf("record has %d fields, want %d", fields, numFields)
	}
	pos, base, n, err = readCounts(r)
	return pos, base, n, fields == numFields, err
}

func readCounts(r *wire.Reader) (uint64, uint64, int, error) {
	pos, err := r.Uint()
	if err != nil {
		return 0, 0, 0, malformed("intention", err)
	}
	base, err := r.Uint()
	if err != nil {
		return 0, 0, 0, malformed("base", err)
	}
	if base > pos {
		return 0, 0, 0, malformedf("base %d after the intention %d", base, pos)
	}
	n, err := r.ArrayLen(minNodeSize)
	if err != nil {
		return 0, 0, 0, malformed("nodes", err)
	}
	return pos, base, n, nil
}

// layout reads the header of payload and finds its node offsets: the last
// field, a bin of 8 bytes a node in its shortest form (which a reader can
// find from the end of the payload, without parsing the nodes). offsets is
// nil for a record written without them; nodesEnd is where the nodes must
// end. nodesStart is where node 0 starts.
func layout(payload []byte) (pos, base uint64, n, nodesStart, nodesEnd int, offsets []byte, err error) {
	r := wire.NewReader(payload)
	pos, base, n, has, err := readHeader(&r)
	if err != nil {
		return 0, 0, 0, 0, 0, nil, err
	}
	nodesStart, nodesEnd = r.Offset(), len(payload)
	if has {
		size := OffsetsSize(n)
		if size > len(payload)-nodesStart {
			return 0, 0, 0, 0, 0, nil, malformedf("no room for the offsets of %d nodes", n)
		}
		at := len(payload) - size
		want := wire.AppendBinHeader(make([]byte, 0, 5), offsetEntry*n)
		if !bytes.Equal(payload[at:at+len(want)], want) {
			return 0, 0, 0, 0, 0, nil, malformedf("the payload does not end with the offsets of %d nodes", n)
		}
		nodesEnd, offsets = at, payload[at+len(want):]
	}
	return pos, base, n, nodesStart, nodesEnd, offsets, nil
}

// DecodeInto decodes and validates payload into a, reusing the capacity of
// a.Nodes; it allocates only if the afterimage has more nodes than that
// capacity. As with DecodeNoCopy, keys and values alias payload, which the
// caller must own and leave unmodified while a is in use. An afterimage
// without nodes leaves a.Nodes empty, not necessarily nil. On error, a holds
// an unspecified partial decode. Errors are those of Decode.
func DecodeInto(a *Afterimage, payload []byte) error {
	_, err := decodeInto(a, payload)
	return err
}

// decode decodes payload into a new afterimage whose slices alias payload,
// and returns the total length of its byte slices.
func decode(payload []byte) (*Afterimage, int, error) {
	a := new(Afterimage)
	total, err := decodeInto(a, payload)
	if err != nil {
		return nil, 0, err
	}
	return a, total, nil
}

// decodeInto decodes payload into a, whose slices then alias payload, and
// returns the total length of its byte slices.
func decodeInto(a *Afterimage, payload []byte) (int, error) {
	pos, base, n, start, end, offsets, err := layout(payload)
	if err != nil {
		return 0, err
	}
	r := wire.NewReaderAt(payload[:end], start)
	a.Intention, a.Base = pos, base
	if n <= cap(a.Nodes) {
		a.Nodes = a.Nodes[:n]
	} else {
		a.Nodes = make([]Node, n)
	}
	total := 0
	for i := range a.Nodes {
		at := r.Offset()
		if offsets != nil {
			if want := binary.BigEndian.Uint32(offsets[offsetEntry*i:]); int(want) != at {
				return 0, malformedf("node %d starts at byte %d, the offsets say %d", i, at, want)
			}
		}
		nd := &a.Nodes[i]
		if err := nd.decode(&r, i); err != nil {
			return 0, err
		}
		if offsets != nil {
			if sum := binary.BigEndian.Uint32(offsets[offsetEntry*i+4:]); nodeSum(payload[at:r.Offset()]) != sum {
				return 0, malformedf("node %d does not match its checksum", i)
			}
		}
		total += len(nd.Key) + len(nd.Value)
	}
	if err := r.Finish(); err != nil {
		return 0, malformed("record", err)
	}
	return total, nil
}

// decode reads node i into nd (its slices alias the reader's buffer) and
// checks it.
func (nd *Node) decode(r *wire.Reader, i int) error {
	m, err := r.ArrayLen(1)
	if err != nil {
		return malformed(fmt.Sprintf("node %d", i), err)
	}
	if m != nodeFields {
		return malformedf("node %d has %d fields, want %d", i, m, nodeFields)
	}
	if nd.Key, err = r.BytesOrNil(); err != nil {
		return malformed(fmt.Sprintf("node %d key", i), err)
	}
	if nd.Value, err = r.BytesOrNil(); err != nil {
		return malformed(fmt.Sprintf("node %d value", i), err)
	}
	if nd.Pos, err = r.Uint(); err != nil {
		return malformed(fmt.Sprintf("node %d pos", i), err)
	}
	if nd.Tombstone, err = r.Bool(); err != nil {
		return malformed(fmt.Sprintf("node %d tombstone", i), err)
	}
	if nd.MaxPos, err = r.Uint(); err != nil {
		return malformed(fmt.Sprintf("node %d maxpos", i), err)
	}
	if r.TryNil() {
		nd.MinTomb = NoTombstone
	} else if nd.MinTomb, err = r.Uint(); err != nil {
		return malformed(fmt.Sprintf("node %d mintomb", i), err)
	}
	h, err := r.UintMax(math.MaxUint8)
	if err != nil {
		return malformed(fmt.Sprintf("node %d height", i), err)
	}
	nd.Height = uint8(h)
	if nd.Left, err = decodePtr(r); err != nil {
		return malformed(fmt.Sprintf("node %d left", i), err)
	}
	if nd.Right, err = decodePtr(r); err != nil {
		return malformed(fmt.Sprintf("node %d right", i), err)
	}
	if err := decodeValueAt(r, nd); err != nil {
		return malformed(fmt.Sprintf("node %d value-in-intention", i), err)
	}
	lc, err := r.UintMax(math.MaxUint32)
	if err != nil {
		return malformed(fmt.Sprintf("node %d left count", i), err)
	}
	rc, err := r.UintMax(math.MaxUint32)
	if err != nil {
		return malformed(fmt.Sprintf("node %d right count", i), err)
	}
	nd.LeftCount, nd.RightCount = uint32(lc), uint32(rc)
	return nd.check(i)
}

// decodeValueAt reads a node's tenth field: a bool (value in the
// intention, or here) or [cut, num] (value in an image).
func decodeValueAt(r *wire.Reader, nd *Node) error {
	var err error
	if nd.ValueInIntention, err = r.Bool(); err == nil {
		return nil
	}
	m, aerr := r.ArrayLen(1)
	if aerr != nil {
		return err // neither: report the bool expected
	}
	if m != 2 {
		return errPtr(fmt.Sprintf("image value has %d fields, want 2", m))
	}
	if nd.ValueCut, err = r.Uint(); err != nil {
		return err
	}
	num, err := r.UintMax(math.MaxUint32)
	if err != nil {
		return err
	}
	nd.ValueNum = uint32(num)
	if nd.ValueCut == 0 {
		return errPtr("image value of cut 0")
	}
	return nil
}

// errPtr is a reason a pointer does not decode; decodePtr's caller adds
// where.
type errPtr string

func (e errPtr) Error() string { return string(e) }

func decodePtr(r *wire.Reader) (Ptr, error) {
	if r.TryNil() {
		return Ptr{}, nil
	}
	m, err := r.ArrayLen(1)
	if err != nil {
		return Ptr{}, err
	}
	if m < 2 {
		return Ptr{}, errPtr(fmt.Sprintf("pointer has %d fields", m))
	}
	k, err := r.UintMax(math.MaxUint8)
	if err != nil {
		return Ptr{}, err
	}
	p := Ptr{Kind: PtrKind(k)}
	switch p.Kind {
	case PtrSelf:
		if m != 2 {
			return Ptr{}, errPtr(fmt.Sprintf("self pointer has %d fields, want 2", m))
		}
	case PtrAfterimage, PtrIntention:
		if m != 3 {
			return Ptr{}, errPtr(fmt.Sprintf("%s pointer has %d fields, want 3", p.Kind, m))
		}
		if p.Pos, err = r.Uint(); err != nil {
			return Ptr{}, err
		}
	default:
		// PtrNil is written as msgpack nil, never as an array.
		return Ptr{}, errPtr(fmt.Sprintf("pointer of kind %d", k))
	}
	off, err := r.UintMax(math.MaxUint32)
	if err != nil {
		return Ptr{}, err
	}
	p.Off = uint32(off)
	return p, nil
}

// detach copies every key and value of a into one new backing array of
// total bytes, so that a no longer aliases the payload it was decoded from.
func (a *Afterimage) detach(total int) {
	c := copier{buf: make([]byte, total)}
	for i := range a.Nodes {
		nd := &a.Nodes[i]
		nd.Key = c.take(nd.Key)
		nd.Value = c.take(nd.Value)
	}
}

// empty is the non-nil empty slice that decoded empty byte strings share.
// Its capacity is 0, so appending to it always allocates.
var empty = make([]byte, 0)

type copier struct {
	buf []byte
	off int
}

// take copies b into the backing array, preserving nil and empty.
func (c *copier) take(b []byte) []byte {
	if len(b) == 0 {
		if b == nil {
			return nil
		}
		return empty
	}
	start := c.off
	c.off += copy(c.buf[start:], b)
	return c.buf[start:c.off:c.off]
}

// DecodeHeader reads only the record's header: the intention, the base and
// the number of nodes, without decoding or checking the nodes. Replay uses it
// to match afterimages cheaply; the nodes are decoded (and checked) when a
// node is loaded. An error wraps ErrMalformed.
func DecodeHeader(payload []byte) (intention, base uint64, nodes int, err error) {
	r := wire.NewReader(payload)
	return readIntentionAndCount(&r)
}
