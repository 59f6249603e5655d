// Package backup is the file format of a cruzdb backup: every key and value
// of one snapshot, in key order, framed and checksummed.
//
//	magic "CRZBAK01"
//	uvarint snapshot position
//	records: 0x01, uvarint len(key), key, uvarint len(value), value
//	trailer: 0x00, uvarint record count, CRC-32C (4 bytes, big-endian) of
//	         everything before it
//
// A Reader refuses a file that is truncated, has a bad checksum or count,
// keys out of order, or bytes after the trailer: a backup is either whole
// or an error.
package backup

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// ErrCorrupt marks a backup that cannot be read back whole.
var ErrCorrupt = errors.New("backup: corrupt or truncated")

const magic = "CRZBAK01"

// MaxKey and MaxValue bound what a Reader accepts (cruzdb's own limits
// are lower).
const (
	MaxKey   = 1 << 20
	MaxValue = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Writer writes a backup.
type Writer struct {
	w     *bufio.Writer
	crc   hash.Hash32
	n     uint64
	last  []byte
	buf   [binary.MaxVarintLen64]byte
	err   error
	begun bool
}

// NewWriter starts a backup of the snapshot at position pos on w.
func NewWriter(w io.Writer, pos uint64) *Writer {
	bw := &Writer{w: bufio.NewWriterSize(w, 256<<10), crc: crc32.New(castagnoli)}
	bw.write([]byte(magic))
	bw.uvarint(pos)
	return bw
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	w.crc.Write(b)
	_, w.err = w.w.Write(b)
}

func (w *Writer) uvarint(v uint64) {
	n := binary.PutUvarint(w.buf[:], v)
	w.write(w.buf[:n])
}

// Add writes one key and value; keys must come in ascending order.
func (w *Writer) Add(key, value []byte) error {
	if w.begun && bytes.Compare(key, w.last) <= 0 {
		return fmt.Errorf("backup: key %q after %q: keys must ascend", key, w.last)
	}
	w.begun = true
	w.last = append(w.last[:0], key...)
	w.write([]byte{1})
	w.uvarint(uint64(len(key)))
	w.write(key)
	w.uvarint(uint64(len(value)))
	w.write(value)
	w.n++
	return w.err
}

// Close writes the trailer and flushes (it does not close the underlying
// writer).
func (w *Writer) Close() error {
	w.write([]byte{0})
	w.uvarint(w.n)
	if w.err != nil {
		return w.err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], w.crc.Sum32())
	if _, err := w.w.Write(sum[:]); err != nil {
		return err
	}
	return w.w.Flush()
}

// Reader reads a backup.
type Reader struct {
	r        *bufio.Reader
	crc      hash.Hash32
	pos      uint64
	n        uint64
	last     []byte
	begun    bool
	done     bool
	key, val []byte
	err      error
}

// NewReader reads the backup's header from r.
func NewReader(r io.Reader) (*Reader, error) {
	br := &Reader{r: bufio.NewReaderSize(r, 256<<10), crc: crc32.New(castagnoli)}
	m := make([]byte, len(magic))
	if err := br.full(m); err != nil || string(m) != magic {
		return nil, fmt.Errorf("%w: not a backup (bad magic)", ErrCorrupt)
	}
	pos, err := br.uvarint()
	if err != nil {
		return nil, err
	}
	br.pos = pos
	return br, nil
}

// Position is the snapshot position the backup holds.
func (r *Reader) Position() uint64 { return r.pos }

func (r *Reader) full(b []byte) error {
	if _, err := io.ReadFull(r.r, b); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	r.crc.Write(b)
	return nil
}

func (r *Reader) uvarint() (uint64, error) {
	var b [1]byte
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift > 63 {
			return 0, fmt.Errorf("%w: varint overflows", ErrCorrupt)
		}
		if err := r.full(b[:]); err != nil {
			return 0, err
		}
		if b[0] == 0 && shift > 0 {
			return 0, fmt.Errorf("%w: varint not in its shortest form", ErrCorrupt)
		}
		v |= uint64(b[0]&0x7f) << shift
		if b[0] < 0x80 {
			return v, nil
		}
	}
}

func (r *Reader) bytesN(limit uint64) ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%w: length %d over %d", ErrCorrupt, n, limit)
	}
	b := make([]byte, n)
	return b, r.full(b)
}

// Next reads the next record; false at the end or on an error (Err).
// Key and Value are valid until the next call.
func (r *Reader) Next() bool {
	if r.done || r.err != nil {
		return false
	}
	var tag [1]byte
	if r.err = r.full(tag[:]); r.err != nil {
		return false
	}
	switch tag[0] {
	case 0:
		r.err = r.trailer()
		r.done = true
		return false
	case 1:
	default:
		r.err = fmt.Errorf("%w: record tag %d", ErrCorrupt, tag[0])
		return false
	}
	if r.key, r.err = r.bytesN(MaxKey); r.err != nil {
		return false
	}
	if r.val, r.err = r.bytesN(MaxValue); r.err != nil {
		return false
	}
	if r.begun && bytes.Compare(r.key, r.last) <= 0 {
		r.err = fmt.Errorf("%w: keys out of order", ErrCorrupt)
		return false
	}
	r.begun = true
	r.last = append(r.last[:0], r.key...)
	r.n++
	return true
}

func (r *Reader) trailer() error {
	n, err := r.uvarint()
	if err != nil {
		return err
	}
	if n != r.n {
		return fmt.Errorf("%w: %d records, trailer says %d", ErrCorrupt, r.n, n)
	}
	want := r.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(r.r, sum[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if binary.BigEndian.Uint32(sum[:]) != want {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if _, err := r.r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: bytes after the trailer", ErrCorrupt)
	}
	return nil
}

// Key and Value are the current record's.
func (r *Reader) Key() []byte   { return r.key }
func (r *Reader) Value() []byte { return r.val }

// Err is the error that stopped Next, nil at a clean end.
func (r *Reader) Err() error { return r.err }

// Count is the number of records read so far.
func (r *Reader) Count() uint64 { return r.n }
