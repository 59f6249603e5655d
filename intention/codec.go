package intention

import (
	"errors"
	"fmt"
	"math"

	"github.com/cruzlog/cruzdb/internal/entry/wire"
)

// ErrMalformed marks a payload that does not decode as an intention. The
// caller that knows the log position turns it into corruption (entry.Corrupt).
var ErrMalformed = errors.New("intention: malformed payload")

// The payload is one msgpack array, written in canonical (shortest) form:
//
//	[snapshot uint, token uint,
//	 reads  [key bin|nil, ...],
//	 ranges [[lo bin|nil, hi bin|nil], ...],
//	 ops    [[kind uint, key bin|nil, value bin|nil], ...]]
//
// A nil slice is written as msgpack nil and an empty one as an empty bin, so
// the difference survives a round trip (it matters for Range bounds; a nil
// key is invalid, but still round-trips). Any msgpack reader can
// read it; Decode also accepts non-canonical integer widths and str for bin.
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

// AppendPayload appends the msgpack payload of in to dst and returns the
// extended slice; it grows dst at most once. It encodes whatever in holds,
// valid or not (see Validate), nil and empty slices alike, so Decode gives
// back an equal intention; the same intention always gives the same bytes.
func (in *Intention) AppendPayload(dst []byte) []byte {
	if need := in.EncodedSize(); cap(dst)-len(dst) < need {
		grown := make([]byte, len(dst), len(dst)+need)
		copy(grown, dst)
		dst = grown
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

// empty is the non-nil empty slice that decoded empty byte strings share. Its
// capacity is 0, so appending to it always allocates.
var empty = make([]byte, 0)

// Inline capacities of a decode block: an intention with up to this many
// reads, ranges and ops is decoded with a single allocation for the structs.
const (
	inlineReads  = 4
	inlineRanges = 2
	inlineOps    = 4
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
// all its byte slices (keys, values, range bounds) are sub-slices of one new
// backing array, capacity-limited to their length, so retaining any one of
// them retains that array. It allocates twice for an intention with at most
// 4 reads, 2 ranges and 4 ops (once more per kind of slice that is longer).
//
// An error wraps ErrMalformed. Decode checks structure only (see Validate);
// it never panics and never allocates from a length the payload cannot hold.
func Decode(payload []byte) (*Intention, error) {
	in, total, err := decode(payload)
	if err != nil {
		return nil, err
	}
	in.detach(total)
	return in, nil
}

// DecodeNoCopy is Decode whose result aliases payload: its byte slices are
// sub-slices of payload (capacity-limited, so appending to one never writes
// into payload). The caller must own payload and must not modify it while the
// intention, or any slice taken from it, is in use. It allocates once for a
// typical intention.
func DecodeNoCopy(payload []byte) (*Intention, error) {
	in, _, err := decode(payload)
	if err != nil {
		return nil, err
	}
	return in, nil
}

func malformed(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
}

func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// decode decodes payload into a new intention whose slices alias payload,
// and returns the total length of its byte slices.
func decode(payload []byte) (*Intention, int, error) {
	r := wire.NewReader(payload)
	n, err := r.ArrayLen(1)
	if err != nil {
		return nil, 0, malformed("record", err)
	}
	if n != numFields {
		return nil, 0, malformedf("record has %d fields, want %d", n, numFields)
	}
	blk := new(block)
	in := &blk.in
	if in.Snapshot, err = r.Uint(); err != nil {
		return nil, 0, malformed("snapshot", err)
	}
	if in.Token, err = r.Uint(); err != nil {
		return nil, 0, malformed("token", err)
	}
	total := 0

	// Reads.
	if n, err = r.ArrayLen(minReadSize); err != nil {
		return nil, 0, malformed("reads", err)
	}
	if n > 0 {
		if n <= inlineReads {
			in.Reads = blk.reads[:n:n]
		} else {
			in.Reads = make([][]byte, n)
		}
		for i := range in.Reads {
			k, err := r.BytesOrNil()
			if err != nil {
				return nil, 0, malformed("read key", err)
			}
			in.Reads[i] = k
			total += len(k)
		}
	}

	// Ranges.
	if n, err = r.ArrayLen(minRangeSize); err != nil {
		return nil, 0, malformed("ranges", err)
	}
	if n > 0 {
		if n <= inlineRanges {
			in.Ranges = blk.ranges[:n:n]
		} else {
			in.Ranges = make([]Range, n)
		}
		for i := range in.Ranges {
			rg := &in.Ranges[i]
			m, err := r.ArrayLen(1)
			if err != nil {
				return nil, 0, malformed("range", err)
			}
			if m != rangeFields {
				return nil, 0, malformedf("range has %d fields, want %d", m, rangeFields)
			}
			if rg.Lo, err = r.BytesOrNil(); err != nil {
				return nil, 0, malformed("range lo", err)
			}
			if rg.Hi, err = r.BytesOrNil(); err != nil {
				return nil, 0, malformed("range hi", err)
			}
			total += len(rg.Lo) + len(rg.Hi)
		}
	}

	// Ops.
	if n, err = r.ArrayLen(minOpSize); err != nil {
		return nil, 0, malformed("ops", err)
	}
	if n > 0 {
		if n <= inlineOps {
			in.Ops = blk.ops[:n:n]
		} else {
			in.Ops = make([]Op, n)
		}
		for i := range in.Ops {
			op := &in.Ops[i]
			m, err := r.ArrayLen(1)
			if err != nil {
				return nil, 0, malformed("op", err)
			}
			if m != opFields {
				return nil, 0, malformedf("op has %d fields, want %d", m, opFields)
			}
			kind, err := r.UintMax(math.MaxUint8)
			if err != nil {
				return nil, 0, malformed("op kind", err)
			}
			op.Kind = OpKind(kind)
			if op.Key, err = r.BytesOrNil(); err != nil {
				return nil, 0, malformed("op key", err)
			}
			if op.Value, err = r.BytesOrNil(); err != nil {
				return nil, 0, malformed("op value", err)
			}
			total += len(op.Key) + len(op.Value)
		}
	}
	if err := r.Finish(); err != nil {
		return nil, 0, malformed("record", err)
	}
	return in, total, nil
}

// detach copies every byte slice of in into one new backing array of total
// bytes, so that in no longer aliases the payload it was decoded from.
func (in *Intention) detach(total int) {
	c := copier{buf: make([]byte, total)}
	for i, k := range in.Reads {
		in.Reads[i] = c.take(k)
	}
	for i := range in.Ranges {
		rg := &in.Ranges[i]
		rg.Lo = c.take(rg.Lo)
		rg.Hi = c.take(rg.Hi)
	}
	for i := range in.Ops {
		op := &in.Ops[i]
		op.Key = c.take(op.Key)
		op.Value = c.take(op.Value)
	}
}

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
