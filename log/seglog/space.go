package seglog

import "fmt"

// Disk space that follows the trim point.
//
// A segment is not preallocated to the whole SegmentSize at once. Its
// preallocation grows in steps whenever a group would write past it: by a
// quarter of its size, at least stepSize, at most up to SegmentSize (one
// fallocate per step, so appends still find their blocks allocated ahead of
// them, and at most a fifth of a grown file is preallocated and unused);
// a new segment starts at one step. (Starting a segment at what the one
// before it used keeps the directory at the top of a checkpoint cycle all
// the time: measured in bench/journal/2026-12-07-segspace.md, it held 1.7x
// more disk under redis-benchmark.) The file's size is always its
// preallocation: Open scans the last segment up to its size whatever step it
// reached, and what a crash leaves beyond the last whole group reads as
// zeros or as a torn group either way.
//
// A trim whose point falls inside the last (active) segment marks it to be
// retired if at least rollDead bytes of it, and at least half of what it
// holds, lie below the trim point: the trim seals it at once (as a full
// segment is sealed) and starts a new one, so the next trim past its end
// deletes it whole. Nothing above the trim point is deleted or punched.

// stepSize is the first preallocation of a segment, and rollDead the bytes
// below the trim point that make a trim retire the active segment.
//
// rollDead is one step: a roll costs a seal and a new file (a few syncs),
// so it waits until it frees at least what the new segment's first step
// takes. The half-the-segment condition keeps a trim that leaves most of
// the segment live (a trim point far below the tail) from cutting segments
// short: there the dead part is at most the live part, so the active
// segment is at most twice what the log needs, before rounding to a step.
const (
	stepSize = 64 << 10
	rollDead = stepSize
)

// firstAlloc is the first preallocation of a segment: one step.
func firstAlloc(segmentSize int64) int64 { return min(stepSize, segmentSize) }

// nextStep is the preallocation that holds need bytes: alloc grown by a
// quarter (at least a step, in whole steps) until it does, at most
// segmentSize, and need itself for a group larger than that.
func nextStep(alloc, need, segmentSize int64) int64 {
	n := max(alloc, stepSize)
	for n < need && n < segmentSize {
		n += max(stepSize, n/4/stepSize*stepSize)
	}
	return max(min(n, segmentSize), need)
}

// extend makes s's preallocation hold need bytes. The new size becomes
// durable with the fdatasync of the group written into it (fdatasync
// flushes the size needed to read the data back).
func (l *Log) extend(s *segment, need int64) error {
	if need <= s.alloc {
		return nil
	}
	n := nextStep(s.alloc, need, l.opts.SegmentSize)
	if err := preallocate(s.f, n); err != nil {
		return fmt.Errorf("extend segment %s to %d bytes: %w", s.path, n, err)
	}
	s.alloc = n
	return nil
}

// markRetire marks the active segment to be retired if the trim point
// (inside it, at or below the tail) leaves at least rollDead bytes, and half
// of what it holds, below it, and reports whether it did (the trim then
// rolls to a new segment at once: advanceTrim).
func (l *Log) markRetire(trim uint64) bool {
	act := l.segs[len(l.segs)-1]
	if act.sealed || len(act.offs) == 0 || trim <= act.base {
		return false
	}
	dead := act.end // every position is below the trim point
	if i := trim - act.base; i < uint64(len(act.offs)) {
		dead = act.offs[i]
	}
	d, used := int64(dead)-segHeaderSize, int64(act.end)-segHeaderSize
	if d >= rollDead && 2*d >= used {
		act.retire = true
	}
	return act.retire
}

// punchBlock is the granularity of punchDead.
const punchBlock = 4096

// punchDead frees the blocks of s, a retired segment that is sealed and no
// longer the last one, that lie wholly below the trim point (from the first
// block after the header). Only a trimmed range is punched: reads below the
// trim point fail before they touch the file, a sealed segment is opened
// from its trailer and index (never scanned), and its fill-ahead records
// are never read again. So a crash in the middle leaves nothing to repair,
// and a file system without hole punching only keeps the blocks until the
// next trim deletes the segment whole. A read that located its position
// before the trim point passed it may still be reading the file: the punch
// waits for it (fileMu), so that it gets the record it located, never the
// zeros of a punched block; reads located after the trim fail with
// log.ErrTrimmed. It reports whether it punched.
func (l *Log) punchDead(s *segment) bool {
	if !s.sealed || l.trim <= s.base || l.trim-s.base >= uint64(len(s.offs)) {
		return false // nothing below the trim point, or all of it (dropTrimmed deletes it)
	}
	to := int64(s.offs[l.trim-s.base]) &^ (punchBlock - 1)
	if to-punchBlock < rollDead {
		return false
	}
	s.fileMu.Lock() // wait for reads in progress
	defer s.fileMu.Unlock()
	return punchHole(s.f, punchBlock, to-punchBlock)
}
