package seglog

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Segment files reused after a trim.
//
// Writing zeros ahead of the groups (prepare.go) keeps extent conversions
// out of their fdatasyncs, but writes every byte twice. A segment file that
// a trim no longer needs holds blocks already written: unless spares are
// off (Options.Spares), Trim keeps up to Options.Spares such files as
// spares, renamed NNNNNNNNNNNNNNNN.spare (the sequence number of their
// former life), instead of deleting them; the next new segment takes the
// largest spare instead of a new file, writes its header (and fill-ahead
// records) over the old one, and then needs zeros (or fallocate) only past
// the old file's size. A log whose trims follow its tail (cruzdb trims
// behind its checkpoints) so writes each block once, from the second
// segment life on.
//
// A reused file still holds the records of its former life after the new
// ones. Every record's CRC is started from a seed derived from its
// segment's sequence number (format.go), and every segment gets a new one,
// so no old record checks in the new life: the scan of the last segment
// sees the old bytes as bytes that are not a record (as it sees zeros or a
// torn write), Read never returns them, a record of the new life that fails
// its CRC below the tail is still found by the later groups after it, and a
// torn tail is cut at the same place as in a new file. Open zeroes only the
// records of the torn group that still decode, not the old bytes after
// them (they decode in no segment).
//
// Crash boundaries, in order:
//   - Trim renames a segment below the trim point to a spare, then syncs the
//     directory (as it did after deleting): a crash leaves the .seg name
//     (trimmed, found and made a spare again by the next Open) or the
//     .spare one. The trim point is in the metadata file, written before:
//     which files exist never moves it.
//   - A new segment from a spare: the header and fill-ahead records are
//     written over the spare's start and synced, then the spare is renamed
//     to the segment's name and the directory synced. A crash before the
//     rename leaves a spare whose header names another sequence number
//     than its file name: Open deletes it (it may hold fill-ahead records
//     of the sequence number the next segment will get). A crash after it
//     leaves the segment, with or without groups, which scans like any last
//     segment.
//   - A crash while a group overwrites a reused file leaves the torn
//     group's new bytes mixed with old ones: neither decodes, as in a new
//     file.
//
// Spares are not segments: Open lists only .seg files as segments, and a
// spare is read only for its header (the sequence number check above).
// Version-1 segments (before this format) are never made spares.

const spareSuffix = ".spare"

func spareName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, spareSuffix) }

// spare is a segment file kept for reuse.
type spare struct {
	path string
	size int64
}

// recycleOn reports whether trimmed segment files are kept as spares: only
// where blocks are written ahead of the groups (their cost is what a spare
// saves).
func (l *Log) recycleOn() bool { return l.prepareOn() && l.opts.Spares > 0 }

// defaultMinSpare: a segment file smaller than this is never kept as a
// spare. The zeros a small new file costs are few, while a spare beside a
// small log would double its disk (cruzd under redis-benchmark keeps
// 19 KB of data in a log of 55-130 KB whose segment files live for tens of
// milliseconds: bench/journal/2026-12-07-recycle20.md); a log that trims
// behind a tail moving megabytes between its trims reuses its files.
const defaultMinSpare = 1 << 20

// mayKeep reports whether a segment file of size bytes would be kept as a
// spare once trimmed: then its blocks are kept written (not cut at the
// seal, not punched).
func (l *Log) mayKeep(size int64) bool {
	min := int64(defaultMinSpare)
	if l.opts.minSpare != 0 {
		min = l.opts.minSpare
	}
	return l.recycleOn() && size >= min
}

// loadSpares lists dir's spares: those whose header is a version-2 header
// naming the sequence number of the file name are kept (the largest, up to
// Options.Spares, or none if recycling is off); the others are deleted.
func (l *Log) loadSpares() error {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var keep []spare
	for _, e := range ents {
		stem, ok := strings.CutSuffix(e.Name(), spareSuffix)
		if !ok || len(stem) != 16 {
			continue
		}
		path := filepath.Join(l.dir, e.Name())
		seq, err := strconv.ParseUint(stem, 16, 64)
		if err == nil && l.recycleOn() {
			if size, ok := checkSpare(path, seq); ok && l.mayKeep(size) {
				keep = append(keep, spare{path: path, size: size})
				continue
			}
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete spare %s: %w", path, err)
		}
	}
	slices.SortFunc(keep, func(a, b spare) int { return cmp.Compare(a.size, b.size) })
	for len(keep) > l.opts.Spares {
		if err := os.Remove(keep[0].path); err != nil {
			return fmt.Errorf("delete spare %s: %w", keep[0].path, err)
		}
		keep = keep[1:]
	}
	l.spares = keep
	return nil
}

// checkSpare reports whether the file at path is a spare of its former
// life seq (its header, version 2, says so), and its size.
func checkSpare(path string, seq uint64) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var hb [segHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return 0, false
	}
	h, err := decodeSegHeader(hb[:])
	if err != nil || h.version != segVersion || h.seq != seq {
		return 0, false
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, false
	}
	return fi.Size(), true
}

// keepSpare makes the file of s, a segment below the trim point that the
// caller has closed, a spare if recycling is on and it is worth keeping
// (version 2, at least 1 MiB, and among the Options.Spares largest);
// otherwise it deletes it. The caller syncs the directory.
func (l *Log) keepSpare(s *segment, size int64) error {
	if !l.mayKeep(size) || s.version != segVersion {
		return os.Remove(s.path)
	}
	// l.spares is sorted by size: the smallest goes first.
	if len(l.spares) >= l.opts.Spares {
		if l.spares[0].size >= size {
			return os.Remove(s.path)
		}
		if err := os.Remove(l.spares[0].path); err != nil {
			return err
		}
		l.spares = slices.Delete(l.spares, 0, 1)
	}
	path := filepath.Join(l.dir, spareName(s.seq))
	if err := os.Rename(s.path, path); err != nil {
		return err
	}
	i, _ := slices.BinarySearchFunc(l.spares, size, func(sp spare, size int64) int { return cmp.Compare(sp.size, size) })
	l.spares = slices.Insert(l.spares, i, spare{path: path, size: size})
	return nil
}

// takeSpare removes the largest spare from the list (sorted by size) and
// returns it.
func (l *Log) takeSpare() (spare, bool) {
	n := len(l.spares)
	if n == 0 {
		return spare{}, false
	}
	sp := l.spares[n-1]
	l.spares = l.spares[:n-1]
	return sp, true
}

// reuseSpare makes sp the segment seq at path: head (its header and
// fill-ahead records) written over the spare's start and synced, then the
// rename and the directory's sync. On failure the spare's file is deleted
// (best effort; Open deletes a spare whose header it no longer matches).
func (l *Log) reuseSpare(sp spare, seq, base uint64, path string, head []byte) (*segment, error) {
	f, err := os.OpenFile(sp.path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("reuse %s as segment %s: %w", sp.path, path, err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		_ = os.Remove(sp.path)
		return nil, fmt.Errorf("reuse %s as segment %s: %w", sp.path, path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	size := fi.Size()
	// Written blocks from the start: a spare is a sealed segment, written
	// whole, unless a file system hole is in it.
	written := firstHole(f, size)
	if _, err := f.WriteAt(head, 0); err != nil {
		return fail(err)
	}
	if err := l.syncNew(f); err != nil {
		return fail(err)
	}
	if err := os.Rename(sp.path, path); err != nil {
		return fail(err)
	}
	if !l.opts.NoSync {
		if err := syncDir(l.dir); err != nil {
			f.Close()
			return nil, fmt.Errorf("reuse %s as segment %s: %w", sp.path, path, err)
		}
	}
	end := int64(len(head))
	size, written = max(size, end), max(written, end)
	l.stats.recycled.Add(1)
	return &segment{seq: seq, base: base, version: segVersion, seed: segSeed(segVersion, seq), path: path, f: f,
		end: uint32(end), alloc: size, zeroed: written, ready: written}, nil
}

// syncNew syncs a new segment's first bytes (the roll's own sync), unless
// NoSync.
func (l *Log) syncNew(f *os.File) error {
	if l.opts.NoSync {
		return nil
	}
	return f.Sync()
}
