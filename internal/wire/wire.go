// Package wire is the small msgpack writer and reader that cruzdb's entry
// payloads (header, intention, afterimage) are built on. It works directly on
// byte slices, without reflection and without allocating: the Append
// functions append to a caller's buffer, and Reader hands out sub-slices of
// the buffer it reads.
//
// The writer always produces the canonical (shortest) msgpack form, byte for
// byte what github.com/vmihailenco/msgpack/v5's Encoder produces with
// EncodeUint, EncodeBytes, EncodeArrayLen, EncodeBool and EncodeNil, so any
// msgpack tool can read a payload. The reader is lenient in the msgpack
// spirit: it accepts every integer width (and non-negative signed integers)
// where an unsigned integer is expected, and str as well as bin where bytes
// are expected.
//
// The reader never panics and never reports a length larger than the bytes
// that remain, so callers may allocate from a reported length.
package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// msgpack format codes used here.
const (
	codeNil     = 0xc0
	codeFalse   = 0xc2
	codeTrue    = 0xc3
	codeBin8    = 0xc4
	codeBin16   = 0xc5
	codeBin32   = 0xc6
	codeUint8   = 0xcc
	codeUint16  = 0xcd
	codeUint32  = 0xce
	codeUint64  = 0xcf
	codeInt8    = 0xd0
	codeInt16   = 0xd1
	codeInt32   = 0xd2
	codeInt64   = 0xd3
	codeStr8    = 0xd9
	codeStr16   = 0xda
	codeStr32   = 0xdb
	codeArray16 = 0xdc
	codeArray32 = 0xdd

	fixArrayLow = 0x90
	fixArrayMax = 0x0f
	fixStrLow   = 0xa0
	fixStrHigh  = 0xbf
	maxFixInt   = 0x7f
)

// Error is a reader error: what went wrong, and at which byte offset of the
// buffer.
type Error struct {
	Off    int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s at offset %d", e.Reason, e.Off)
}

// AppendNil appends a msgpack nil.
func AppendNil(b []byte) []byte { return append(b, codeNil) }

// AppendBool appends a msgpack boolean.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, codeTrue)
	}
	return append(b, codeFalse)
}

// AppendUint appends v as the shortest msgpack unsigned integer.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= maxFixInt:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, codeUint8, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, codeUint16), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, codeUint32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, codeUint64), v)
}

// MaxUintSize is the most bytes AppendUint writes.
const MaxUintSize = 9

// UintSize is the number of bytes AppendUint writes for v.
func UintSize(v uint64) int {
	switch {
	case v <= maxFixInt:
		return 1
	case v <= math.MaxUint8:
		return 2
	case v <= math.MaxUint16:
		return 3
	case v <= math.MaxUint32:
		return 5
	}
	return 9
}

// AppendArrayLen appends a msgpack array header for n elements. n must be
// in [0, math.MaxUint32].
func AppendArrayLen(b []byte, n int) []byte {
	switch {
	case n <= fixArrayMax:
		return append(b, fixArrayLow|byte(n))
	case n <= math.MaxUint16:
		return append(b, codeArray16, byte(n>>8), byte(n))
	}
	return append(b, codeArray32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// MaxArrayLenSize is the most bytes AppendArrayLen writes.
const MaxArrayLenSize = 5

// ArrayLenSize is the number of bytes AppendArrayLen writes for n.
func ArrayLenSize(n int) int {
	switch {
	case n <= fixArrayMax:
		return 1
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}

// AppendBytes appends v as msgpack bin, or msgpack nil if v is nil; an empty
// non-nil v is an empty bin, so the nil/empty distinction survives.
func AppendBytes(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, codeNil)
	}
	return append(AppendBinHeader(b, len(v)), v...)
}

// AppendBinHeader appends the header of a msgpack bin of n bytes, in its
// shortest form; the caller appends the n bytes.
func AppendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, codeBin8, byte(n))
	case n <= math.MaxUint16:
		return append(b, codeBin16, byte(n>>8), byte(n))
	}
	return append(b, codeBin32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// BinHeaderSize is the number of bytes AppendBinHeader appends for n.
func BinHeaderSize(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}

// MaxBytesOverhead is the most bytes AppendBytes writes beyond len(v).
const MaxBytesOverhead = 5

// BytesSize is the number of bytes AppendBytes writes for v.
func BytesSize(v []byte) int {
	if v == nil {
		return 1
	}
	n := len(v)
	switch {
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

// Reader reads msgpack values from a byte slice. The zero Reader reads
// nothing; use NewReader.
type Reader struct {
	b   []byte
	off int
}

// NewReader returns a Reader over b. Slices the Reader returns alias b.
func NewReader(b []byte) Reader { return Reader{b: b} }

// NewReaderAt returns a Reader over b that starts at byte off (clamped to
// len(b)); offsets stay counted from the start of b.
func NewReaderAt(b []byte, off int) Reader { return Reader{b: b, off: min(max(off, 0), len(b))} }

// Offset is the number of bytes consumed so far.
func (r *Reader) Offset() int { return r.off }

// Len is the number of bytes not yet consumed.
func (r *Reader) Len() int { return len(r.b) - r.off }

// Finish reports an error if any bytes remain unread.
func (r *Reader) Finish() error {
	if r.off != len(r.b) {
		return r.fail(fmt.Sprintf("%d trailing bytes", len(r.b)-r.off))
	}
	return nil
}

func (r *Reader) fail(reason string) error {
	return &Error{Off: r.off, Reason: reason}
}

func (r *Reader) short() error { return r.fail("truncated") }

func (r *Reader) badType(want string) error {
	if r.off >= len(r.b) {
		return r.short()
	}
	return r.fail(fmt.Sprintf("msgpack code 0x%02x where %s expected", r.b[r.off], want))
}

// need reports whether n more bytes follow the current one-byte code.
func (r *Reader) need(n int) bool { return len(r.b)-r.off-1 >= n }

// TryNil consumes a msgpack nil and reports true if one is next.
func (r *Reader) TryNil() bool {
	if r.off < len(r.b) && r.b[r.off] == codeNil {
		r.off++
		return true
	}
	return false
}

// Bool reads a msgpack boolean.
func (r *Reader) Bool() (bool, error) {
	if r.off < len(r.b) {
		switch r.b[r.off] {
		case codeFalse:
			r.off++
			return false, nil
		case codeTrue:
			r.off++
			return true, nil
		}
	}
	return false, r.badType("bool")
}

// Uint reads an unsigned integer: any msgpack unsigned integer, or a
// non-negative signed one.
func (r *Reader) Uint() (uint64, error) {
	if r.off < len(r.b) {
		b := r.b[r.off:]
		switch c := b[0]; {
		case c <= maxFixInt:
			r.off++
			return uint64(c), nil
		case c == codeUint32 && len(b) >= 5:
			r.off += 5
			return uint64(binary.BigEndian.Uint32(b[1:])), nil
		case c == codeUint8 && len(b) >= 2:
			r.off += 2
			return uint64(b[1]), nil
		case c == codeUint16 && len(b) >= 3:
			r.off += 3
			return uint64(binary.BigEndian.Uint16(b[1:])), nil
		case c == codeUint64 && len(b) >= 9:
			r.off += 9
			return binary.BigEndian.Uint64(b[1:]), nil
		}
	}
	return r.uintSlow()
}

func (r *Reader) uintSlow() (uint64, error) {
	if r.off >= len(r.b) {
		return 0, r.short()
	}
	var size int
	signed := false
	switch r.b[r.off] {
	case codeUint8:
		size = 1
	case codeUint16:
		size = 2
	case codeUint32:
		size = 4
	case codeUint64:
		size = 8
	case codeInt8:
		size, signed = 1, true
	case codeInt16:
		size, signed = 2, true
	case codeInt32:
		size, signed = 4, true
	case codeInt64:
		size, signed = 8, true
	default:
		return 0, r.badType("unsigned integer")
	}
	if !r.need(size) {
		return 0, r.short()
	}
	p := r.b[r.off+1 : r.off+1+size]
	var v uint64
	switch size {
	case 1:
		v = uint64(p[0])
	case 2:
		v = uint64(binary.BigEndian.Uint16(p))
	case 4:
		v = uint64(binary.BigEndian.Uint32(p))
	case 8:
		v = binary.BigEndian.Uint64(p)
	}
	if signed && p[0]&0x80 != 0 {
		return 0, r.fail("negative integer where unsigned expected")
	}
	r.off += 1 + size
	return v, nil
}

// UintMax reads an unsigned integer and refuses one larger than max.
func (r *Reader) UintMax(max uint64) (uint64, error) {
	start := r.off
	v, err := r.Uint()
	if err != nil {
		return 0, err
	}
	if v > max {
		r.off = start
		return 0, r.fail(fmt.Sprintf("integer %d larger than %d", v, max))
	}
	return v, nil
}

// ArrayLen reads an array header. minElem is the smallest encoded size of
// one element (at least 1); a length whose elements could not fit in the
// remaining bytes is refused, so the result is safe to allocate from.
func (r *Reader) ArrayLen(minElem int) (int, error) {
	if r.off < len(r.b) {
		if c := r.b[r.off]; c&0xf0 == fixArrayLow {
			n := int(c & 0x0f)
			if n*minElem < len(r.b)-r.off {
				r.off++
				return n, nil
			}
		}
	}
	return r.arrayLenSlow(minElem)
}

// ArrayLenOfPrefix reads an array header without checking that its
// elements fit in the bytes that remain: for a reader of the first bytes of
// a value whose length is checked some other way. Do not allocate from it.
func (r *Reader) ArrayLenOfPrefix() (int, error) {
	if r.off >= len(r.b) {
		return 0, r.short()
	}
	c := r.b[r.off]
	switch {
	case c&0xf0 == fixArrayLow:
		r.off++
		return int(c & 0x0f), nil
	case c == codeArray16 && r.need(2):
		n := int(binary.BigEndian.Uint16(r.b[r.off+1:]))
		r.off += 3
		return n, nil
	case c == codeArray32 && r.need(4):
		n := int(binary.BigEndian.Uint32(r.b[r.off+1:]))
		r.off += 5
		return n, nil
	case c == codeArray16 || c == codeArray32:
		return 0, r.short()
	}
	return 0, r.badType("array")
}

func (r *Reader) arrayLenSlow(minElem int) (int, error) {
	if r.off >= len(r.b) {
		return 0, r.short()
	}
	c := r.b[r.off]
	var n uint64
	var hdr int
	switch {
	case c&0xf0 == fixArrayLow:
		n, hdr = uint64(c&0x0f), 1
	case c == codeArray16:
		if !r.need(2) {
			return 0, r.short()
		}
		n, hdr = uint64(binary.BigEndian.Uint16(r.b[r.off+1:])), 3
	case c == codeArray32:
		if !r.need(4) {
			return 0, r.short()
		}
		n, hdr = uint64(binary.BigEndian.Uint32(r.b[r.off+1:])), 5
	default:
		return 0, r.badType("array")
	}
	if minElem < 1 {
		minElem = 1
	}
	// n < 2^32 and minElem is small: the product cannot overflow.
	if rest := len(r.b) - r.off - hdr; n*uint64(minElem) > uint64(rest) {
		return 0, r.fail(fmt.Sprintf("array of %d elements in %d bytes", n, rest))
	}
	r.off += hdr
	return int(n), nil
}

// Bytes reads a bin or str value and returns it as a sub-slice of the
// buffer, with its capacity limited to its length (an append to it never
// writes into the buffer). An empty value is a non-nil empty slice. A msgpack
// nil is an error; see BytesOrNil.
func (r *Reader) Bytes() ([]byte, error) {
	if r.off < len(r.b)-1 && r.b[r.off] == codeBin8 {
		start := r.off + 2
		end := start + int(r.b[r.off+1])
		if end <= len(r.b) {
			r.off = end
			return r.b[start:end:end], nil
		}
	}
	return r.bytesSlow()
}

func (r *Reader) bytesSlow() ([]byte, error) {
	if r.off >= len(r.b) {
		return nil, r.short()
	}
	c := r.b[r.off]
	var n, hdr int
	switch {
	case c >= fixStrLow && c <= fixStrHigh:
		n, hdr = int(c&0x1f), 1
	case c == codeBin8 || c == codeStr8:
		if !r.need(1) {
			return nil, r.short()
		}
		n, hdr = int(r.b[r.off+1]), 2
	case c == codeBin16 || c == codeStr16:
		if !r.need(2) {
			return nil, r.short()
		}
		n, hdr = int(binary.BigEndian.Uint16(r.b[r.off+1:])), 3
	case c == codeBin32 || c == codeStr32:
		if !r.need(4) {
			return nil, r.short()
		}
		n, hdr = int(binary.BigEndian.Uint32(r.b[r.off+1:])), 5
	default:
		return nil, r.badType("bytes")
	}
	if n > len(r.b)-r.off-hdr {
		return nil, r.short()
	}
	start := r.off + hdr
	end := start + n
	r.off = end
	return r.b[start:end:end], nil
}

// BytesOrNil is Bytes that also accepts a msgpack nil, returned as nil.
func (r *Reader) BytesOrNil() ([]byte, error) {
	if r.off < len(r.b)-1 && r.b[r.off] == codeBin8 {
		start := r.off + 2
		end := start + int(r.b[r.off+1])
		if end <= len(r.b) {
			r.off = end
			return r.b[start:end:end], nil
		}
	}
	if r.TryNil() {
		return nil, nil
	}
	return r.bytesSlow()
}
