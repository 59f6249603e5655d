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

// recycleOpts: 64 KiB segments, the preparer on (NoSync), and spares of
// any size.
func recycleOpts() *Options {
	o := prepOpts(minSegmentSize)
	o.minSpare = 1
	return o
}

// recycledLog is a closed log whose last segment (3) reuses the file of
// segment 1, trimmed: its records, then segment 1's old bytes.
type recycledLog struct {
	dir      string
	spare    string // segment 1's spare, before segment 3 took it (in spareDir)
	spareDir string // a copy of the directory between the trim and the reuse
	seg      string // the last segment's file name
	old      []byte // segment 1's file as a spare
	trim     uint64 // the trim point
	first    uint64 // the first position of the last segment
	next     uint64 // the tail
	head     int64  // the end of the last segment's header
	end      int64  // the end of its last record
}

// appendPayloads appends payload(p) until cond holds, checking that each
// lands at p, the tail.
func appendPayloads(t *testing.T, l *Log, next *uint64, cond func() bool) {
	t.Helper()
	for !cond() {
		p, err := l.Append(context.Background(), payload(int(*next)))
		if err != nil || uint64(p) != *next {
			t.Fatalf("Append = %d, %v; want %d", p, err, *next)
		}
		*next++
	}
}

// buildRecycled writes a log (64 KiB segments, the preparer on, one spare)
// until segment 1 is trimmed and segment 3 reuses its file, and 6 records
// are in segment 3.
func buildRecycled(t *testing.T) recycledLog {
	t.Helper()
	ctx := context.Background()
	opts := recycleOpts()
	r := recycledLog{dir: t.TempDir()}
	l := mustOpen(t, r.dir, opts)
	appendPayloads(t, l, &r.next, func() bool { return activeSeg(l).seq == 2 })
	r.trim = activeSeg(l).base
	if err := l.Trim(ctx, log.Position(r.trim)); err != nil {
		t.Fatal(err)
	}
	r.spare = spareName(1)
	var err error
	if r.old, err = os.ReadFile(filepath.Join(r.dir, r.spare)); err != nil {
		t.Fatalf("segment 1 was not kept as a spare: %v", err)
	}
	before, err := os.Stat(filepath.Join(r.dir, r.spare))
	if err != nil {
		t.Fatal(err)
	}
	l.commitMu.Lock() // a copy between two groups
	r.spareDir = copyDir(t, r.dir)
	l.commitMu.Unlock()
	os.Remove(filepath.Join(r.spareDir, lockName))
	appendPayloads(t, l, &r.next, func() bool { return activeSeg(l).seq == 3 })
	act := activeSeg(l)
	r.first, r.seg, r.head = act.base, filepath.Base(act.path), segHeaderSize
	appendPayloads(t, l, &r.next, func() bool { return r.next >= r.first+6 })
	r.end = int64(activeSeg(l).end)
	if st := l.Stats(); st.Recycled != 1 {
		t.Fatalf("Recycled = %d, want 1", st.Recycled)
	}
	prepIdle(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(filepath.Join(r.dir, r.seg))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("segment 3 is not segment 1's file")
	}
	if _, err := os.Stat(filepath.Join(r.dir, r.spare)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the spare is still there after its reuse: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(r.dir, r.seg))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) < r.end+1000 || !bytes.Equal(b[r.end:r.end+1000], r.old[r.end:r.end+1000]) || lastNonZero(b[r.end:r.end+1000]) < 0 {
		t.Fatal("the reused file does not hold segment 1's old records after segment 3's")
	}
	return r
}

// checkRecycled opens d and checks positions [trim, keep) read their
// payloads, those below trim ErrTrimmed, keep ErrNotWritten; it appends
// payload(keep) and checks it reads back after a reopen.
func checkRecycled(t *testing.T, d string, trim, keep uint64) {
	t.Helper()
	ctx := context.Background()
	opts := recycleOpts()
	for round := range 2 {
		l, err := Open(d, opts)
		if err != nil {
			t.Fatalf("round %d: Open: %v", round, err)
		}
		want := keep + uint64(round)
		for p := uint64(0); p < want; p++ {
			got, err := l.Read(ctx, log.Position(p))
			switch {
			case p < trim:
				if !errors.Is(err, log.ErrTrimmed) {
					l.Close()
					t.Fatalf("round %d: Read(%d) below the trim point %d = %v, want ErrTrimmed", round, p, trim, err)
				}
			case err != nil || !bytes.Equal(got, payload(int(p))):
				l.Close()
				t.Fatalf("round %d: Read(%d) = %d bytes, %v; want the entry", round, p, len(got), err)
			}
		}
		if _, err := l.Read(ctx, log.Position(want)); !errors.Is(err, log.ErrNotWritten) {
			l.Close()
			t.Fatalf("round %d: Read(%d) at the tail = %v, want ErrNotWritten", round, want, err)
		}
		if round == 0 {
			if p, err := l.Append(ctx, payload(int(keep))); err != nil || uint64(p) != keep {
				l.Close()
				t.Fatalf("Append after reopen = %d, %v; want %d", p, err, keep)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecycleReusesTrimmedFile: a trim keeps the trimmed segment's file as
// a spare, the next segment takes it (the same file, its old records still
// after the new ones: buildRecycled), nothing of the old life reads back,
// positions below the trim point read ErrTrimmed across reopen, and the
// cycle goes on (the next trim makes segment 2 a spare, segment 4 takes
// it).
func TestRecycleReusesTrimmedFile(t *testing.T) {
	ctx := context.Background()
	r := buildRecycled(t)
	checkRecycled(t, r.dir, r.trim, r.next)
	next := r.next + 1
	l := mustOpen(t, r.dir, recycleOpts())
	defer l.Close()
	if err := l.Trim(ctx, log.Position(r.first)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.dir, spareName(2))); err != nil {
		t.Fatalf("segment 2 not kept as a spare: %v", err)
	}
	appendPayloads(t, l, &next, func() bool { return activeSeg(l).seq == 4 })
	if st := l.Stats(); st.Recycled != 1 {
		t.Fatalf("Recycled = %d after segment 4 started, want 1", st.Recycled)
	}
	l.segMu.RLock()
	for _, s := range l.segs {
		if s.seq < 3 {
			t.Errorf("segment %d (a spare) is among the live segments", s.seq)
		}
	}
	l.segMu.RUnlock()
	for p := uint64(0); p < next; p++ {
		got, err := l.Read(ctx, log.Position(p))
		if p < r.first {
			if !errors.Is(err, log.ErrTrimmed) {
				t.Fatalf("Read(%d) = %v, want ErrTrimmed", p, err)
			}
		} else if err != nil || !bytes.Equal(got, payload(int(p))) {
			t.Fatalf("Read(%d) = %d bytes, %v", p, len(got), err)
		}
	}
}

// TestTornTailRecycledEveryOffset: the last record of a segment in a
// reused file cut at every byte offset, the rest of it still the file's
// old bytes (a crash in the middle of its group: the bytes after the cut,
// or before it, never written): Open cuts it off, keeps every earlier
// record, takes the next append at its position and keeps it across
// another reopen; no old record ever reads back.
func TestTornTailRecycledEveryOffset(t *testing.T) {
	r := buildRecycled(t)
	l := mustOpen(t, r.dir, recycleOpts())
	sp := spanOf(t, l, r.next-1)
	l.Close()
	if sp.path != r.seg {
		t.Fatalf("the last record is in %s, not in the reused %s", sp.path, r.seg)
	}
	for _, mode := range []string{"old bytes after the cut", "old bytes before the cut"} {
		for cut := sp.from; cut < sp.to; cut++ {
			t.Run(fmt.Sprintf("%s at byte %d", mode, cut-sp.from), func(t *testing.T) {
				d := copyDir(t, r.dir)
				patchFile(t, filepath.Join(d, sp.path), func(b []byte) {
					if mode == "old bytes after the cut" {
						copy(b[cut:sp.to], r.old[cut:sp.to])
					} else {
						copy(b[sp.from:cut+1], r.old[sp.from:cut+1])
					}
				})
				checkRecycled(t, d, r.trim, r.next-1)
			})
		}
	}
}

// TestRecycleCrashPoints: the crash boundaries of reusing a file
// (recycle.go), each as the directory a crash there leaves.
func TestRecycleCrashPoints(t *testing.T) {
	r := buildRecycled(t)
	t.Run("trimmed segment not yet renamed to a spare", func(t *testing.T) {
		d := copyDir(t, r.spareDir)
		if err := os.Rename(filepath.Join(d, r.spare), filepath.Join(d, segName(1))); err != nil {
			t.Fatal(err)
		}
		l := mustOpen(t, d, recycleOpts())
		defer l.Close()
		if _, err := os.Stat(filepath.Join(d, r.spare)); err != nil {
			t.Fatalf("Open did not make the trimmed segment a spare: %v", err)
		}
		if _, err := l.Read(context.Background(), log.Position(r.trim-1)); !errors.Is(err, log.ErrTrimmed) {
			t.Fatalf("Read below the trim point = %v, want ErrTrimmed", err)
		}
		if s := activeSeg(l); s.seq != 2 {
			t.Fatalf("active segment %d, want 2", s.seq)
		}
	})
	t.Run("spare header rewritten before the rename", func(t *testing.T) {
		d := copyDir(t, r.spareDir)
		// The header and a fill-ahead record of segment 3 written over
		// the spare, the rename never done.
		head := encodeSegHeader(segHeader{seq: 3, base: 5000})
		head = appendRecord(head, segSeed(segVersion, 3), kindFillAhead, 5003, segHeaderSize, nil)
		patchFile(t, filepath.Join(d, r.spare), func(b []byte) { copy(b, head) })
		l := mustOpen(t, d, recycleOpts())
		if _, err := os.Stat(filepath.Join(d, r.spare)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Open kept a spare whose header names segment 3: %v", err)
		}
		tail, err := l.Tail(context.Background())
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		checkRecycled(t, d, r.trim, uint64(tail))
	})
	t.Run("renamed, no group written yet", func(t *testing.T) {
		d := copyDir(t, r.dir)
		// Segment 3 as the roll leaves it: its header over the old file,
		// the old bytes after it.
		patchFile(t, filepath.Join(d, r.seg), func(b []byte) { copy(b[r.head:r.end], r.old[r.head:r.end]) })
		checkRecycled(t, d, r.trim, r.first)
	})
	t.Run("torn group over old bytes, a later group after it", func(t *testing.T) {
		d := copyDir(t, r.dir)
		l := mustOpen(t, d, recycleOpts())
		sp := spanOf(t, l, r.first+1)
		l.Close()
		// A byte of an acknowledged record, below the tail, back to its
		// old value: corruption, not a torn tail.
		patchFile(t, filepath.Join(d, r.seg), func(b []byte) {
			i := sp.from + recHeaderSize + 1
			if b[i] == r.old[i] {
				b[i] ^= 0xff
			} else {
				b[i] = r.old[i]
			}
		})
		if l, err := Open(d, recycleOpts()); !errors.Is(err, log.ErrCorrupt) {
			if err == nil {
				l.Close()
			}
			t.Fatalf("Open = %v, want log.ErrCorrupt", err)
		}
	})
	t.Run("spares below 1 MiB deleted", func(t *testing.T) {
		d := copyDir(t, r.spareDir)
		l := mustOpen(t, d, prepOpts(minSegmentSize))
		defer l.Close()
		if _, err := os.Stat(filepath.Join(d, r.spare)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Open kept a spare of %d bytes: %v", len(r.old), err)
		}
	})
	t.Run("no spares kept when they are off", func(t *testing.T) {
		d := copyDir(t, r.spareDir)
		l := mustOpen(t, d, &Options{NoSync: true, SegmentSize: minSegmentSize})
		defer l.Close()
		if _, err := os.Stat(filepath.Join(d, r.spare)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Open without spares kept one: %v", err)
		}
	})
}

// TestFlippedByteInRecycledSegment: a byte flipped in a record of a sealed
// segment that reuses a file is reported by Read as log.ErrCorrupt, and
// nothing reads back as other data; one flipped in its index or trailer
// (the trailer at the end of the file, after the old bytes) by Open.
func TestFlippedByteInRecycledSegment(t *testing.T) {
	ctx := context.Background()
	r := buildRecycled(t)
	l := mustOpen(t, r.dir, recycleOpts())
	next := r.next
	appendPayloads(t, l, &next, func() bool { return activeSeg(l).seq == 4 })
	sp := spanOf(t, l, r.first+2)
	l.Close()
	if sp.path != r.seg {
		t.Fatalf("position %d in %s, want %s", r.first+2, sp.path, r.seg)
	}
	for _, o := range recordBytes(sp) {
		d := copyDir(t, r.dir)
		patchFile(t, filepath.Join(d, sp.path), func(b []byte) { b[o] ^= 0x20 })
		l, err := Open(d, recycleOpts())
		if err != nil {
			if !errors.Is(err, log.ErrCorrupt) {
				t.Fatalf("byte %d: Open = %v", o, err)
			}
			continue
		}
		detected := false
		for p := r.trim; p < next; p++ {
			got, err := l.Read(ctx, log.Position(p))
			switch {
			case err == nil:
				if !bytes.Equal(got, payload(int(p))) {
					t.Fatalf("byte %d: Read(%d) returned other data", o, p)
				}
			case errors.Is(err, log.ErrCorrupt):
				detected = true
			default:
				t.Fatalf("byte %d: Read(%d) = %v", o, p, err)
			}
		}
		l.Close()
		if !detected {
			t.Fatalf("byte %d of a record flipped: not reported", o)
		}
	}
	b, err := os.ReadFile(filepath.Join(r.dir, r.seg))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := decodeTrailer(b[len(b)-trailerSize:])
	if err != nil {
		t.Fatalf("the sealed reused segment has no trailer at its end: %v", err)
	}
	var offs []int
	for o := int(tr.indexOff); o < int(tr.indexOff+tr.indexLen); o += max(1, int(tr.indexLen)/40) {
		offs = append(offs, o)
	}
	for o := len(b) - trailerSize; o < len(b); o++ {
		offs = append(offs, o)
	}
	for _, o := range offs {
		d := copyDir(t, r.dir)
		patchFile(t, filepath.Join(d, r.seg), func(b []byte) { b[o] ^= 0x04 })
		if l, err := Open(d, recycleOpts()); !errors.Is(err, log.ErrCorrupt) {
			if err == nil {
				l.Close()
			}
			t.Fatalf("byte %d of the index or trailer flipped: Open = %v, want log.ErrCorrupt", o, err)
		}
	}
}

// TestFormatV1DirectoryOpens: a directory written before the format
// change (testdata/v1log, by d257e70: segment 1 sealed, segment 2
// unsealed, trim point 20, junk at 402, a fill ahead at 410, tail 406)
// opens and reads as written, takes appends into its version-1 segment and
// new version-2 segments, and a trim past the old segments deletes them
// instead of keeping them as spares.
func TestFormatV1DirectoryOpens(t *testing.T) {
	ctx := context.Background()
	d := copyDir(t, "testdata/v1log")
	opts := recycleOpts()
	check := func(l *Log, upto uint64) {
		t.Helper()
		for p := uint64(0); p < upto; p++ {
			got, err := l.Read(ctx, log.Position(p))
			switch {
			case p < 20:
				if !errors.Is(err, log.ErrTrimmed) {
					t.Fatalf("Read(%d) = %v, want ErrTrimmed", p, err)
				}
			case p == 402 || p == 410:
				if !errors.Is(err, log.ErrFilled) {
					t.Fatalf("Read(%d) = %v, want ErrFilled", p, err)
				}
			case p < 402:
				if err != nil || !bytes.Equal(got, payload(int(p))) {
					t.Fatalf("Read(%d) = %d bytes, %v", p, len(got), err)
				}
			case p < 406:
				if err != nil || !bytes.Equal(got, payload(int(p-1))) {
					t.Fatalf("Read(%d) = %d bytes, %v", p, len(got), err)
				}
			default:
				if err != nil || !bytes.Equal(got, payload(int(p))) {
					t.Fatalf("Read(%d) = %d bytes, %v", p, len(got), err)
				}
			}
		}
	}
	l := mustOpen(t, d, opts)
	if tail, _ := l.Tail(ctx); tail != 406 {
		t.Fatalf("Tail = %d, want 406", tail)
	}
	check(l, 406)
	if s := activeSeg(l); s.version != segVersionV1 || s.seq != 2 {
		t.Fatalf("active segment %d of version %d, want the old segment 2", s.seq, s.version)
	}
	next := uint64(406)
	for activeSeg(l).seq < 4 {
		if next == 410 {
			next++
		}
		p, err := l.Append(ctx, payload(int(next)))
		if err != nil || uint64(p) != next {
			t.Fatalf("Append = %d, %v; want %d", p, err, next)
		}
		next++
	}
	if s := activeSeg(l); s.version != segVersion {
		t.Fatalf("new segment of version %d", s.version)
	}
	l.Close()
	l = mustOpen(t, d, opts)
	check(l, next)
	trim := activeSeg(l).base
	if err := l.Trim(ctx, log.Position(trim)); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{1, 2} {
		for _, name := range []string{segName(seq), spareName(seq)} {
			if _, err := os.Stat(filepath.Join(d, name)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s after a trim past it: %v", name, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(d, spareName(3))); err != nil {
		t.Fatalf("version-2 segment 3 not kept as a spare: %v", err)
	}
	l.Close()
}
