package seglog

import (
	"fmt"
	"os"
	"sync"
)

// Blocks written ahead of the groups.
//
// On ext4 (and most file systems with extents), a write into preallocated
// but never written blocks converts their extent to written when the write
// completes, and the fdatasync that follows must commit that change through
// the file system's journal: measured on this project's machine, a group's
// fdatasync costs 1.17x (1 KB groups) to 1.92x (9 KB groups) what it costs
// over blocks written before (bench/journal/2026-12-07-commit.md). A write
// past the end of the file has the same cost (allocation and size).
//
// So, unless NoSync, a preparer goroutine writes zeros into the active
// segment ahead of its last record and fdatasyncs them once, off the
// committer's path: when the zeros written ahead of the last group fall
// below half a preparation step, the committer asks for enough to make
// them a whole step (a quarter of what the segment has prepared, at least
// 64 KiB and at most 1 MiB, or twice the last group if that is more, at
// most 4 MiB; never beyond Options.SegmentSize). Runs of groups of at
// least 64 KiB (largeGroup) are the exception: a large group that follows
// a large group asks only for a thirty-second of itself (at least a page,
// at most 64 KiB), so the next one lands past the zeros, in blocks never
// written, and a large group that lands there writes that much zeros after
// itself, before its own fdatasync; the small groups after a run ask for
// steps of four times their size until 64 of them have passed. So a run of
// large groups writes about 1.03 bytes per byte instead of 2, while the
// small groups after it still land in written blocks; large groups between
// small ones (checkpoint chunks among intentions) keep their zeros, so
// that the small groups queued behind them do not wait for the extent
// conversion of their fdatasync. A group that reaches into zeros written but
// not yet synced does not wait for the sync (its own fdatasync then commits
// the new blocks, as without preparation). A group that lands in prepared
// blocks costs one data write and a flush, like an overwrite. A new
// segment's first step is written as zeros with its header (one write, and
// the sync roll does anyway).
//
// Zeros read as "no record" at the scan of the last segment, and the preparer writes only above every
// byte the committer has written or will write without asking it (the
// committer writes past the prepared bytes only under prepMu, after any
// preparation that overlaps its group has finished, and marks what it
// wrote). A crash in the middle of a preparation leaves zeros (or, where
// the write did not reach, unwritten blocks that read as zeros, or a
// shorter file) after the last group: the same state a clean shutdown
// leaves, which Open scans as a clean end.
//
// Disk use: a segment holds less than two steps (2 MiB; 8 MiB after groups
// of more than 512 KiB) of zeros past its last record, against the quarter of its size fallocate steps left; sealed
// segments are cut at their index, or with spares (recycle.go) at the end
// of their zeros, which the file's next life reuses instead of writing
// zeros again. Bytes written to disk: each
// prepared byte is written twice (zeros, then the group), a sequential write
// off the commit path; bytes of large groups mostly once (see above).

// maxPrepStep caps the step that follows the segment's size; maxPrepAhead
// caps a step grown for large groups (twice the last group: a checkpoint's
// chunks come in groups of up to Options.MaxGroupBytes), and so the zeros
// a segment holds ahead of its groups (two steps).
const (
	maxPrepStep  = 1 << 20
	maxPrepAhead = 4 << 20
)

// largeGroup: a group of at least this many bytes that follows another
// asks for zeros ahead only for the small groups that may follow it
// (prepAhead), not for another group its size.
//
// Zeros written where a group lands are written twice: for a large entry
// that doubles the bytes written to disk (2.05 bytes per byte appended for
// 100 KB entries, 1.04 without zeros) and costs a large group more than the
// extent conversion its fdatasync commits without them (2,565 against 1,890
// appends/s of 100 KB: bench/journal/2026-12-07-path20.md). A small group
// (an intention) is the one whose fdatasync the conversion slows (1.17x for
// 1 KB groups, 1.92x for 9 KB), so after a large group the zeros ahead
// still cover the small groups that follow; a run of small groups then asks
// for steps as before. A single large group among small ones keeps its
// zeros: at 16 clients and more, a checkpoint's chunk groups alternate with
// intention groups, which would wait behind the chunk's slower fdatasync
// (measured: 16 clients ÷ Pebble 0.58 → 0.37 in the commit probe with every
// large group unprepared, bench/journal/2026-12-07-path20.md).
const largeGroup = 64 << 10

// aheadOfLarge is the zeros wanted ahead of a large group of n bytes: a
// thirty-second of it, in whole pages, at least a page and at most
// stepSize: a few small groups' worth, which the next large group writes
// over (so consecutive large groups write about 1/32 more bytes as zeros).
func aheadOfLarge(n int64) int64 {
	z := (n/32 + zeroWrite - 1) / zeroWrite * zeroWrite
	return min(max(z, zeroWrite), stepSize)
}

// smallAfterLarge: the small groups after a run of large ones that still
// ask for zeros ahead in proportion to their own size (prepAhead), so that
// the next large group lands mostly past them.
const smallAfterLarge = 64

// prepStep is how far one preparation extends a segment whose prepared
// bytes end at ready: a quarter of that, in whole steps, at least stepSize
// and at most maxPrepStep.
func prepStep(ready int64) int64 {
	return min(max(stepSize, ready/4/stepSize*stepSize), maxPrepStep)
}

// prepState is the preparer's view of the active segment, guarded by
// Log.prepMu.
type prepState struct {
	mu   sync.Mutex
	cond *sync.Cond // broadcast when a preparation finishes
	wake chan struct{}
	done chan struct{}

	// seg and target: the preparation asked for (seg nil: none).
	seg    *segment
	target int64
	// busy: the preparer is writing zeros into busySeg at and above
	// busyFrom; syncing: it is syncing them (they are written).
	busy, syncing bool
	busySeg       *segment
	busyFrom      int64

	// lastLarge: the last group was large (largeGroup); sinceRun counts
	// the small groups since the last run of large ones, up to
	// smallAfterLarge (which it starts at: no run yet). The committer's
	// (under mu).
	lastLarge bool
	sinceRun  int
}

// prepareOn reports whether the log writes blocks ahead of its groups.
func (l *Log) prepareOn() bool {
	return !l.opts.NoSync && !l.opts.NoZeroFill || l.opts.forcePrepare
}

// startPreparer starts the preparer goroutine (if preparing is on).
func (l *Log) startPreparer() {
	l.prep.wake = make(chan struct{}, 1)
	l.prep.done = make(chan struct{})
	if !l.prepareOn() {
		close(l.prep.done)
		return
	}
	go l.preparer()
}

// preparer writes zeros where asked until Close.
func (l *Log) preparer() {
	defer close(l.prep.done)
	for {
		select {
		case <-l.prep.wake:
		case <-l.stop:
			return
		}
		l.prep.mu.Lock()
		s, target := l.prep.seg, l.prep.target
		l.prep.seg = nil
		// (A segment is sealed only after stopPreparing set prepOff.)
		if s == nil || s.prepOff || target <= s.zeroed {
			l.prep.mu.Unlock()
			continue
		}
		from := s.zeroed
		l.prep.busy, l.prep.busySeg, l.prep.busyFrom = true, s, from
		l.prep.mu.Unlock()

		err := writeZeros(s.f, from, target)
		if err != nil {
			err = fmt.Errorf("prepare segment %s: %w", s.path, err)
		}
		l.prep.mu.Lock()
		l.prep.busy = false
		if err == nil {
			// Written: the committer may write there from now on (its
			// fdatasync would commit the new blocks itself).
			s.zeroed = max(s.zeroed, target)
			l.prep.syncing = true
		}
		l.prep.cond.Broadcast()
		l.prep.mu.Unlock()
		switch {
		case err != nil:
		case l.opts.prepSyncHook != nil:
			err = l.opts.prepSyncHook(s.f)
		case !l.opts.NoSync:
			err = fdatasync(s.f)
		}

		l.prep.mu.Lock()
		if err != nil {
			// Leave the segment to the committer's own allocation: its
			// write reports any real trouble (a full disk) to the
			// requesters.
			s.prepOff = true
			l.stats.prepareFailures.Add(1)
		} else {
			s.ready = max(s.ready, target)
			l.stats.prepared.Add(uint64(target - from))
		}
		l.prep.syncing, l.prep.busySeg = false, nil
		l.prep.cond.Broadcast()
		l.prep.mu.Unlock()
	}
}

// zeroWrite is the size of the writes of zeros: one page. The page cache
// sizes the folio it creates for a write by the write's length (large
// folios, Linux 6.x), and a later group that changes one byte of a folio
// dirties, and its fdatasync writes back, the whole folio: zeros written
// 64 KiB at a time made every 1 KB group write 64 KiB to disk (measured: 68
// bytes written per byte appended against 5 with fallocate).
const zeroWrite = 4096

// writeZeros writes zeros into f's bytes [from, to), a page at a time (see
// zeroWrite).
func writeZeros(f *os.File, from, to int64) error {
	for off := from; off < to; {
		n := min(to-off, zeroWrite-off%zeroWrite)
		if _, err := f.WriteAt(zeroChunk[:n], off); err != nil {
			return fmt.Errorf("write zeros at %d: %w", off, err)
		}
		off += n
	}
	return nil
}

// makeRoom is called by the committer before it writes s's bytes [from,
// to): if they are not all prepared, it waits for the zeros of a
// preparation that overlaps them to be written (not synced), and allocates
// what is still missing itself (extend).
func (l *Log) makeRoom(s *segment, from, to int64) error {
	if !l.prepareOn() {
		return l.extend(s, to)
	}
	l.prep.mu.Lock()
	defer l.prep.mu.Unlock()
	if to <= s.ready {
		return nil
	}
	waited := false
	for l.prep.busy && l.prep.busySeg == s && l.prep.busyFrom < to {
		waited = true
		l.prep.cond.Wait()
	}
	if waited {
		l.stats.prepareWaits.Add(1)
	}
	if to <= s.zeroed {
		l.stats.unsynced.Add(1) // written, its sync still under way
		return nil
	}
	l.stats.unprepared.Add(1)
	z := to
	if to-from >= largeGroup {
		// The zeros ahead of a large group (prepAhead) are written here,
		// before its fdatasync, which makes them durable with it: the small
		// groups that follow land in written blocks without waiting for the
		// preparer to be scheduled.
		z = min(to+aheadOfLarge(to-from), max(l.opts.SegmentSize, to))
	}
	if err := l.extend(s, z); err != nil {
		return err
	}
	if z > to {
		if err := writeZeros(s.f, to, z); err != nil {
			z = to // best effort: the preparer is asked after the group
		}
	}
	s.zeroed = max(s.zeroed, z)
	if z > to {
		// Synced by the group's own fdatasync, before any later group
		// (a failed one fails the log).
		s.ready = max(s.ready, z)
	}
	return nil
}

// askPrepare is called by the committer after a group of n bytes: if less
// than half a step (see prepAhead) is written past s's last record, it asks
// the preparer for enough to make it a whole step. Asking only below half a
// step makes each preparation at least half a step (one write of zeros and
// one fdatasync for many small groups, not one for every group).
func (l *Log) askPrepare(s *segment, n int64) {
	if !l.prepareOn() {
		return
	}
	end := int64(s.end)
	l.prep.mu.Lock()
	if s.sealed || s.prepOff || s.zeroed >= l.opts.SegmentSize {
		l.prep.mu.Unlock()
		return
	}
	step := l.prepAhead(s, n)
	if s.zeroed-end >= step/2 {
		l.prep.mu.Unlock()
		return
	}
	target := min(max(s.zeroed, end)+step, max(l.opts.SegmentSize, end))
	if l.prep.busy && l.prep.busySeg == s {
		// Asked again once this one finishes (the next group asks).
		l.prep.mu.Unlock()
		return
	}
	l.prep.seg, l.prep.target = s, target
	l.prep.mu.Unlock()
	select {
	case l.prep.wake <- struct{}{}:
	default:
	}
}

// prepAhead is the step of zeros wanted ahead of s's last record after a
// group of n bytes (the caller holds prepMu): after a large group (at least
// largeGroup) that follows a large group, aheadOfLarge; after a small group
// that follows such a run by fewer than smallAfterLarge small groups, four
// times the group in whole pages, at least a page and at most stepSize.
// Otherwise a quarter of what the segment has prepared, or twice the group
// if that is more (prepStep, maxPrepAhead).
func (l *Log) prepAhead(s *segment, n int64) int64 {
	pages := func(z int64) int64 {
		z = (z + zeroWrite - 1) / zeroWrite * zeroWrite
		return min(max(z, zeroWrite), stepSize)
	}
	large := n >= largeGroup
	run := large && l.prep.lastLarge
	l.prep.lastLarge = large
	switch {
	case run:
		l.prep.sinceRun = 0
		return aheadOfLarge(n)
	case !large && l.prep.sinceRun < smallAfterLarge:
		l.prep.sinceRun++
		return pages(4 * n)
	}
	return min(max(prepStep(s.zeroed), 2*n), maxPrepAhead)
}

// stopPreparing waits for a preparation of s in progress and keeps the
// preparer off s from then on (before s is sealed or closed).
func (l *Log) stopPreparing(s *segment) {
	l.prep.mu.Lock()
	defer l.prep.mu.Unlock()
	for (l.prep.busy || l.prep.syncing) && l.prep.busySeg == s {
		l.prep.cond.Wait()
	}
	if l.prep.seg == s {
		l.prep.seg = nil
	}
	s.prepOff = true // nothing more for the preparer here
}
