package seglog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cruzlog/cruzdb/log"
)

const (
	segSuffix = ".seg"
	tmpSuffix = ".tmp"
	metaName  = "meta"
	lockName  = "LOCK"
)

// segment is one segment file. The committer is the only writer of its
// fields; it changes them under Log.segMu, and readers read them under
// Log.segMu's read lock.
type segment struct {
	seq, base uint64
	version   uint32 // the segment's format version (segVersion, or segVersionV1 for an old one)
	seed      uint32 // the seed of its record CRCs (segSeed)
	path      string
	f         *os.File
	// fileMu: readers hold it shared while they read f; Trim and Close
	// hold it exclusively to close f.
	fileMu sync.RWMutex

	offs   []uint32 // offset of the record at base+i
	kinds  []byte   // kind of the record at base+i
	end    uint32   // end of the last published record; the index offset once sealed
	sealed bool

	// alloc is the file's size while it is the unsealed last segment: what
	// is preallocated (see space.go). retire: a trim left at least
	// rollDead bytes, and half the segment, below the trim point; the trim
	// starts a new segment at once. Only the committer reads or writes them.
	alloc  int64
	retire bool

	// Blocks written ahead of the groups (see prepare.go), guarded by
	// Log.prep.mu: bytes [0, zeroed) have been written (records or zeros)
	// or are being written by the committer, and above it only the
	// preparer writes; bytes [0, ready) were written and synced before.
	// prepOff: the preparer leaves the segment alone (sealed, or a
	// preparation failed).
	zeroed, ready int64
	prepOff       bool

	// verified holds the indexes of large records whose checksum a
	// ReadRange has checked (see ReadRange).
	verified sync.Map
}

func segName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segSuffix) }

// next is the position after the segment's last record.
func (s *segment) next() uint64 { return s.base + uint64(len(s.offs)) }

// span returns the offsets [from, to) that hold the record at index i (and,
// after it, fill-ahead records of a later group, if any).
func (s *segment) span(i int) (from, to uint32) {
	if i+1 < len(s.offs) {
		return s.offs[i], s.offs[i+1]
	}
	return s.offs[i], s.end
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), log.ErrCorrupt)
}

// listSegments returns the sequence numbers of dir's segment files,
// ascending, and removes leftover temporary files.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			// A segment or metadata file that was never renamed into
			// place: it holds nothing acknowledged.
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			continue
		}
		stem, ok := strings.CutSuffix(name, segSuffix)
		if !ok || len(stem) != 16 {
			continue
		}
		seq, err := strconv.ParseUint(stem, 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// openSegmentFile opens a segment file and checks its header.
func openSegmentFile(path string, seq uint64) (*os.File, segHeader, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, segHeader{}, err
	}
	var hb [segHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		f.Close()
		return nil, segHeader{}, corruptf("segment %s: header: %v", path, err)
	}
	h, err := decodeSegHeader(hb[:])
	if err != nil {
		f.Close()
		return nil, segHeader{}, corruptf("segment %s: %v", path, err)
	}
	if h.seq != seq {
		f.Close()
		return nil, segHeader{}, corruptf("segment %s: header says sequence %d", path, h.seq)
	}
	return f, h, nil
}

// loadSealed opens a sealed segment from its trailer and index, checking
// both.
func loadSealed(path string, seq uint64) (*segment, error) {
	f, h, err := openSegmentFile(path, seq)
	if err != nil {
		return nil, err
	}
	s, err := readSealed(path, f, h)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func readSealed(path string, f *os.File, h segHeader) (*segment, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size < segHeaderSize+trailerSize || size > 4<<30 {
		return nil, corruptf("segment %s: not sealed (%d bytes)", path, size)
	}
	tb := make([]byte, trailerSize)
	if _, err := f.ReadAt(tb, size-trailerSize); err != nil {
		return nil, corruptf("segment %s: trailer: %v", path, err)
	}
	t, err := decodeTrailer(tb)
	if err != nil {
		return nil, corruptf("segment %s: not sealed: %v", path, err)
	}
	if int64(t.indexOff)+int64(t.indexLen)+trailerSize > size {
		return nil, corruptf("segment %s: trailer names an index of %d bytes at %d in a file of %d", path, t.indexLen, t.indexOff, size)
	}
	ib := make([]byte, t.indexLen)
	if _, err := f.ReadAt(ib, int64(t.indexOff)); err != nil {
		return nil, corruptf("segment %s: index: %v", path, err)
	}
	rh, payload, err := decodeRecord(ib, h.seed())
	if err != nil || rh.kind != kindIndex || rh.pos != h.base || int(rh.len)+recHeaderSize != len(ib) {
		return nil, corruptf("segment %s: index record at %d does not check (%v)", path, t.indexOff, err)
	}
	ix, err := decodeIndex(payload, t.indexOff)
	if err != nil {
		return nil, corruptf("segment %s: index: %v", path, err)
	}
	return &segment{seq: h.seq, base: h.base, version: h.version, seed: h.seed(), path: path, f: f, offs: ix.offs, kinds: ix.kinds, end: t.indexOff, sealed: true}, nil
}

// scanResult is what scanning the last segment found.
type scanResult struct {
	ix     segIndex
	fills  []uint64 // targets of fill-ahead records
	end    uint32   // where the next record goes (or the index offset, if sealed)
	sealed bool
	// zeroTo > end: bytes [end, zeroTo) hold records of a torn group and
	// must be zeroed before anything is written there.
	zeroTo int
}

// scanSegment reads the records of the segment (header hd) whose bytes are
// data, from the header on. Records are read until the first that does not
// decode (or the index record). A record that does not decode is the torn
// tail of the last group commit if no valid record after it belongs to a
// later group; otherwise a group that began after it was written, which
// happens only once its own group was durable, and the bad record is
// corruption.
//
// Records are checked from the segment's seed, so the records a reused file
// holds from its former life (recycle.go) never decode: to the scan they
// are bytes that are not a record, like a torn write.
func scanSegment(path string, data []byte, hd segHeader) (scanResult, error) {
	var r scanResult
	off := segHeaderSize
	base, seed := hd.base, hd.seed()
	expected := base
	for {
		h, payload, err := decodeRecord(data[off:], seed)
		if err != nil {
			break
		}
		if h.gstart > uint32(off) {
			return r, corruptf("segment %s: record at offset %d names its group as beginning after it (%d)", path, off, h.gstart)
		}
		switch h.kind {
		case kindData, kindJunk:
			if h.pos != expected {
				return r, corruptf("segment %s: record at offset %d holds position %d, want %d", path, off, h.pos, expected)
			}
			r.ix.offs = append(r.ix.offs, uint32(off))
			r.ix.kinds = append(r.ix.kinds, h.kind)
			expected++
		case kindFillAhead:
			r.fills = append(r.fills, h.pos)
		case kindIndex:
			ix, err := decodeIndex(payload, uint32(off))
			if err != nil || h.pos != base || !sameIndex(ix, r.ix) {
				return r, corruptf("segment %s: index record at offset %d does not match the segment's records (%v)", path, off, err)
			}
			r.end, r.sealed = uint32(off), true
			return r, nil
		}
		off += recHeaderSize + int(h.len)
	}
	r.end = uint32(off)
	last := lastNonZero(data)
	if last < off {
		return r, nil // a clean end: nothing but zeros follows
	}
	// Every offset after the end is tried as a record: one of a later group
	// means the bad record was acknowledged; one of the same (torn) group
	// must not come back when a later group ends before it, so the bytes up
	// to the end of the last such record are zeroed (from the end on: what
	// is left after them decodes at no offset, whatever is written before
	// it). Bytes that decode nowhere (a torn write, zeros, or a reused
	// file's former records) stay.
	//
	// Only offsets whose header could be a record of this segment written
	// after off have their CRC checked (the scan of a reused file tries
	// every offset of its old bytes, and a misread length would make a CRC
	// run for megabytes): its group begins at or before it, and a data or
	// junk record holds a position from expected on, at most one per
	// header's bytes after off (positions are written in order, each
	// record at least a header long); an index record the segment's base.
	//
	// Only offsets where a header can start are tried (headerStarts).
	for c := range headerStarts(data, off+1, last) {
		if !maybeLater(data[c:], uint32(c), expected, uint64(c-off)/recHeaderSize, base) {
			continue
		}
		h, ok := checkRecord(data[c:], seed)
		if !ok {
			continue
		}
		if h.gstart > uint32(off) && h.gstart <= uint32(c) {
			return r, corruptf("segment %s: record at offset %d (position %d) fails to decode, and a later group commit follows it at offset %d", path, off, expected, c)
		}
		r.zeroTo = max(r.zeroTo, c+recHeaderSize+int(h.len))
	}
	return r, nil
}

// headerStarts yields, in order, every offset c in [from, last] at which a
// whole record header fits in data and could start: a kind byte that is
// not zero, then three zero bytes. Every header ends so, and bytes.Index
// finds the runs of zeros many bytes at a time: trying every offset of a
// reused 64 MiB file instead took ~0.47 s of its Open, this ~0.13 s
// (BenchmarkOpenReused, old records rich in zero bytes).
func headerStarts(data []byte, from, last int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for o := from; o <= last && o+recHeaderSize <= len(data); {
			i := bytes.Index(data[o+kindOffset+1:], zeroTriple)
			if i < 0 {
				return
			}
			z := o + kindOffset + 1 + i // three zero bytes from z
			e := z + len(zeroTriple)
			for e < len(data) && data[e] == 0 {
				e++ // inside a run of zeros, the byte before is zero: no kind
			}
			c := z - kindOffset - 1
			// data[e] is not zero: the next run starts after it.
			o = e + 1 - kindOffset - 1
			if c > last {
				return
			}
			if data[c+kindOffset] != 0 && !yield(c) {
				return
			}
		}
	}
}

// maybeLater reports whether the header at the start of b, at offset o,
// can be a record written after the scan's end: see scanSegment.
func maybeLater(b []byte, o uint32, expected, span, base uint64) bool {
	if len(b) < recHeaderSize || b[21]|b[22]|b[23] != 0 || binary.LittleEndian.Uint32(b[16:]) > o {
		return false
	}
	pos := binary.LittleEndian.Uint64(b[8:])
	switch b[20] {
	case kindData, kindJunk:
		return pos >= expected && pos-expected <= span
	case kindFillAhead:
		return true
	case kindIndex:
		return pos == base
	}
	return false
}

// checkRecord reports whether b starts with a record that decodes (as
// decodeRecord would say), and its header, without building an error for
// the bytes that do not: the scan tries every offset of a torn tail, or of
// a reused file's old bytes.
func checkRecord(b []byte, seed uint32) (recHeader, bool) {
	if len(b) < recHeaderSize || b[21]|b[22]|b[23] != 0 || b[20] < kindData || b[20] > kindIndex {
		return recHeader{}, false
	}
	h, err := parseRecHeader(b)
	if err != nil || len(b) < recHeaderSize+int(h.len) {
		return recHeader{}, false
	}
	return h, binary.LittleEndian.Uint32(b) == crc32.Update(seed, castagnoli, b[4:recHeaderSize+int(h.len)])
}

func sameIndex(a, b segIndex) bool {
	if len(a.offs) != len(b.offs) {
		return false
	}
	for i := range a.offs {
		if a.offs[i] != b.offs[i] || a.kinds[i] != b.kinds[i] {
			return false
		}
	}
	return true
}

// lastNonZero returns the index of the last non-zero byte of b, or -1.
func lastNonZero(b []byte) int {
	i := len(b)
	for i >= len(zeroChunk) && bytes.Equal(b[i-len(zeroChunk):i], zeroChunk[:]) {
		i -= len(zeroChunk)
	}
	for i >= 8 && binary.LittleEndian.Uint64(b[i-8:]) == 0 {
		i -= 8
	}
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return i - 1
}

var zeroChunk [64 << 10]byte

// kindOffset is where a record header's kind byte is; three zero bytes
// follow it.
const kindOffset = 20

var zeroTriple = []byte{0, 0, 0}

// loadLast opens the last segment by scanning its records, cuts a torn tail
// (zeroing it on disk, durably) and returns the segment and the targets of
// its fill-ahead records.
func loadLast(path string, seq uint64, noSync bool) (*segment, []uint64, error) {
	f, h, err := openSegmentFile(path, seq)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*segment, []uint64, error) {
		f.Close()
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if fi.Size() > 4<<30 {
		return fail(corruptf("segment %s: %d bytes", path, fi.Size()))
	}
	// Only the part that may hold data is read: the rest of a preallocated
	// segment reads as zeros.
	written := dataEnd(f, fi.Size())
	data := make([]byte, max(written, min(fi.Size(), segHeaderSize)))
	if _, err := f.ReadAt(data, 0); err != nil {
		return fail(fmt.Errorf("segment %s: %w", path, err))
	}
	r, err := scanSegment(path, data, h)
	if err != nil {
		return fail(err)
	}
	if r.zeroTo > int(r.end) {
		if _, err := f.WriteAt(make([]byte, r.zeroTo-int(r.end)), int64(r.end)); err != nil {
			return fail(fmt.Errorf("segment %s: cut torn tail: %w", path, err))
		}
		if !noSync {
			if err := fdatasync(f); err != nil {
				return fail(fmt.Errorf("segment %s: cut torn tail: %w", path, err))
			}
		}
	}
	s := &segment{seq: seq, base: h.base, version: h.version, seed: h.seed(), path: path, f: f, offs: r.ix.offs, kinds: r.ix.kinds, end: r.end, sealed: r.sealed, alloc: fi.Size()}
	// What the file system holds as written data is prepared (zeros
	// written before a crash but never synced may be unwritten again: that
	// costs a group an extent conversion, nothing more).
	s.zeroed = max(int64(r.end), written)
	s.ready = s.zeroed
	return s, r.fills, nil
}

// syncDir fsyncs a directory, so that creations, renames and removals in it
// are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeFileAtomic replaces dir/name with data: a temporary file, written
// and synced, renamed over it, and the directory synced.
func writeFileAtomic(dir, name string, data []byte, mode os.FileMode, noSync bool) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && !noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil && !noSync {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// readMeta returns the trim point in dir's metadata file, and whether there
// is one.
func readMeta(dir string) (uint64, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	trim, err := decodeMeta(b)
	if err != nil {
		return 0, false, corruptf("%s: %v", filepath.Join(dir, metaName), err)
	}
	return trim, true, nil
}
