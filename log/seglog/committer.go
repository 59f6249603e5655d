package seglog

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/cruzlog/cruzdb/internal/groupcommit"
	"github.com/cruzlog/cruzdb/log"
)

// committer commits groups of requests until Close.
func (l *Log) committer() {
	defer close(l.done)
	// lazy fires when the oldest lazy append left waiting is due.
	lazy := time.NewTimer(time.Hour)
	lazy.Stop()
	defer lazy.Stop()
	for {
		select {
		case <-l.wake:
		case <-lazy.C:
		case <-l.stop:
			return
		}
		var due time.Time
		for chained := false; ; chained = true {
			more, d := l.commitLocked(chained)
			if !more {
				l.completeLazies()
				due = d
				break
			}
			// Let the requesters just woken run before taking the next
			// group: those that append again join it instead of waiting a
			// whole fdatasync for the one after. This waits for no timer,
			// only for goroutines that are already runnable.
			runtime.Gosched()
			// The lazy appends of the last group (the flusher's
			// afterimages) learn their outcome only now: their writers
			// run during the next group's fdatasync, not before the
			// requesters above, who would otherwise queue behind them.
			l.completeLazies()
		}
		if !due.IsZero() {
			lazy.Reset(time.Until(due))
		}
	}
}

// commitLocked commits the next group under commitMu; due is when the
// first lazy append left waiting is due, if nothing else was. chained
// says the committer committed a group just before (Stats.Gaps).
func (l *Log) commitLocked(chained bool) (more bool, due time.Time) {
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	l.chained = chained
	l.deferLazies = true
	more = l.commitNext()
	l.deferLazies = false
	return more, l.lazyDue
}

// lead is called by an appender right after it queued its n requests: if
// the last group held the requests of a single appender (one client
// committing alone), nothing else waits and no group is being committed,
// the appender commits the next group itself, sparing two goroutine
// switches (to the committer and back) per append. Otherwise, or if requests remain, it wakes the
// committer. With several appenders the committer gathers their requests
// as before (an appender leading there commits smaller groups: see
// bench/journal/2026-12-07-commit.md, section 4).
func (l *Log) lead(n int) {
	if l.solo.Load() && l.q.Len() == n && l.commitMu.TryLock() {
		l.chained = false
		l.commitNext()
		l.commitMu.Unlock()
		l.stats.led.Add(1)
		if l.q.Len() == 0 {
			return
		}
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// commitNext takes a group of the waiting requests and commits it. It
// reports false if nothing was waiting, or only lazy appends not yet due
// (l.lazyDue is then the time the first of them is).
//
// Lazy appends (AppendLazy) start no group: while only they wait, nothing
// is written until one is due; a group started for any other request takes
// them along.
//
// The group is every fill and trim waiting and the appends in arrival
// order, with two exceptions that keep small appends (intentions) from
// waiting behind large ones (afterimages): while a small append (at most
// smallEntry bytes, alone or in a batch of small entries) waits, a large
// append is left for the next group, once; and large appends beyond
// Options.MaxGroupBytes of data wait for a later group. An append left out
// takes the rest of its batch with it, which keeps a batch's positions in
// order. So a small append that arrives while a large group is being
// written commits in the next group, which holds no large entry that was
// waiting with it.
func (l *Log) commitNext() bool {
	var group []*groupcommit.Request
	l.lazyDue = time.Time{}
	failed := l.q.Take(func(waiting []*groupcommit.Request) []*groupcommit.Request {
		if due, wait := lazyOnly(waiting); wait {
			l.lazyDue = due
			return waiting
		}
		size := 0
		// Is a small append waiting, and which batches hold a large entry?
		hasSmall := false
		var largeBatches []uint64
		for _, r := range waiting {
			if r.Op == groupcommit.Append && len(r.Data) > smallEntry && r.Batch != 0 {
				largeBatches = append(largeBatches, r.Batch)
			}
		}
		for _, r := range waiting {
			if r.Op == groupcommit.Append && !r.Lazy && len(r.Data) <= smallEntry && (r.Batch == 0 || !slices.Contains(largeBatches, r.Batch)) {
				hasSmall = true
				break
			}
		}
		var deferred []uint64 // batches with an entry left for a later group
		rest := waiting[:0]
		for _, r := range waiting {
			if r.Op == groupcommit.Append {
				if r.Batch != 0 && slices.Contains(deferred, r.Batch) {
					rest = append(rest, r)
					continue
				}
				large := len(r.Data) > smallEntry
				if large && ((hasSmall && !r.Passed) || (size > 0 && size+len(r.Data) > l.opts.MaxGroupBytes)) {
					r.Passed = true
					rest = append(rest, r)
					if r.Batch != 0 {
						deferred = append(deferred, r.Batch)
					}
					continue
				}
				size += max(len(r.Data), 1)
			}
			group = append(group, r)
		}
		return rest
	})
	if len(group) == 0 {
		return false
	}
	n := 0
	for _, r := range group {
		if r.Claim() {
			group[n] = r
			n++
		}
	}
	group = group[:n]
	l.solo.Store(appenders(group) == 1)
	if failed != nil {
		l.finish(group, failed)
		return true
	}
	if err := l.commitGroup(group); err != nil {
		l.finish(group, l.setFailed(err))
		return true
	}
	shared := slices.ContainsFunc(group, func(r *groupcommit.Request) bool { return !r.Lazy })
	lazies := 0
	for _, r := range group {
		if r.Lazy {
			r.Shared = shared
			lazies++
		}
	}
	if lazies > 0 { // counted before anyone learns the outcome
		l.stats.lazy.Add(uint64(lazies))
		if !shared {
			l.stats.lazyAlone.Add(uint64(lazies))
		}
	}
	for _, r := range group {
		if r.Lazy && l.deferLazies {
			l.lazyDone = append(l.lazyDone, r)
			continue
		}
		l.complete(r)
	}
	return true
}

// complete tells r, of a committed group, its outcome.
func (l *Log) complete(r *groupcommit.Request) {
	if l.opts.completeHook != nil {
		l.opts.completeHook(r)
	}
	r.Complete()
}

// completeLazies tells the lazy appends whose group is durable their
// outcome, if the committer held it back (commitNext).
func (l *Log) completeLazies() {
	l.commitMu.Lock()
	done := l.lazyDone
	l.lazyDone = l.lazyDone[:0]
	l.commitMu.Unlock()
	for i, r := range done {
		l.complete(r)
		done[i] = nil
	}
}

// appenders counts the calls of Append or AppendBatch whose requests are
// in group (lazy appends, fills and trims not counted).
func appenders(group []*groupcommit.Request) int {
	n := 0
	var last uint64
	for _, r := range group {
		if r.Op != groupcommit.Append || r.Lazy {
			continue
		}
		if r.Batch == 0 || r.Batch != last {
			n++
		}
		last = r.Batch
	}
	return n
}

// lazyOnly reports whether waiting holds only lazy appends none of which
// is due yet (wait), and if so when the first one is.
func lazyOnly(waiting []*groupcommit.Request) (due time.Time, wait bool) {
	if len(waiting) == 0 {
		return time.Time{}, false
	}
	now := time.Now()
	for _, r := range waiting {
		if !r.Lazy || !r.Due.After(now) {
			return time.Time{}, false
		}
		if due.IsZero() || r.Due.Before(due) {
			due = r.Due
		}
	}
	return due, true
}

// smallEntry: appends up to this size always join the next group, however
// many bytes it holds already.
const smallEntry = 64 << 10

// finish fails every request of group that has no outcome yet with err.
func (l *Log) finish(group []*groupcommit.Request, err error) {
	for _, r := range group {
		r.Finish(groupcommit.OpError("seglog", r, err))
	}
}

// commitGroup commits one group. Within a group all requests are
// concurrent, so any order is a valid linearisation: trims first, then
// fills, then appends, which therefore skip the positions the fills took.
// Requests get their results; an error returned is a write failure, which
// the caller makes sticky.
func (l *Log) commitGroup(group []*groupcommit.Request) error {
	// Trims: the trim point is made durable first, then the tail moves
	// past it, then whole segments below it are deleted.
	newTrim := l.trim
	for _, r := range group {
		if r.Op == groupcommit.Trim {
			newTrim = max(newTrim, uint64(r.Pos))
		}
	}
	if newTrim > l.trim {
		if err := l.advanceTrim(newTrim); err != nil {
			return err
		}
	}

	// Fills: below the tail they only read; at or beyond it they add a
	// fill-ahead record, which Append honours by writing junk there.
	clear(l.groupFill)
	l.fills = l.fills[:0]
	for _, r := range group {
		if r.Op != groupcommit.Fill {
			continue
		}
		p := uint64(r.Pos)
		switch {
		case p < l.trim:
			// Trimmed: Fill is an idempotent no-op there.
		case p < l.tail:
			s, i := l.find(p)
			switch {
			case s == nil:
				r.Err = fmt.Errorf("seglog: fill position %d: no segment holds it: %w", p, log.ErrCorrupt)
			case s.kinds[i] == kindData:
				r.Err = fmt.Errorf("seglog: fill position %d: %w", p, log.ErrWritten)
			}
		default:
			_, pend := l.pending[p]
			_, dup := l.groupFill[p]
			if !pend && !dup {
				l.groupFill[p] = struct{}{}
				l.fills = append(l.fills, p)
			}
		}
	}

	// Appends: positions from the tail, junk for every filled position met.
	l.recs = l.recs[:0]
	l.junked = l.junked[:0]
	p := l.tail
	dataBytes := 0
	for _, r := range group {
		if r.Op != groupcommit.Append {
			continue
		}
		for p < math.MaxUint64 && l.isFilled(p) {
			l.recs = append(l.recs, rec{pos: p, kind: kindJunk})
			l.junked = append(l.junked, p)
			p++
		}
		if p == math.MaxUint64 {
			r.Err = fmt.Errorf("seglog: append: %w (position %d)", errFull, p)
			continue
		}
		r.Pos, r.Write = log.Position(p), true
		l.recs = append(l.recs, rec{pos: p, kind: kindData, r: r})
		dataBytes += len(r.Data)
		p++
	}
	if len(l.fills) == 0 && len(l.recs) == 0 {
		return nil // nothing to write: reads answered the fills
	}

	// The watcher hears of a small group after its write (below), of a
	// large one before it: the early applier then starts on a large group
	// (cruzd's combined pipelines, whose apply can take as long as the
	// fdatasync) without waiting for a write of 100 KB or more; on a small
	// one (1-put commits: ~65 µs of applying in a ~200-µs fdatasync) the
	// write starts sooner after the last group instead.
	orderedFirst := dataBytes >= largeGroup
	if orderedFirst {
		l.reportOrdered()
	}

	// A group that does not fit in the current segment starts a new one.
	total := (len(l.fills)+len(l.recs))*recHeaderSize + dataBytes
	act := l.segs[len(l.segs)-1]
	if len(act.offs) > 0 && (act.retire || int64(act.end)+int64(total) > l.opts.SegmentSize) {
		if err := l.roll(l.tail); err != nil {
			return err
		}
		act = l.segs[len(l.segs)-1]
	}
	gstart := act.end
	buf := l.buf[:0]
	var ring []byte
	if !l.noRecent {
		if ring = l.recent.reserve(act, total); ring != nil {
			buf = ring
		}
	}
	for _, q := range l.fills {
		buf = appendRecord(buf, act.seed, kindFillAhead, q, gstart, nil)
	}
	offs := make([]uint32, 0, len(l.recs))
	kinds := make([]byte, 0, len(l.recs))
	for _, rc := range l.recs {
		offs = append(offs, gstart+uint32(len(buf)))
		kinds = append(kinds, rc.kind)
		var data []byte
		if rc.r != nil {
			data = rc.r.Data
		}
		buf = appendRecord(buf, act.seed, rc.kind, rc.pos, gstart, data)
	}
	switch {
	case ring != nil:
		if &buf[:1][0] != &ring[:1][0] {
			ring = nil // encoded beyond the reservation (cannot happen): not in the ring
		}
	case cap(buf) > 8<<20:
		l.buf = nil
	default:
		l.buf = buf
	}
	if err := l.makeRoom(act, int64(gstart), int64(gstart)+int64(len(buf))); err != nil {
		return err
	}
	if l.chained && !l.synced.IsZero() {
		l.stats.gaps.Add(1)
		l.stats.gapNanos.Add(uint64(time.Since(l.synced)))
	}
	if _, err := act.f.WriteAt(buf, int64(gstart)); err != nil {
		return fmt.Errorf("write segment %s: %w", act.path, err)
	}
	act.alloc = max(act.alloc, int64(gstart)+int64(len(buf)))
	if !orderedFirst {
		l.reportOrdered()
	}
	t0 := time.Now()
	if err := l.sync(act.f); err != nil {
		return fmt.Errorf("fdatasync segment %s: %w", act.path, err)
	}
	l.synced = time.Now()
	l.stats.syncNanos.Add(uint64(l.synced.Sub(t0)))
	if ring != nil {
		l.recent.publish(act, gstart, len(buf))
	}

	l.stats.groups.Add(1)
	l.stats.entries.Add(uint64(len(l.recs)))
	l.stats.bytes.Add(uint64(dataBytes))

	// Durable: publish.
	l.segMu.Lock()
	act.offs = append(act.offs, offs...)
	act.kinds = append(act.kinds, kinds...)
	act.end = gstart + uint32(len(buf))
	for _, q := range l.fills {
		l.pending[q] = struct{}{}
	}
	for _, q := range l.junked {
		delete(l.pending, q)
	}
	if p != l.tail {
		l.tail = p
		l.tailMovedLocked()
	}
	l.segMu.Unlock()
	l.reportDurable(p)
	l.askPrepare(act, int64(len(buf)))
	for _, rc := range l.recs {
		if rc.r != nil {
			rc.r.Data = nil
		}
	}
	return nil
}

func (l *Log) isFilled(p uint64) bool {
	if _, ok := l.pending[p]; ok {
		return true
	}
	_, ok := l.groupFill[p]
	return ok
}

func (l *Log) sync(f *os.File) error {
	if l.opts.syncHook != nil {
		return l.opts.syncHook(f)
	}
	if l.opts.NoSync {
		return nil
	}
	return fdatasync(f)
}

// advanceTrim makes trim durable, moves the tail up to it (starting a new
// segment there if it passed the current one), and deletes the segments
// below it.
func (l *Log) advanceTrim(trim uint64) error {
	if err := writeFileAtomic(l.dir, metaName, encodeMeta(trim), l.opts.FileMode, l.opts.NoSync); err != nil {
		return fmt.Errorf("write trim point %d: %w", trim, err)
	}
	l.segMu.Lock()
	l.trim = trim
	for q := range l.pending {
		if q < trim {
			delete(l.pending, q)
		}
	}
	moved := trim > l.tail
	if moved {
		l.tail = trim
		l.tailMovedLocked()
	}
	l.segMu.Unlock()
	if moved {
		if err := l.roll(trim); err != nil {
			return err
		}
	} else if l.markRetire(trim) {
		// Retired at once, not at the next group: a log at rest (a
		// checkpoint's trim after the last commit of a burst) would
		// otherwise keep the whole active segment, most of it dead,
		// until the next append. The roll punches the retired segment's
		// blocks below the trim point, and the next trim past its end
		// deletes it.
		if err := l.roll(l.tail); err != nil {
			return err
		}
	}
	return l.dropTrimmed()
}

// dropTrimmed deletes every segment but the last whose positions are all
// below the trim point, or keeps its file as a spare (recycle.go).
func (l *Log) dropTrimmed() error {
	n := 0
	for n < len(l.segs)-1 && l.segs[n].next() <= l.trim {
		n++
	}
	if n == 0 {
		return nil
	}
	l.segMu.Lock()
	drop := slices.Clone(l.segs[:n])
	l.segs = slices.Delete(l.segs, 0, n)
	l.segMu.Unlock()
	for _, s := range drop {
		s.fileMu.Lock() // wait for reads in progress
		var size int64
		fi, err := s.f.Stat()
		if cerr := s.f.Close(); err == nil {
			size, err = fi.Size(), cerr
		}
		s.fileMu.Unlock()
		if err == nil {
			err = l.keepSpare(s, size) // or delete it
		}
		if err != nil {
			return fmt.Errorf("delete trimmed segment %s: %w", s.path, err)
		}
	}
	if l.opts.NoSync {
		return nil
	}
	if err := syncDir(l.dir); err != nil {
		return fmt.Errorf("sync %s after deleting trimmed segments: %w", l.dir, err)
	}
	return nil
}

// roll seals the current segment (if any, and not sealed yet) and starts a
// new one whose first position is base. The new segment begins with a
// fill-ahead record for every pending fill, so that those survive the
// deletion of older segments.
func (l *Log) roll(base uint64) error {
	if n := len(l.segs); n > 0 && !l.segs[n-1].sealed {
		if err := l.seal(l.segs[n-1]); err != nil {
			return err
		}
		if l.opts.sealedHook != nil {
			l.opts.sealedHook()
		}
	}
	seq := l.nextSeq
	path := filepath.Join(l.dir, segName(seq))
	fills := make([]uint64, 0, len(l.pending))
	for q := range l.pending {
		fills = append(fills, q)
	}
	slices.Sort(fills)
	seed := segSeed(segVersion, seq)
	buf := encodeSegHeader(segHeader{seq: seq, base: base})
	for _, q := range fills {
		buf = appendRecord(buf, seed, kindFillAhead, q, segHeaderSize, nil)
	}
	var s *segment
	var err error
	if sp, ok := l.takeSpare(); ok {
		s, err = l.reuseSpare(sp, seq, base, path, buf)
	} else {
		s, err = l.createSegment(seq, base, path, buf)
	}
	if err != nil {
		return err
	}
	l.segMu.Lock()
	l.segs = append(l.segs, s)
	l.segMu.Unlock()
	l.nextSeq++
	if n := len(l.segs); n > 1 && l.segs[n-2].retire {
		// Best effort: it frees space only. (Not for a file that will be
		// kept as a spare: its blocks are kept whole for its reuse once a
		// trim passes its end.)
		if fi, err := l.segs[n-2].f.Stat(); err == nil && !l.mayKeep(fi.Size()) {
			l.punchDead(l.segs[n-2])
		}
	}
	return nil
}

// createSegment creates the segment seq at path, a new file starting with
// head (its header and fill-ahead records): written and synced under a
// temporary name, renamed, and the directory synced.
func (l *Log) createSegment(seq, base uint64, path string, head []byte) (*segment, error) {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, l.opts.FileMode)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	alloc := firstAlloc(l.opts.SegmentSize)
	if !l.prepareOn() {
		if err := preallocate(f, alloc); err != nil {
			return fail(err)
		}
	}
	buf := head
	end := len(buf)
	if _, err := f.WriteAt(buf, 0); err != nil {
		return fail(err)
	}
	size := int64(end)
	if l.prepareOn() && size < alloc {
		// The first step written as zeros after the header, synced below
		// (see prepare.go).
		if err := writeZeros(f, size, alloc); err != nil {
			return fail(err)
		}
		size = alloc
	}
	if err := l.syncNew(f); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if !l.opts.NoSync {
		if err := syncDir(l.dir); err != nil {
			f.Close()
			return nil, fmt.Errorf("create segment %s: %w", path, err)
		}
	}
	s := &segment{seq: seq, base: base, version: segVersion, seed: segSeed(segVersion, seq), path: path, f: f, end: uint32(end), alloc: max(alloc, size)}
	if l.prepareOn() {
		s.zeroed, s.ready = size, size
	}
	return s, nil
}

// seal writes s's index and trailer after its last record, cuts the file
// there and syncs it.
//
// With spares (recycle.go), a file large enough to be kept as one is cut
// at the end of its written blocks instead, if that is further (the zeros
// the preparer wrote ahead, or the bytes of a reused file's former life),
// with the trailer in its last 24 bytes: the blocks stay written for the
// file's next life.
func (l *Log) seal(s *segment) error {
	l.stopPreparing(s)
	ix := encodeIndex(segIndex{offs: s.offs, kinds: s.kinds})
	buf := appendRecord(nil, s.seed, kindIndex, s.base, s.end, ix)
	tr := encodeTrailer(trailer{indexOff: s.end, indexLen: uint32(len(buf))})
	size := int64(s.end) + int64(len(buf)) + trailerSize
	l.prep.mu.Lock()
	if zeroed := s.zeroed; l.mayKeep(zeroed) {
		size = max(size, zeroed)
	}
	l.prep.mu.Unlock()
	if size == int64(s.end)+int64(len(buf))+trailerSize {
		buf = append(buf, tr...)
	} else if _, err := s.f.WriteAt(tr, size-trailerSize); err != nil {
		return fmt.Errorf("seal segment %s: %w", s.path, err)
	}
	if _, err := s.f.WriteAt(buf, int64(s.end)); err != nil {
		return fmt.Errorf("seal segment %s: %w", s.path, err)
	}
	if err := s.f.Truncate(size); err != nil {
		return fmt.Errorf("seal segment %s: %w", s.path, err)
	}
	if err := l.sync(s.f); err != nil {
		return fmt.Errorf("seal segment %s: %w", s.path, err)
	}
	l.segMu.Lock()
	s.sealed = true
	l.segMu.Unlock()
	return nil
}
