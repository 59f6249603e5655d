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

// dirBytes returns the sum of the sizes of dir's files and, where the file
// system reports it, the sum of their allocated blocks (st_blocks*512; -1
// if unknown).
func dirBytes(t *testing.T, dir string) (size, blocks int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
		if b := allocated(fi); b >= 0 && blocks >= 0 {
			blocks += b
		} else {
			blocks = -1
		}
	}
	return size, blocks
}

func activeSeg(l *Log) *segment {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.segs[len(l.segs)-1]
}

// TestPreallocationSteps: a new segment is preallocated to one step and its
// preallocation doubles as groups fill it, up to SegmentSize; a group
// larger than the segment still fits.
func TestPreallocationSteps(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := mustOpen(t, dir, &Options{NoSync: true, SegmentSize: 512 << 10})
	defer l.Close()
	if _, err := l.Append(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if size, _ := dirBytes(t, dir); size > stepSize+4096 {
		t.Fatalf("a log of one entry takes %d bytes, want at most one step (%d) and the metadata", size, stepSize)
	}
	_, size0 := segFiles(t, dir)
	if size0 != stepSize {
		t.Fatalf("new segment is %d bytes, want one step (%d)", size0, stepSize)
	}
	fallocates := canPreallocate(t)
	data := bytes.Repeat([]byte("y"), 10000)
	want := []int64{stepSize, 2 * stepSize, 3 * stepSize, 4 * stepSize, 5 * stepSize}
	seen := map[int64]bool{}
	for i := 0; i < 45; i++ {
		if _, err := l.Append(ctx, data); err != nil {
			t.Fatal(err)
		}
		act := activeSeg(l)
		n, size := segFiles(t, dir)
		if n != 1 {
			t.Fatalf("after %d KB: %d segments, want 1", (i+1)*10, n)
		}
		if size != act.alloc || int64(act.end) > size {
			t.Fatalf("segment file is %d bytes, preallocation %d, data up to %d", size, act.alloc, act.end)
		}
		if fallocates {
			fi, err := os.Stat(act.path)
			if err != nil {
				t.Fatal(err)
			}
			if b := allocated(fi); b < size {
				t.Fatalf("segment file of %d bytes has %d bytes of blocks: the step is not preallocated", size, b)
			}
		}
		seen[size] = true
	}
	for _, w := range want {
		if !seen[w] {
			t.Fatalf("segment sizes seen %v, want each of %v", seen, want)
		}
	}
	// A group that does not fit in 512 KiB starts a new segment, at one
	// step, grown by at most one more for what follows.
	for range 10 {
		if _, err := l.Append(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	if act := activeSeg(l); act.seq != 2 || act.alloc > 2*stepSize {
		t.Fatalf("segment %d after a full one holds %d bytes, want segment 2 of at most two steps", act.seq, act.alloc)
	}
	// One entry larger than a whole segment.
	big := bytes.Repeat([]byte("z"), 600<<10)
	p, err := l.Append(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Read(ctx, p); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Read of a group larger than a segment = %d bytes, %v", len(got), err)
	}
	l.Close()
	l = mustOpen(t, dir, &Options{NoSync: true, SegmentSize: 512 << 10})
	if got, err := l.Read(ctx, p); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("after reopen Read = %d bytes, %v", len(got), err)
	}
}

// TestDiskFollowsTrim: with the default Options (64 MiB segments) but no
// spares, a loop of appends and trims near the tail keeps the directory
// within four preallocation steps: the active segment is retired once a
// trim leaves a step below its point (so it holds at most a step plus what
// is appended between two trims, under two steps of preallocation), and the
// segment before it is deleted by the next trim.
//
// The default keeps no spare of less than 1 MiB (recycle.go), so the same
// bound holds. With spares of any size, the directory holds the active
// segment, the retired one until the next trim and the spare, each cut at
// its written blocks (up to two steps of zeros past its records): within
// eight steps, however much is appended, and after the first segments the
// preparer writes no more zeros (the files are reused).
func TestDiskFollowsTrim(t *testing.T) {
	t.Run("no spares", func(t *testing.T) {
		testDiskFollowsTrim(t, &Options{Spares: -1}, 4*stepSize, 400)
	})
	t.Run("default: files below 1 MiB not kept", func(t *testing.T) {
		l := testDiskFollowsTrim(t, nil, 4*stepSize, 400)
		if st := l.Stats(); st.Recycled != 0 {
			t.Fatalf("%d segments from spares of less than 1 MiB", st.Recycled)
		}
	})
	t.Run("spares", func(t *testing.T) {
		l := testDiskFollowsTrim(t, &Options{minSpare: 1}, 8*stepSize, 1000)
		st := l.Stats()
		if st.Recycled < 10 || st.Prepared > 8*stepSize {
			t.Fatalf("%d segments from spares, %d bytes of zeros written: want most segments reused and the zeros bounded", st.Recycled, st.Prepared)
		}
	})
}

func testDiskFollowsTrim(t *testing.T, opts *Options, bound int64, rounds int) *Log {
	ctx := context.Background()
	dir := t.TempDir()
	l := mustOpen(t, dir, opts)
	t.Cleanup(func() { l.Close() })
	batch := make([][]byte, 10)
	var written, maxSize, maxBlocks int64
	var last log.Position
	for round := 0; round < rounds; round++ {
		for i := range batch {
			batch[i] = payload(round*len(batch) + i)
			written += int64(len(batch[i]))
		}
		ps, err := l.AppendBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		last = ps[len(ps)-1]
		if round%4 == 3 {
			if err := l.Trim(ctx, last-15); err != nil {
				t.Fatal(err)
			}
		}
		size, blocks := dirBytes(t, dir)
		if size > bound || blocks > bound+3*4096 {
			t.Fatalf("round %d: the directory holds %d bytes (%d allocated), want at most %d (+ the blocks of meta and LOCK)", round, size, blocks, bound)
		}
		maxSize, maxBlocks = max(maxSize, size), max(maxBlocks, blocks)
	}
	if written < 2*bound {
		t.Fatalf("only %d bytes written: the bound is not exercised", written)
	}
	if seq := activeSeg(l).seq; seq < 5 {
		t.Fatalf("the active segment is number %d: trims near the tail did not retire segments", seq)
	}
	for p := last - 15; p <= last; p++ {
		if got, err := l.Read(ctx, p); err != nil || !bytes.Equal(got, payload(int(p))) {
			t.Fatalf("Read(%d) above the trim point = %d bytes, %v", p, len(got), err)
		}
	}
	t.Logf("%d bytes written; directory at most %d bytes, %d allocated", written, maxSize, maxBlocks)
	return l
}

// TestRetireNeedsHalf: a trim far below the tail (most of the segment still
// live) does not cut the segment short; one that leaves more than half of
// it (and a step) below its point does, at once (no group needed), and the
// next trim past its end deletes it. Nothing above a trim point is lost,
// also across reopen.
func TestRetireNeedsHalf(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := &Options{NoSync: true}
	l := mustOpen(t, dir, opts)
	data := bytes.Repeat([]byte("d"), 1000)
	for range 400 {
		if _, err := l.Append(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	first := activeSeg(l).seq
	if err := l.Trim(ctx, 100); err != nil { // a quarter dead: kept
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, data); err != nil {
		t.Fatal(err)
	}
	if seq := activeSeg(l).seq; seq != first {
		t.Fatalf("a trim leaving three quarters live rolled to segment %d", seq)
	}
	if err := l.Trim(ctx, 300); err != nil { // three quarters dead
		t.Fatal(err)
	}
	if n, _ := segFiles(t, dir); n != 2 || activeSeg(l).seq != first+1 {
		t.Fatalf("after a trim leaving three quarters dead, before any group: %d segments, active %d; want 2, %d", n, activeSeg(l).seq, first+1)
	}
	p, err := l.Append(ctx, []byte("next"))
	if err != nil {
		t.Fatal(err)
	}
	if seq := activeSeg(l).seq; seq != first+1 {
		t.Fatalf("the next group went to segment %d, want %d", seq, first+1)
	}
	// The retired segment's blocks below the trim point are freed (where
	// the file system punches holes); its size and its live records stay.
	if canPreallocate(t) {
		fi, err := os.Stat(filepath.Join(dir, segName(first)))
		if err != nil {
			t.Fatal(err)
		}
		if b := allocated(fi); b > fi.Size()-250<<10 {
			t.Fatalf("retired segment of %d bytes keeps %d bytes of blocks with 300 KB below the trim point", fi.Size(), b)
		}
	}
	for q := log.Position(300); q < p; q++ {
		if got, err := l.Read(ctx, q); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Read(%d) = %d bytes, %v", q, len(got), err)
		}
	}
	l.Close()
	l = mustOpen(t, dir, opts)
	defer l.Close()
	for q := log.Position(300); q < p; q++ {
		if got, err := l.Read(ctx, q); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after reopen Read(%d) = %d bytes, %v", q, len(got), err)
		}
	}
	if got, err := l.Read(ctx, p); err != nil || string(got) != "next" {
		t.Fatalf("after reopen Read(%d) = %q, %v", p, got, err)
	}
	if err := l.Trim(ctx, p); err != nil {
		t.Fatal(err)
	}
	if n, size := segFiles(t, dir); n != 1 || size != stepSize {
		t.Fatalf("after a trim past the retired segment: %d segments, %d bytes; want 1 of one step", n, size)
	}
	if got, err := l.Read(ctx, p); err != nil || string(got) != "next" {
		t.Fatalf("Read(%d) = %q, %v", p, got, err)
	}
}

// TestCrashAcrossStep: a crash in the middle of a group that extended the
// segment's preallocation, with the new size durable or not (the file cut
// back to the old step), leaves a torn tail that Open cuts; every earlier
// entry reads back and appends carry on, also after another reopen.
func TestCrashAcrossStep(t *testing.T) {
	ctx := context.Background()
	opts := &Options{NoSync: true}
	dir := t.TempDir()
	l := mustOpen(t, dir, opts)
	var entries [][]byte
	for i := 0; ; i++ {
		e := payload(i)
		if act := activeSeg(l); int(act.end)+recHeaderSize+len(e) > stepSize-200 {
			break
		}
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	big := bytes.Repeat([]byte{0xa5, 0x5a, 0x17}, 1500)
	n := len(entries)
	if p, err := l.Append(ctx, big); err != nil || p != log.Position(n) {
		t.Fatalf("Append = %d, %v", p, err)
	}
	sp := spanOf(t, l, uint64(n))
	if sp.from >= stepSize || sp.to <= stepSize || activeSeg(l).alloc != 2*stepSize {
		t.Fatalf("the last record spans [%d, %d) in a file of %d: it does not cross the first step", sp.from, sp.to, activeSeg(l).alloc)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var cuts []int
	for c := sp.from; c < sp.to; c += 401 {
		cuts = append(cuts, c)
	}
	cuts = append(cuts, stepSize-1, stepSize, stepSize+1, sp.to-1)
	for _, mode := range []string{"prefix-written", "suffix-written", "size-lost"} {
		for _, cut := range cuts {
			if mode == "size-lost" && cut >= stepSize {
				continue
			}
			d := copyDir(t, dir)
			path := filepath.Join(d, sp.path)
			patchFile(t, path, func(b []byte) {
				switch mode {
				case "prefix-written", "size-lost":
					clear(b[cut:sp.to])
				case "suffix-written":
					clear(b[sp.from : cut+1])
				}
			})
			if mode == "size-lost" {
				if err := os.Truncate(path, stepSize); err != nil {
					t.Fatal(err)
				}
			}
			name := fmt.Sprintf("%s cut at offset %d", mode, cut)
			l, err := Open(d, opts)
			if err != nil {
				t.Fatalf("%s: Open: %v", name, err)
			}
			for i, e := range entries {
				if got, err := l.Read(ctx, log.Position(i)); err != nil || !bytes.Equal(got, e) {
					t.Fatalf("%s: Read(%d) = %d bytes, %v", name, i, len(got), err)
				}
			}
			if _, err := l.Read(ctx, log.Position(n)); !errors.Is(err, log.ErrNotWritten) {
				t.Fatalf("%s: Read of the torn record = %v, want ErrNotWritten", name, err)
			}
			if p, err := l.Append(ctx, big); err != nil || p != log.Position(n) {
				t.Fatalf("%s: Append after the cut = %d, %v", name, p, err)
			}
			l.Close()
			l = mustOpen(t, d, opts)
			if got, err := l.Read(ctx, log.Position(n)); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("%s: after a second reopen Read(%d) = %d bytes, %v", name, n, len(got), err)
			}
			l.Close()
		}
	}
}

// TestCrashAroundRetire: a trim that retires the active segment rolls to a
// new one at once. A crash at any step of it loses nothing and keeps the
// trim: after the trim point was made durable but before the seal (the
// segment unsealed: the reopened log appends to it and a later trim
// retires it), after the seal but before the new segment was renamed into
// place (its temporary file left: the sealed segment opens as the last one,
// and a new one starts), and after the roll (the new segment holds no
// group, the retired one's dead blocks punched). Positions below the trim
// point read ErrTrimmed, those above it their data, appends carry on at the
// tail, and a trim past the retired segment deletes it.
func TestCrashAroundRetire(t *testing.T) {
	ctx := context.Background()
	opts := &Options{NoSync: true}
	dir := t.TempDir()
	l := mustOpen(t, dir, opts)
	data := bytes.Repeat([]byte("r"), 1000)
	for range 200 {
		if _, err := l.Append(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	before := copyDir(t, dir)
	var sealed string // crash after the seal, before the new segment
	l.opts.sealedHook = func() { sealed = copyDir(t, dir) }
	if err := l.Trim(ctx, 190); err != nil {
		t.Fatal(err)
	}
	if seq := activeSeg(l).seq; seq != 2 {
		t.Fatalf("a trim leaving 190 KB of 200 KB below it did not retire the segment: active %d", seq)
	}
	rolled := copyDir(t, dir) // crash right after the trim
	l.Close()

	// Crash after the trim point was written, before the seal.
	unsealed := before
	if err := writeFileAtomic(unsealed, metaName, encodeMeta(190), 0o600, true); err != nil {
		t.Fatal(err)
	}
	// Crash after the seal, inside the new segment's creation.
	if sealed == "" {
		t.Fatal("the trim did not seal the segment")
	}
	if err := os.WriteFile(filepath.Join(sealed, segName(2)+tmpSuffix), make([]byte, stepSize), 0o600); err != nil {
		t.Fatal(err)
	}

	above := map[log.Position][]byte{}
	for q := log.Position(190); q < 200; q++ {
		above[q] = data
	}
	for _, c := range []struct {
		name, dir string
		segs      int // segment files after Open
	}{
		{"crash before the seal", unsealed, 1},
		{"crash before the new segment's rename", sealed, 2},
		{"crash after the roll", rolled, 2},
	} {
		l, err := Open(c.dir, opts)
		if err != nil {
			t.Fatalf("%s: Open: %v", c.name, err)
		}
		if _, err := os.Stat(filepath.Join(c.dir, segName(2)+tmpSuffix)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the temporary segment file survived Open: %v", c.name, err)
		}
		if n, _ := segFiles(t, c.dir); n != c.segs {
			t.Fatalf("%s: %d segment files after Open, want %d", c.name, n, c.segs)
		}
		if _, err := l.Read(ctx, 189); !errors.Is(err, log.ErrTrimmed) {
			t.Fatalf("%s: Read(189) = %v, want ErrTrimmed", c.name, err)
		}
		for q, w := range above {
			if got, err := l.Read(ctx, q); err != nil || !bytes.Equal(got, w) {
				t.Fatalf("%s: Read(%d) = %d bytes, %v", c.name, q, len(got), err)
			}
		}
		p, err := l.Append(ctx, []byte("after"))
		if err != nil || p != 200 {
			t.Fatalf("%s: Append = %d, %v; want 200", c.name, p, err)
		}
		if c.segs == 1 {
			// The retire mark is not durable: the reopened log appended
			// to the old segment; the next trim retires it.
			if seq := activeSeg(l).seq; seq != 1 {
				t.Fatalf("%s: the group went to segment %d, want 1", c.name, seq)
			}
			if err := l.Trim(ctx, 199); err != nil {
				t.Fatal(err)
			}
			if seq := activeSeg(l).seq; seq == 1 {
				t.Fatalf("%s: a trim leaving 199 KB below it did not retire segment 1", c.name)
			}
		}
		// The first position of the segment after the retired one: a
		// trim there deletes the retired segment.
		if q, err := l.Append(ctx, []byte("again")); err != nil || q != 201 {
			t.Fatalf("%s: Append = %d, %v; want 201", c.name, q, err)
		}
		keep := log.Position(200) // the retired segment ends at 199
		if c.segs == 1 {
			keep = 201 // "after" went to the retired segment
		}
		if err := l.Trim(ctx, keep); err != nil {
			t.Fatal(err)
		}
		l.Close()
		if _, err := os.Stat(filepath.Join(c.dir, segName(1))); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: a trim past the retired segment kept it: %v", c.name, err)
		}
		l = mustOpen(t, c.dir, opts)
		for q, w := range map[log.Position]string{200: "after", 201: "again"} {
			got, err := l.Read(ctx, q)
			if q < keep {
				if !errors.Is(err, log.ErrTrimmed) {
					t.Fatalf("%s: after reopen Read(%d) = %v, want ErrTrimmed", c.name, q, err)
				}
				continue
			}
			if err != nil || string(got) != w {
				t.Fatalf("%s: after reopen Read(%d) = %q, %v", c.name, q, got, err)
			}
		}
		if _, err := l.Read(ctx, 199); !errors.Is(err, log.ErrTrimmed) {
			t.Fatalf("%s: after reopen Read(199) = %v, want ErrTrimmed", c.name, err)
		}
		l.Close()
	}
}

// TestTrimAtRestFreesDisk: a trim near the tail with no append after it (a
// checkpoint's trim at the end of a burst of writes) gives the dead part of
// the active segment back at once: the directory then holds about the live
// log and the new segment's first step, not the whole segment.
func TestTrimAtRestFreesDisk(t *testing.T) {
	if !canPreallocate(t) {
		t.Skip("no block allocation to measure on this file system")
	}
	ctx := context.Background()
	dir := t.TempDir()
	l := mustOpen(t, dir, nil) // with fdatasync and zeros written ahead, as cruzd
	defer l.Close()
	data := bytes.Repeat([]byte("s"), 1000)
	batch := make([][]byte, 20)
	for i := range batch {
		batch[i] = data
	}
	var last log.Position
	for range 20 { // 400 KB in one segment
		ps, err := l.AppendBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		last = ps[len(ps)-1]
	}
	_, full := dirBytes(t, dir)
	if err := l.Trim(ctx, last-20); err != nil { // ~20 KB live
		t.Fatal(err)
	}
	_, blocks := dirBytes(t, dir)
	if limit := int64(2*stepSize + 64<<10); blocks > limit {
		t.Fatalf("after a trim leaving ~20 KB live, no group since: %d bytes allocated (%d before), want at most %d", blocks, full, limit)
	}
	for q := last - 20; q <= last; q++ {
		if got, err := l.Read(ctx, q); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Read(%d) = %d bytes, %v", q, len(got), err)
		}
	}
	t.Logf("%d bytes allocated before the trim, %d after", full, blocks)
}

// canPreallocate reports whether preallocate allocates blocks in a file of
// the test's temporary directory (it falls back to a sparse file where the
// file system has no fallocate).
func canPreallocate(t *testing.T) bool {
	f, err := os.CreateTemp(t.TempDir(), "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := preallocate(f, stepSize); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	ok := allocated(fi) >= stepSize
	if !ok {
		t.Logf("no block preallocation here: only file sizes are checked")
	}
	return ok
}
