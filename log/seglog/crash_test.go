package seglog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

// payload is the deterministic entry number i of the crash tests.
func payload(i int) []byte {
	n := 20 + (i*37)%300
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*131 + j*7)
	}
	return b
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func patchFile(t *testing.T, path string, fn func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fn(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// recordSpan is where position p's record lies: its segment file and the
// byte range of the record.
type recordSpan struct {
	path     string
	from, to int
}

func spanOf(t *testing.T, l *Log, p uint64) recordSpan {
	t.Helper()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	s, i := l.find(p)
	if s == nil {
		t.Fatalf("no segment holds %d", p)
	}
	from, _ := s.span(i)
	b := make([]byte, recHeaderSize)
	if _, err := s.f.ReadAt(b, int64(from)); err != nil {
		t.Fatal(err)
	}
	h, err := parseRecHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return recordSpan{path: filepath.Base(s.path), from: int(from), to: int(from) + recHeaderSize + int(h.len)}
}

// TestTornTailEveryOffset cuts the last record at every byte offset, as a
// crash in the middle of its group commit leaves it (the bytes after the cut
// still zero from preallocation, or the bytes before the cut lost and those
// after it written), and checks that Open cuts it off, keeps every earlier
// record, and appends after it.
//
// With the preparer on (zeros written ahead of the groups: prepare.go), the
// same for a torn record followed by prepared zeros, in a segment that grows.
func TestTornTailEveryOffset(t *testing.T) {
	t.Run("preallocated", func(t *testing.T) {
		testTornTailEveryOffset(t, &Options{NoSync: true, SegmentSize: minSegmentSize}, []string{"prefix-written", "suffix-written"})
	})
	t.Run("prepared", func(t *testing.T) {
		testTornTailEveryOffset(t, prepOpts(1<<20), []string{"prefix-written"})
	})
}

func testTornTailEveryOffset(t *testing.T, opts *Options, modes []string) {
	ctx := context.Background()
	dir := t.TempDir()
	l := mustOpen(t, dir, opts)
	const n = 6
	for i := range n {
		if p, err := l.Append(ctx, payload(i)); err != nil || p != log.Position(i) {
			t.Fatalf("Append %d = %d, %v", i, p, err)
		}
	}
	sp := spanOf(t, l, n-1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		for cut := sp.from; cut < sp.to; cut++ {
			d := copyDir(t, dir)
			patchFile(t, filepath.Join(d, sp.path), func(b []byte) {
				if mode == "prefix-written" {
					clear(b[cut:sp.to])
				} else {
					clear(b[sp.from : cut+1])
				}
			})
			name := fmt.Sprintf("%s cut at byte %d of the record", mode, cut-sp.from)
			l, err := Open(d, opts)
			if err != nil {
				t.Fatalf("%s: Open: %v", name, err)
			}
			for i := range n - 1 {
				got, err := l.Read(ctx, log.Position(i))
				if err != nil || !bytes.Equal(got, payload(i)) {
					t.Fatalf("%s: Read(%d) = %d bytes, %v; want the entry", name, i, len(got), err)
				}
			}
			if _, err := l.Read(ctx, n-1); !errors.Is(err, log.ErrNotWritten) {
				t.Fatalf("%s: Read of the torn record = %v, want ErrNotWritten", name, err)
			}
			if p, err := l.Append(ctx, []byte("after")); err != nil || p != n-1 {
				t.Fatalf("%s: Append after the cut = %d, %v; want %d", name, p, err, n-1)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// The cut is durable: the old bytes are gone, the new record
			// reads back after another reopen.
			l = mustOpen(t, d, opts)
			if got, err := l.Read(ctx, n-1); err != nil || string(got) != "after" {
				t.Fatalf("%s: Read(%d) after a second reopen = %q, %v", name, n-1, got, err)
			}
			l.Close()
		}
	}
}

// buildLog writes a log whose first segments are sealed (small segments,
// one entry per group) and returns its directory, the number of entries
// and the span of each.
func buildLog(t *testing.T, entries int) (string, []recordSpan) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	l := mustOpen(t, dir, &Options{NoSync: true, SegmentSize: minSegmentSize})
	for i := range entries {
		data := payload(i)
		if i%50 == 7 {
			data = bytes.Repeat(data, 60) // a few large records
		}
		if _, err := l.Append(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	spans := make([]recordSpan, entries)
	for i := range spans {
		spans[i] = spanOf(t, l, uint64(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, spans
}

func entryData(i int) []byte {
	if i%50 == 7 {
		return bytes.Repeat(payload(i), 60)
	}
	return payload(i)
}

// checkFlip opens d (where one byte was flipped) and reads every position.
// Open or some Read must report log.ErrCorrupt, and nothing may read back
// as anything but the entry written there.
func checkFlip(t *testing.T, d, name string, entries int, mustDetect bool) {
	t.Helper()
	ctx := context.Background()
	l, err := Open(d, &Options{NoSync: true, SegmentSize: minSegmentSize})
	if err != nil {
		if !errors.Is(err, log.ErrCorrupt) {
			t.Fatalf("%s: Open = %v, want nil or an error wrapping log.ErrCorrupt", name, err)
		}
		return
	}
	defer l.Close()
	detected := false
	for i := range entries {
		got, err := l.Read(ctx, log.Position(i))
		switch {
		case err == nil:
			if !bytes.Equal(got, entryData(i)) {
				t.Fatalf("%s: Read(%d) returned wrong data", name, i)
			}
		case errors.Is(err, log.ErrCorrupt):
			detected = true
		case !mustDetect && errors.Is(err, log.ErrNotWritten):
		default:
			t.Fatalf("%s: Read(%d) = %v, want the entry or log.ErrCorrupt", name, i, err)
		}
	}
	if mustDetect && !detected {
		t.Fatalf("%s: neither Open nor any Read reported the flipped byte", name)
	}
}

// recordBytes returns every byte offset of the record's header and a
// sample of 16 or more of its payload's, the first and last included.
func recordBytes(sp recordSpan) []int {
	var offs []int
	step := max(1, (sp.to-sp.from-recHeaderSize)/16)
	for o := sp.from; o < sp.to; o++ {
		if o < sp.from+recHeaderSize || (o-sp.from)%step == 0 || o == sp.to-1 {
			offs = append(offs, o)
		}
	}
	return offs
}

// TestFlippedByteReported flips single bytes of a sealed segment (its
// header, records, index and trailer) and of the last segment (records of
// groups before the last), and checks that Open or Read reports each one as
// log.ErrCorrupt, and that nothing reads back as other data.
func TestFlippedByteReported(t *testing.T) {
	const entries = 400
	dir, spans := buildLog(t, entries)
	seqs, err := listSegments(dir)
	if err != nil || len(seqs) < 3 {
		t.Fatalf("want at least 3 segments, got %v (%v)", seqs, err)
	}
	first := segName(seqs[0])
	last := segName(seqs[len(seqs)-1])
	fi, err := os.Stat(filepath.Join(dir, first))
	if err != nil {
		t.Fatal(err)
	}
	size := int(fi.Size())

	var offsets []int
	for o := range segHeaderSize {
		offsets = append(offsets, o)
	}
	var inFirst []recordSpan
	for _, sp := range spans {
		if sp.path == first {
			inFirst = append(inFirst, sp)
		}
	}
	for _, sp := range []recordSpan{inFirst[0], inFirst[len(inFirst)/2], inFirst[len(inFirst)-1]} {
		offsets = append(offsets, recordBytes(sp)...)
	}
	// The index record and the trailer.
	offsets = append(offsets, recordBytes(recordSpan{from: inFirst[len(inFirst)-1].to, to: size - trailerSize})...)
	for o := size - trailerSize; o < size; o++ {
		offsets = append(offsets, o)
	}
	// Flipped in place and back: Open changes nothing in a log whose last
	// segment has no torn tail, and writes nothing where it finds corruption.
	d := copyDir(t, dir)
	for _, o := range offsets {
		patchFile(t, filepath.Join(d, first), func(b []byte) { b[o] ^= 0x20 })
		checkFlip(t, d, fmt.Sprintf("sealed segment, byte %d", o), entries, true)
		patchFile(t, filepath.Join(d, first), func(b []byte) { b[o] ^= 0x20 })
	}

	// The last segment: every byte of its first records (groups followed by
	// later groups) is detected.
	var inLast []recordSpan
	for _, sp := range spans {
		if sp.path == last {
			inLast = append(inLast, sp)
		}
	}
	if len(inLast) < 3 {
		t.Fatalf("last segment holds %d records, want 3 or more", len(inLast))
	}
	for _, sp := range inLast[:2] {
		for _, o := range recordBytes(sp) {
			patchFile(t, filepath.Join(d, last), func(b []byte) { b[o] ^= 0x01 })
			checkFlip(t, d, fmt.Sprintf("last segment, byte %d", o), entries, true)
			patchFile(t, filepath.Join(d, last), func(b []byte) { b[o] ^= 0x01 })
		}
	}
	// A flip in the last group cannot be told from a torn write: it is cut
	// off with it, and nothing else changes.
	sp := inLast[len(inLast)-1]
	for o := sp.from; o < sp.to; o += 7 {
		d := copyDir(t, dir)
		patchFile(t, filepath.Join(d, last), func(b []byte) { b[o] ^= 0x01 })
		checkFlip(t, d, fmt.Sprintf("last group, byte %d", o), entries, false)
	}
}

// TestMissingOrBadFiles: a missing metadata file next to segments, a bad
// metadata file, and a sealed segment missing from the middle are reported
// as corruption.
func TestMissingOrBadFiles(t *testing.T) {
	dir, _ := buildLog(t, 700)
	seqs, _ := listSegments(dir)

	d := copyDir(t, dir)
	os.Remove(filepath.Join(d, metaName))
	if _, err := Open(d, nil); !errors.Is(err, log.ErrCorrupt) {
		t.Fatalf("Open without metadata = %v, want ErrCorrupt", err)
	}
	d = copyDir(t, dir)
	patchFile(t, filepath.Join(d, metaName), func(b []byte) { b[17] ^= 1 })
	if _, err := Open(d, nil); !errors.Is(err, log.ErrCorrupt) {
		t.Fatalf("Open with a flipped metadata byte = %v, want ErrCorrupt", err)
	}
	d = copyDir(t, dir)
	os.Remove(filepath.Join(d, segName(seqs[1])))
	if _, err := Open(d, nil); !errors.Is(err, log.ErrCorrupt) {
		t.Fatalf("Open with a segment missing = %v, want ErrCorrupt", err)
	}
	// Truncating a sealed segment loses its trailer.
	d = copyDir(t, dir)
	p := filepath.Join(d, segName(seqs[0]))
	fi, _ := os.Stat(p)
	os.Truncate(p, fi.Size()-3)
	if _, err := Open(d, nil); !errors.Is(err, log.ErrCorrupt) {
		t.Fatalf("Open with a truncated sealed segment = %v, want ErrCorrupt", err)
	}
}

// TestCrashDuringSeal: a crash after the index of the last segment was
// written but before the file was cut after it leaves a segment that scans
// as sealed but has no trailer at its end. Open seals it again, so that it
// opens as an older segment after the next roll too.
func TestCrashDuringSeal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := &Options{NoSync: true, SegmentSize: minSegmentSize}
	l := mustOpen(t, dir, opts)
	for i := range 10 {
		if _, err := l.Append(ctx, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	s := l.segs[len(l.segs)-1]
	ix := encodeIndex(segIndex{offs: s.offs, kinds: s.kinds})
	buf := appendRecord(nil, s.seed, kindIndex, s.base, s.end, ix)
	buf = append(buf, encodeTrailer(trailer{indexOff: s.end, indexLen: uint32(len(buf))})...)
	if _, err := s.f.WriteAt(buf, int64(s.end)); err != nil { // no truncate: the crash came first
		t.Fatal(err)
	}
	l.Close()
	for round := range 3 {
		l = mustOpen(t, dir, opts)
		for i := range 10 {
			if got, err := l.Read(ctx, log.Position(i)); err != nil || !bytes.Equal(got, payload(i)) {
				t.Fatalf("round %d: Read(%d) = %d bytes, %v", round, i, len(got), err)
			}
		}
		if _, err := l.Append(ctx, payload(10+round)); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
}

// TestCrashDuringTrimDeletes: a crash while Trim deletes segments may leave
// any of the trimmed ones behind, in any order; Open deletes them and reads
// as before, while a missing segment that is not trimmed is corruption.
func TestCrashDuringTrimDeletes(t *testing.T) {
	ctx := context.Background()
	dir, _ := buildLog(t, 700)
	seqs, _ := listSegments(dir)
	if len(seqs) < 4 {
		t.Fatalf("%d segments, want 4 or more", len(seqs))
	}
	l := mustOpen(t, dir, &Options{NoSync: true})
	// The trim point: the first position of the third segment.
	l.segMu.RLock()
	trim := l.segs[2].base
	l.segMu.RUnlock()
	l.Close()
	if err := writeFileAtomic(dir, metaName, encodeMeta(trim), 0o600, true); err != nil {
		t.Fatal(err)
	}
	// The second segment was deleted, the first not yet.
	if err := os.Remove(filepath.Join(dir, segName(seqs[1]))); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, &Options{NoSync: true})
	defer l.Close()
	if _, err := os.Stat(filepath.Join(dir, segName(seqs[0]))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the trimmed first segment is still there: %v", err)
	}
	if _, err := l.Read(ctx, log.Position(trim-1)); !errors.Is(err, log.ErrTrimmed) {
		t.Fatalf("Read(%d) = %v, want ErrTrimmed", trim-1, err)
	}
	if got, err := l.Read(ctx, log.Position(trim)); err != nil || !bytes.Equal(got, entryData(int(trim))) {
		t.Fatalf("Read(%d) = %d bytes, %v", trim, len(got), err)
	}
}
