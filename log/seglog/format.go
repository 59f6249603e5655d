package seglog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/cruzlog/cruzdb/log"
)

// On-disk format. All integers are little-endian.
//
// Segment file (NNNNNNNNNNNNNNNN.seg, the hex sequence number), version 2:
//
//	header   32 bytes: magic "CRZSEG01", version u32, crc u32 (CRC-32C of
//	         the header with this field zero), seq u64, base u64 (the
//	         position of the segment's first positioned record)
//	records  each: crc u32 | len u32 | pos u64 | gstart u32 | kind u8 |
//	         3 zero bytes | len bytes of payload. crc is the CRC-32C of
//	         everything after it, started from the segment's seed (below)
//	         instead of zero. gstart is the file offset at which the
//	         record's group commit began (torn-tail detection, see scan).
//	index    (sealed segments) a record of kind kindIndex, pos = base:
//	         count u32 | count offsets u32 | count kinds u8
//	trailer  (sealed segments, the last 24 bytes of the file, right after
//	         the index or, in a file kept for reuse, after unused written
//	         bytes: zeros or a former life's records): magic
//	         "CRZSEAL1", index offset u32, index record length u32 (header
//	         included), crc u32 (CRC-32C of the 20 bytes before), 4 zero
//	         bytes
//
// The seed of a version-2 segment is the CRC-32C of the low 32 bits of its
// sequence number (4 bytes, little-endian). A segment file is reused for a
// later segment (recycle.go) with the bytes of its former life still in it;
// every segment has a new sequence number, so its records are checked from
// another seed, and no record of a former life checks in the new one: CRC
// over 4 bytes is a bijection, so two sequence numbers that differ in their
// low 32 bits give two seeds, and CRC-32C from two different seeds over the
// same bytes gives two different checksums (the difference of the two
// states is multiplied by a power of x, invertible modulo the CRC
// polynomial). Guaranteed, not probable: a stale record is never data.
//
// Version 1 (before recycling): the same layout, the record CRC from zero.
// Version-1 segments are still read and appended to (their records keep
// the version-1 CRC); new segments are version 2; a version-1 segment is
// never reused (its file is deleted when trimmed).
//
// Metadata file (meta): magic "CRZMETA1", version u32 (1), crc u32 (of the
// file with this field zero), trim u64.
const (
	segVersion   = 2 // the version of new segments
	segVersionV1 = 1 // still read
	metaVersion  = 1

	segHeaderSize = 32
	recHeaderSize = 24
	trailerSize   = 24
	metaSize      = 24

	// maxIndexPayload bounds the payload of an index record (5 bytes per
	// position of a segment of at most maxSegmentSize bytes of 24-byte
	// records, and the count).
	maxIndexPayload = 4 + 5*(maxSegmentSize/recHeaderSize+1)
)

// Record kinds.
const (
	kindData      byte = 1 // an entry at pos
	kindJunk      byte = 2 // junk at pos (a fill the appenders reached)
	kindFillAhead byte = 3 // pos was filled at or beyond the tail; no position of its own
	kindIndex     byte = 4 // the sealed index of the segment
)

var (
	segMagic     = []byte("CRZSEG01")
	trailerMagic = []byte("CRZSEAL1")
	metaMagic    = []byte("CRZMETA1")
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
)

// errBadRecord is the reason decodeRecord gives for bytes that are not a
// valid record; scan tells a torn tail from corruption.
var errBadRecord = errors.New("not a valid record")

// recHeader is a decoded record header.
type recHeader struct {
	len    uint32
	pos    uint64
	gstart uint32
	kind   byte
}

// segSeed is the seed of the record CRCs of a segment of the version and
// sequence number (see the format).
func segSeed(version uint32, seq uint64) uint32 {
	if version == segVersionV1 {
		return 0
	}
	return crc32.Checksum(binary.LittleEndian.AppendUint32(nil, uint32(seq)), castagnoli)
}

// appendRecord appends the record (header and payload) to dst, its CRC
// started from seed (segSeed).
func appendRecord(dst []byte, seed uint32, kind byte, pos uint64, gstart uint32, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, 0) // crc, set below
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint64(dst, pos)
	dst = binary.LittleEndian.AppendUint32(dst, gstart)
	dst = append(dst, kind, 0, 0, 0)
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start:], crc32.Update(seed, castagnoli, dst[start+4:]))
	return dst
}

// parseRecHeader decodes and checks the fixed fields of a record header:
// the kind is known, the padding zero, the length within bounds. It does
// not check the CRC (the payload may not have been read).
func parseRecHeader(b []byte) (recHeader, error) {
	if len(b) < recHeaderSize {
		return recHeader{}, fmt.Errorf("%w: %d bytes, short of a header", errBadRecord, len(b))
	}
	h := recHeader{
		len:    binary.LittleEndian.Uint32(b[4:]),
		pos:    binary.LittleEndian.Uint64(b[8:]),
		gstart: binary.LittleEndian.Uint32(b[16:]),
		kind:   b[20],
	}
	if b[21] != 0 || b[22] != 0 || b[23] != 0 {
		return h, fmt.Errorf("%w: non-zero padding", errBadRecord)
	}
	switch h.kind {
	case kindData:
		if h.len > log.MaxEntrySize {
			return h, fmt.Errorf("%w: data record of %d bytes", errBadRecord, h.len)
		}
	case kindJunk, kindFillAhead:
		if h.len != 0 {
			return h, fmt.Errorf("%w: kind %d record of %d bytes", errBadRecord, h.kind, h.len)
		}
	case kindIndex:
		if h.len > maxIndexPayload {
			return h, fmt.Errorf("%w: index record of %d bytes", errBadRecord, h.len)
		}
	default:
		return h, fmt.Errorf("%w: unknown kind %d", errBadRecord, h.kind)
	}
	return h, nil
}

// decodeRecord decodes the record at the start of b and checks its CRC
// (started from seed). It returns the header and the payload (a slice of b).
func decodeRecord(b []byte, seed uint32) (recHeader, []byte, error) {
	h, err := parseRecHeader(b)
	if err != nil {
		return h, nil, err
	}
	end := recHeaderSize + int(h.len)
	if len(b) < end {
		return h, nil, fmt.Errorf("%w: %d-byte payload cut short at %d", errBadRecord, h.len, len(b)-recHeaderSize)
	}
	if want, got := binary.LittleEndian.Uint32(b), crc32.Update(seed, castagnoli, b[4:end]); want != got {
		return h, nil, fmt.Errorf("%w: checksum %#08x, want %#08x", errBadRecord, got, want)
	}
	return h, b[recHeaderSize:end], nil
}

// segHeader is a decoded segment header.
type segHeader struct {
	version   uint32 // segVersion or segVersionV1; encodeSegHeader writes 0 as segVersion
	seq, base uint64
}

// seed is the seed of the segment's record CRCs.
func (h segHeader) seed() uint32 { return segSeed(h.version, h.seq) }

func encodeSegHeader(h segHeader) []byte {
	if h.version == 0 {
		h.version = segVersion
	}
	b := make([]byte, 0, segHeaderSize)
	b = append(b, segMagic...)
	b = binary.LittleEndian.AppendUint32(b, h.version)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, h.seq)
	b = binary.LittleEndian.AppendUint64(b, h.base)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b, castagnoli))
	return b
}

func decodeSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize {
		return segHeader{}, fmt.Errorf("segment header of %d bytes", len(b))
	}
	if !bytes.Equal(b[:8], segMagic) {
		return segHeader{}, fmt.Errorf("segment header magic %q, want %q", b[:8], segMagic)
	}
	var c [segHeaderSize]byte
	copy(c[:], b)
	binary.LittleEndian.PutUint32(c[12:], 0)
	if want, got := binary.LittleEndian.Uint32(b[12:]), crc32.Checksum(c[:], castagnoli); want != got {
		return segHeader{}, fmt.Errorf("segment header checksum %#08x, want %#08x", got, want)
	}
	v := binary.LittleEndian.Uint32(b[8:])
	if v != segVersion && v != segVersionV1 {
		return segHeader{}, fmt.Errorf("segment format version %d (this build reads %d and %d)", v, segVersionV1, segVersion)
	}
	return segHeader{version: v, seq: binary.LittleEndian.Uint64(b[16:]), base: binary.LittleEndian.Uint64(b[24:])}, nil
}

// segIndex is a segment's index: the offset and kind of each positioned
// record, in position order from the segment's base.
type segIndex struct {
	offs  []uint32
	kinds []byte
}

func encodeIndex(ix segIndex) []byte {
	b := make([]byte, 0, 4+5*len(ix.offs))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ix.offs)))
	for _, o := range ix.offs {
		b = binary.LittleEndian.AppendUint32(b, o)
	}
	return append(b, ix.kinds...)
}

// decodeIndex decodes an index payload and checks it describes records
// that lie in [segHeaderSize, end) in increasing order.
func decodeIndex(b []byte, end uint32) (segIndex, error) {
	if len(b) < 4 {
		return segIndex{}, fmt.Errorf("index of %d bytes", len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(len(b)) != 4+5*uint64(n) {
		return segIndex{}, fmt.Errorf("index of %d bytes for %d records", len(b), n)
	}
	ix := segIndex{offs: make([]uint32, n), kinds: make([]byte, n)}
	prev := uint32(0)
	for i := range ix.offs {
		o := binary.LittleEndian.Uint32(b[4+4*i:])
		if o < segHeaderSize || (i > 0 && o < prev+recHeaderSize) || uint64(o)+recHeaderSize > uint64(end) {
			return segIndex{}, fmt.Errorf("index entry %d: offset %d out of order or range (previous %d, end %d)", i, o, prev, end)
		}
		ix.offs[i], prev = o, o
	}
	copy(ix.kinds, b[4+4*n:])
	for i, k := range ix.kinds {
		if k != kindData && k != kindJunk {
			return segIndex{}, fmt.Errorf("index entry %d: kind %d", i, k)
		}
	}
	return ix, nil
}

// trailer locates a sealed segment's index record.
type trailer struct {
	indexOff, indexLen uint32
}

func encodeTrailer(t trailer) []byte {
	b := make([]byte, 0, trailerSize)
	b = append(b, trailerMagic...)
	b = binary.LittleEndian.AppendUint32(b, t.indexOff)
	b = binary.LittleEndian.AppendUint32(b, t.indexLen)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return binary.LittleEndian.AppendUint32(b, 0)
}

func decodeTrailer(b []byte) (trailer, error) {
	if len(b) != trailerSize {
		return trailer{}, fmt.Errorf("trailer of %d bytes", len(b))
	}
	if !bytes.Equal(b[:8], trailerMagic) {
		return trailer{}, fmt.Errorf("trailer magic %q, want %q", b[:8], trailerMagic)
	}
	if want, got := binary.LittleEndian.Uint32(b[16:]), crc32.Checksum(b[:16], castagnoli); want != got || binary.LittleEndian.Uint32(b[20:]) != 0 {
		return trailer{}, fmt.Errorf("trailer checksum %#08x, want %#08x", got, want)
	}
	t := trailer{indexOff: binary.LittleEndian.Uint32(b[8:]), indexLen: binary.LittleEndian.Uint32(b[12:])}
	if t.indexOff < segHeaderSize || t.indexLen < recHeaderSize+4 {
		return trailer{}, fmt.Errorf("trailer names an index of %d bytes at %d", t.indexLen, t.indexOff)
	}
	return t, nil
}

func encodeMeta(trim uint64) []byte {
	b := make([]byte, 0, metaSize)
	b = append(b, metaMagic...)
	b = binary.LittleEndian.AppendUint32(b, metaVersion)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, trim)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b, castagnoli))
	return b
}

func decodeMeta(b []byte) (trim uint64, err error) {
	if len(b) != metaSize {
		return 0, fmt.Errorf("metadata file of %d bytes, want %d", len(b), metaSize)
	}
	if !bytes.Equal(b[:8], metaMagic) {
		return 0, fmt.Errorf("metadata magic %q, want %q", b[:8], metaMagic)
	}
	var c [metaSize]byte
	copy(c[:], b)
	binary.LittleEndian.PutUint32(c[12:], 0)
	if want, got := binary.LittleEndian.Uint32(b[12:]), crc32.Checksum(c[:], castagnoli); want != got {
		return 0, fmt.Errorf("metadata checksum %#08x, want %#08x", got, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != metaVersion {
		return 0, fmt.Errorf("metadata format version %d (this build reads %d)", v, metaVersion)
	}
	return binary.LittleEndian.Uint64(b[16:]), nil
}
