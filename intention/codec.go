package intention

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/cruzlog/cruzdb/internal/wire"
)

// ErrMalformed marks a payload that does not decode as an intention. The
// caller that knows the log position turns it into corruption (entry.Corrupt).
var ErrMalformed = errors.New("intention: malformed payload")

// Field counts of the payload's arrays (see AppendPayload).
const (
	numFields   = 5
	rangeFields = 2
	opFields    = 3

	// Smallest encodings of one element, to refuse impossible lengths.
	minReadSize  = 1 // nil
	minRangeSize = 3 // fixarray, nil, nil
	minOpSize    = 4 // fixarray, fixint kind, nil, nil
)

// EncodedSize is the exact number of bytes AppendPayload appends.
func (in *Intention) EncodedSize() int {
	n := 1 + wire.UintSize(in.Snapshot) + wire.UintSize(in.Token)
	n += wire.ArrayLenSize(len(in.Reads))
	for _, k := range in.Reads {
		n += wire.BytesSize(k)
	}
	n += wire.ArrayLenSize(len(in.Ranges))
	for _, r := range in.Ranges {
		n += 1 + wire.BytesSize(r.Lo) + wire.BytesSize(r.Hi)
	}
	n += wire.ArrayLenSize(len(in.Ops))
	for _, op := range in.Ops {
		n += 1 + wire.UintSize(uint64(op.Kind)) + wire.BytesSize(op.Key) + wire.BytesSize(op.Value)
	}
	return n
}

// maxSize is a cheap upper bound of EncodedSize.
func (in *Intention) maxSize() int {
	const (
		b = wire.MaxBytesOverhead
		u = wire.MaxUintSize
		a = wire.MaxArrayLenSize
	)
	n := 1 + 2*u + 3*a + len(in.Reads)*b + len(in.Ranges)*(1+2*b) + len(in.Ops)*(1+u+2*b)
	for _, k := range in.Reads {
		n += len(k)
	}
	for _, r := range in.Ranges {
		n += len(r.Lo) + len(r.Hi)
	}
	for _, op := range in.Ops {
		n += len(op.Key) + len(op.Value)
	}
	return n
}

// AppendPayload appends the msgpack payload of in to dst and returns the
// extended slice; it grows dst at most once, and not at all if dst has room.
// The payload is one msgpack array in canonical (shortest) form, byte for
// byte what msgpack.Encoder's EncodeArrayLen, EncodeUint and EncodeBytes
// write:
//
//	[snapshot uint, token uint,
//	 reads  [key bin|nil, ...],
//	 ranges [[lo bin|nil, hi bin|nil], ...],
//	 ops    [[kind uint, key bin|nil, value bin|nil], ...]]
//
// A nil slice is written as msgpack nil and an empty one as an empty bin, so
// the difference survives a round trip (it matters for Range bounds: a nil
// Hi is unbounded, an empty one makes the range empty). An empty list of
// reads, ranges or ops decodes as nil.
//
// It encodes whatever in holds, valid or not (see Validate), so Decode gives
// back an equal intention; the same intention always gives the same bytes.
// in is only read.
func (in *Intention) AppendPayload(dst []byte) []byte {
	if room := cap(dst) - len(dst); room < in.maxSize() {
		if need := in.EncodedSize(); room < need {
			grown := make([]byte, len(dst), len(dst)+need)
			copy(grown, dst)
			dst = grown
		}
	}
	dst = wire.AppendArrayLen(dst, numFields)
	dst = wire.AppendUint(dst, in.Snapshot)
	dst = wire.AppendUint(dst, in.Token)
	dst = wire.AppendArrayLen(dst, len(in.Reads))
	for _, k := range in.Reads {
		dst = wire.AppendBytes(dst, k)
	}
	dst = wire.AppendArrayLen(dst, len(in.Ranges))
	for _, r := range in.Ranges {
		dst = wire.AppendArrayLen(dst, rangeFields)
		dst = wire.AppendBytes(dst, r.Lo)
		dst = wire.AppendBytes(dst, r.Hi)
	}
	dst = wire.AppendArrayLen(dst, len(in.Ops))
	for _, op := range in.Ops {
		dst = wire.AppendArrayLen(dst, opFields)
		dst = wire.AppendUint(dst, uint64(op.Kind))
		dst = wire.AppendBytes(dst, op.Key)
		dst = wire.AppendBytes(dst, op.Value)
	}
	return dst
}

// Inline capacities of a decode block: an intention with up to this many
// reads, ranges and ops is decoded with a single allocation for its structs
// (320 bytes on 64-bit platforms, a size class of its own).
const (
	inlineReads  = 3
	inlineRanges = 1
	inlineOps    = 2
)

// block holds a decoded intention and the backing arrays of its small
// slices, so that a typical intention costs one allocation for its structs.
type block struct {
	in     Intention
	reads  [inlineReads][]byte
	ranges [inlineRanges]Range
	ops    [inlineOps]Op
}

// Decode decodes an intention payload. The result does not alias payload:
// its byte slices (keys, values, range bounds) are sub-slices of one private
// copy of payload, capacity-limited to their length, so retaining any one of
// them retains that copy. It allocates twice for an intention with at most 3
// reads, 1 range and 2 ops (once more for each of the three lists that is
// longer): the copy, and the structs.
//
// Decode reads any msgpack form of the fields: integers of any width
// (non-negative signed ones too), str as well as bin. Re-encoding gives the
// canonical form. An error wraps ErrMalformed. Decode checks structure only
// (see Validate); it never panics and never allocates from a length the
// payload cannot hold. payload is only read.
func Decode(payload []byte) (*Intention, error) {
	// One copy up front is cheaper than copying slice by slice: it needs
	// no zeroing and is one memmove.
	return DecodeNoCopy(bytes.Clone(payload))
}

// DecodeNoCopy is Decode whose result aliases payload: its byte slices are
// sub-slices of payload (capacity-limited, so appending to one never writes
// into payload). The caller must own payload and must not modify it while the
// intention, or any slice taken from it, is in use. It allocates once for a
// typical intention.
func DecodeNoCopy(payload []byte) (*Intention, error) {
	blk := new(block)
	if err := decodeInto(&blk.in, payload, blk); err != nil {
		return nil, err
	}
	return &blk.in, nil
}

// DecodeInto decodes payload into in, reusing the capacity of in.Reads,
// in.Ranges and in.Ops; it allocates only for a list longer than the
// capacity it finds, so decoding into a recycled Intention usually costs
// nothing. As with DecodeNoCopy, the byte slices alias payload, which the
// caller must own and leave unmodified while in is in use. An empty list is
// left empty, not necessarily nil. On error, in holds an unspecified partial
// decode. Errors are those of Decode.
func DecodeInto(in *Intention, payload []byte) error {
	return decodeInto(in, payload, nil)
}

func malformed(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
}

func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// decodeInto decodes payload into in, whose slices then alias payload. The
// lists reuse in's capacity, else blk's inline arrays if blk is not nil and
// they fit, else new arrays.
func decodeInto(in *Intention, payload []byte, blk *block) error {
	r := wire.NewReader(payload)
	n, err := r.ArrayLen(1)
	if err != nil {
		return malformed("record", err)
	}
	if n != numFields {
		return malformedf("record has %d fields, want %d", n, numFields)
	}
	if in.Snapshot, err = r.Uint(); err != nil {
		return malformed("snapshot", err)
	}
	if in.Token, err = r.Uint(); err != nil {
		return malformed("token", err)
	}

	// Reads.
	if n, err = r.ArrayLen(minReadSize); err != nil {
		return malformed("reads", err)
	}
	switch {
	case n <= cap(in.Reads):
		in.Reads = in.Reads[:n]
	case blk != nil && n <= inlineReads:
		in.Reads = blk.reads[:n:n]
	default:
		in.Reads = make([][]byte, n)
	}
	for i := range in.Reads {
		if in.Reads[i], err = r.BytesOrNil(); err != nil {
			return malformed("read key", err)
		}
	}

	// Ranges.
	if n, err = r.ArrayLen(minRangeSize); err != nil {
		return malformed("ranges", err)
	}
	switch {
	case n <= cap(in.Ranges):
		in.Ranges = in.Ranges[:n]
	case blk != nil && n <= inlineRanges:
		in.Ranges = blk.ranges[:n:n]
	default:
		in.Ranges = make([]Range, n)
	}
	for i := range in.Ranges {
		rg := &in.Ranges[i]
		m, err := r.ArrayLen(1)
		if err != nil {
			return malformed("range", err)
		}
		if m != rangeFields {
			return malformedf("range has %d fields, want %d", m, rangeFields)
		}
		if rg.Lo, err = r.BytesOrNil(); err != nil {
			return malformed("range lo", err)
		}
		if rg.Hi, err = r.BytesOrNil(); err != nil {
			return malformed("range hi", err)
		}
	}

	// Ops.
	if n, err = r.ArrayLen(minOpSize); err != nil {
		return malformed("ops", err)
	}
	switch {
	case n <= cap(in.Ops):
		in.Ops = in.Ops[:n]
	case blk != nil && n <= inlineOps:
		in.Ops = blk.ops[:n:n]
	default:
		in.Ops = make([]Op, n)
	}
	for i := range in.Ops {
		op := &in.Ops[i]
		m, err := r.ArrayLen(1)
		if err != nil {
			return malformed("op", err)
		}
		if m != opFields {
			return malformedf("op has %d fields, want %d", m, opFields)
		}
		kind, err := r.UintMax(math.MaxUint8)
		if err != nil {
			return malformed("op kind", err)
		}
		op.Kind = OpKind(kind)
		if op.Key, err = r.BytesOrNil(); err != nil {
			return malformed("op key", err)
		}
		if op.Value, err = r.BytesOrNil(); err != nil {
			return malformed("op value", err)
		}
	}
	if err := r.Finish(); err != nil {
		return malformed("record", err)
	}
	return nil
}
