package seglog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/internal/groupcommit"
	"github.com/cruzlog/cruzdb/log"
)

// Log is a shared log stored as a directory of segment files. It implements
// log.Log, log.BatchAppender, log.RangeReader and log.TailWaiter, and is safe
// for concurrent use. See the package documentation for its model.
type Log struct {
	dir   string
	opts  Options
	lockF *os.File

	// segMu guards the segment list, each segment's index, tail, trim,
	// pending and closed. The committer is their only writer; it takes the
	// lock to change them, and reads them without it.
	segMu   sync.RWMutex
	segs    []*segment
	tail    uint64
	trim    uint64
	pending map[uint64]struct{} // durable fills at or beyond the tail
	closed  bool
	// tailMoved is closed (and replaced) whenever the tail moves and at
	// Close, waking WaitTail.
	tailMoved chan struct{}
	// notes are the NotifyTail calls waiting for the tail (notify.go).
	notes []*tailNote

	// commitMu is held by the committer while it commits a group, and by
	// CopyTo.
	commitMu sync.Mutex

	q groupcommit.Queue // requests waiting for the committer; the sticky write failure

	wake chan struct{} // cap 1
	stop chan struct{}
	done chan struct{}

	// Committer-owned.
	nextSeq   uint64
	spares    []spare // segment files kept for reuse, smallest first (recycle.go)
	buf       []byte
	recs      []rec
	groupFill map[uint64]struct{}
	junked    []uint64
	fills     []uint64
	batchIDs  atomic.Uint64

	recent   recent // the last groups written, for reads that follow appends
	noRecent bool   // benchmarks: leave recent empty (set before the first append)

	stats struct {
		groups, entries, bytes, lazy, lazyAlone             atomic.Uint64
		prepared, unprepared, prepareWaits, prepareFailures atomic.Uint64
		led, unsynced, recycled, syncNanos                  atomic.Uint64
		gaps, gapNanos                                      atomic.Uint64
	}

	// Under commitMu: chained is set while the committer commits groups
	// back to back (not the first group after it waited for a request);
	// synced is when the last group's fdatasync returned.
	chained bool
	synced  time.Time
	// deferLazies: the committer goroutine commits (commitLocked), and
	// lazyDone holds the lazy requests of its last group, completed once
	// the requesters it woke have run (committer).
	deferLazies bool
	lazyDone    []*groupcommit.Request

	prep prepState // the preparer of blocks ahead of the groups (prepare.go)

	lazyDue time.Time // under commitMu: when the first lazy append left waiting is due

	solo atomic.Bool // the last group held one appender's requests: the next appender leads (lead)

	// The OrderWatcher (order.go): orderMu is held while it is called.
	orderMu  sync.Mutex
	order    log.OrderWatcher
	orderBuf [][]byte // committer-owned, under orderMu
}

// Stats are counters of a Log since Open.
type Stats struct {
	// Groups is the number of group commits written (each one write and
	// one fdatasync); Entries and Bytes count the entries (data and junk)
	// and the bytes of data they appended.
	Groups, Entries, Bytes uint64
	// Lazy counts the entries appended with AppendLazy, and LazyAlone
	// those of them committed in a group that held only lazy appends.
	Lazy, LazyAlone uint64
	// Prepared counts the bytes of zeros written ahead of the groups
	// (see Options.NoSync); Unprepared the groups that wrote past them
	// (their fdatasync also commits new blocks), and PrepareWaits those
	// that waited for a preparation overlapping them.
	Prepared, Unprepared, PrepareWaits uint64
	// Led counts the groups an appender committed itself (see lead).
	Led uint64
	// Recycled counts the segments started in a spare file (recycle.go).
	Recycled uint64
	// SyncTime is the time the group commits spent in their fdatasync.
	SyncTime time.Duration
	// Gaps counts the groups the committer took right after the one
	// before, without waiting for a request, and GapTime is the time from
	// that one's fdatasync return to their write: the part of a busy
	// log's group period in which the disk waits.
	Gaps    uint64
	GapTime time.Duration
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	return Stats{Groups: l.stats.groups.Load(), Entries: l.stats.entries.Load(), Bytes: l.stats.bytes.Load(),
		Lazy: l.stats.lazy.Load(), LazyAlone: l.stats.lazyAlone.Load(),
		Prepared: l.stats.prepared.Load(), Unprepared: l.stats.unprepared.Load(), PrepareWaits: l.stats.prepareWaits.Load(),
		Led: l.stats.led.Load(), Recycled: l.stats.recycled.Load(), SyncTime: time.Duration(l.stats.syncNanos.Load()),
		Gaps: l.stats.gaps.Load(), GapTime: time.Duration(l.stats.gapNanos.Load())}
}

var (
	_ log.Log           = (*Log)(nil)
	_ log.BatchAppender = (*Log)(nil)
	_ log.RangeReader   = (*Log)(nil)
	_ log.TailWaiter    = (*Log)(nil)
	_ log.CheckedReader = (*Log)(nil)
)

// rec is a positioned record of the group being committed.
type rec struct {
	pos  uint64
	kind byte
	r    *groupcommit.Request // nil for junk
}

// Open opens the log in directory dir, creating the directory and an empty
// log if there is none. opts may be nil. A directory that another opener
// holds is refused. Open checks the sealed index of every segment, scans the
// last segment's records, cuts a torn tail left by a crash during a group
// commit, and reports corruption with an error wrapping log.ErrCorrupt.
func Open(dir string, opts *Options) (*Log, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("seglog: open %s: %w", dir, err)
	}
	lockF, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, o.FileMode)
	if err != nil {
		return nil, fmt.Errorf("seglog: open %s: %w", dir, err)
	}
	if err := lockFile(lockF); err != nil {
		lockF.Close()
		return nil, fmt.Errorf("seglog: open %s: %w", dir, err)
	}
	l := &Log{
		dir:       dir,
		opts:      o,
		lockF:     lockF,
		pending:   map[uint64]struct{}{},
		tailMoved: make(chan struct{}),
		groupFill: map[uint64]struct{}{},
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	l.prep.cond = sync.NewCond(&l.prep.mu)
	l.prep.sinceRun = smallAfterLarge
	if err := l.load(); err != nil {
		for _, s := range l.segs {
			s.f.Close()
		}
		lockF.Close()
		return nil, fmt.Errorf("seglog: open %s: %w", dir, err)
	}
	l.startPreparer()
	go l.committer()
	return l, nil
}

// load reads the metadata and the segments, and leaves the log with an
// unsealed last segment at the tail.
func (l *Log) load() error {
	seqs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	trim, ok, err := readMeta(l.dir)
	if err != nil {
		return err
	}
	if !ok {
		if len(seqs) > 0 {
			return corruptf("%d segment files but no metadata file", len(seqs))
		}
		if err := writeFileAtomic(l.dir, metaName, encodeMeta(0), l.opts.FileMode, l.opts.NoSync); err != nil {
			return fmt.Errorf("write metadata: %w", err)
		}
	}
	l.trim = trim
	if err := l.loadSpares(); err != nil {
		return err
	}
	var fills []uint64
	for i, seq := range seqs {
		path := filepath.Join(l.dir, segName(seq))
		var s *segment
		if i < len(seqs)-1 {
			s, err = loadSealed(path, seq)
		} else {
			s, fills, err = loadLast(path, seq, l.opts.NoSync)
		}
		if err != nil {
			return err
		}
		if s.sealed && i == len(seqs)-1 {
			// A crash between writing the index and cutting the file
			// there leaves a segment that scans as sealed but whose
			// trailer is not at the end of the file: seal it again.
			if _, err := readSealed(path, s.f, segHeader{version: s.version, seq: s.seq, base: s.base}); err != nil {
				if err := l.seal(s); err != nil {
					s.f.Close()
					return err
				}
			}
		}
		l.segs = append(l.segs, s)
		// Trims delete a prefix of the segments, so the rest are numbered
		// consecutively; positions run on from one segment to the next,
		// except for a gap below the trim point (a trim beyond the tail).
		if i == 0 && s.base > trim {
			return corruptf("the first segment %s starts at position %d, above the trim point %d: positions between are missing", s.path, s.base, trim)
		}
		if i > 0 {
			prev := l.segs[i-1]
			// (A crash in the middle of deleting trimmed segments may
			// leave any of them behind: gaps among those are fine.)
			if seq != seqs[i-1]+1 && prev.next() > trim {
				return corruptf("segment %s follows %s: a segment is missing", s.path, prev.path)
			}
			if s.base < prev.next() || (s.base > prev.next() && s.base > trim) {
				return corruptf("segment %s starts at position %d, but %s ends at %d (trim point %d)", s.path, s.base, prev.path, prev.next(), trim)
			}
		}
	}
	l.tail = trim
	l.nextSeq = 1
	if n := len(l.segs); n > 0 {
		l.tail = max(l.tail, l.segs[n-1].next())
		l.nextSeq = l.segs[n-1].seq + 1
	}
	for _, p := range fills {
		if p >= l.tail {
			l.pending[p] = struct{}{}
		}
	}
	if n := len(l.segs); n == 0 || l.segs[n-1].sealed || l.segs[n-1].next() != l.tail {
		if err := l.roll(l.tail); err != nil {
			return err
		}
	}
	return l.dropTrimmed()
}

// orBackground tolerates a nil context, as context.Background.
func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// Append writes data at the next free position and returns that position
// once the entry is durable. Zero-length entries are data. Entries larger
// than log.MaxEntrySize are refused with an error wrapping log.ErrTooLarge.
func (l *Log) Append(ctx context.Context, data []byte) (log.Position, error) {
	ctx = orBackground(ctx)
	if err := groupcommit.CheckAppends(ctx, "seglog", data); err != nil {
		return 0, err
	}
	r := groupcommit.Get(groupcommit.Append)
	r.Data = data
	if err := l.submitLead(r); err != nil {
		groupcommit.Put(r)
		return 0, fmt.Errorf("seglog: append: %w", err)
	}
	if err := r.Wait(ctx); err != nil {
		return 0, fmt.Errorf("seglog: append: %w", err) // withdrawn: not pooled
	}
	pos, err := r.Pos, r.Err
	groupcommit.Put(r)
	return pos, err
}

// AppendLazy appends data as Append does, for an entry whose durability
// may wait a little (a database's afterimages): it starts no group commit
// of its own, but joins the next one started for another request (an
// append, fill or trim), or commits alone once it has waited within. So it
// costs no fdatasync of its own while other writes keep coming, and the
// group it rides in is not delayed for it. shared reports that the group
// that committed it held another request.
func (l *Log) AppendLazy(ctx context.Context, data []byte, within time.Duration) (pos log.Position, shared bool, err error) {
	ctx = orBackground(ctx)
	if err := groupcommit.CheckAppends(ctx, "seglog", data); err != nil {
		return 0, false, err
	}
	r := groupcommit.Get(groupcommit.Append)
	r.Data, r.Lazy, r.Due = data, true, time.Now().Add(within)
	if err := l.submit(r); err != nil {
		groupcommit.Put(r)
		return 0, false, fmt.Errorf("seglog: append: %w", err)
	}
	if err := r.Wait(ctx); err != nil {
		return 0, false, fmt.Errorf("seglog: append: %w", err) // withdrawn: not pooled
	}
	pos, shared, err = r.Pos, r.Shared, r.Err
	groupcommit.Put(r)
	return pos, shared, err
}

// AppendLazyBatch appends the entries in order, lazily as AppendLazy does
// (one wait for all of them: a database's flusher hands over several
// afterimages at once), and returns their positions, ascending. They join
// the same group commit unless Options.MaxGroupBytes splits them. shared
// reports that every group that committed them held another request. On an
// error each entry may or may not have been written, as with Append.
func (l *Log) AppendLazyBatch(ctx context.Context, data [][]byte, within time.Duration) (pos []log.Position, shared bool, err error) {
	ctx = orBackground(ctx)
	if err := groupcommit.CheckAppends(ctx, "seglog", data...); err != nil {
		return nil, false, err
	}
	if len(data) == 0 {
		if l.q.IsShut() {
			return nil, false, fmt.Errorf("seglog: append: %w", log.ErrClosed)
		}
		return []log.Position{}, false, nil
	}
	id := l.batchIDs.Add(1)
	due := time.Now().Add(within)
	rs := make([]*groupcommit.Request, len(data))
	for i, d := range data {
		rs[i] = groupcommit.Get(groupcommit.Append)
		rs[i].Data, rs[i].Batch, rs[i].Lazy, rs[i].Due = d, id, true, due
	}
	if err := l.submit(rs...); err != nil {
		return nil, false, fmt.Errorf("seglog: append: %w", err)
	}
	shared = true
	pos, err = groupcommit.WaitAll(ctx, "seglog", rs, func(r *groupcommit.Request) {
		shared = shared && r.Shared
		groupcommit.Put(r) // read: back to the pool, as AppendBatch's
	})
	if err != nil {
		return nil, false, err
	}
	return pos, shared, nil
}

// AppendBatch appends the entries in order and returns their positions,
// ascending. They share one group commit unless Options.MaxGroupBytes splits
// them. It implements log.BatchAppender. On an error each entry may or may
// not have been written, as with Append.
func (l *Log) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	ctx = orBackground(ctx)
	if err := groupcommit.CheckAppends(ctx, "seglog", data...); err != nil {
		return nil, err
	}
	if len(data) == 0 {
		if l.q.IsShut() {
			return nil, fmt.Errorf("seglog: append: %w", log.ErrClosed)
		}
		return []log.Position{}, nil
	}
	id := l.batchIDs.Add(1)
	rs := make([]*groupcommit.Request, len(data))
	for i, d := range data {
		rs[i] = groupcommit.Get(groupcommit.Append)
		rs[i].Data, rs[i].Batch = d, id
	}
	if err := l.submitLead(rs...); err != nil {
		for _, r := range rs {
			groupcommit.Put(r)
		}
		return nil, fmt.Errorf("seglog: append: %w", err)
	}
	return groupcommit.WaitAll(ctx, "seglog", rs, groupcommit.Put)
}

// Fill makes pos junk forever. See log.Log.
func (l *Log) Fill(ctx context.Context, pos log.Position) error {
	return l.do(ctx, groupcommit.Fill, pos, "fill")
}

// Trim makes every position below pos read log.ErrTrimmed, durably, and
// deletes every segment file that holds only positions below pos before it
// returns.
func (l *Log) Trim(ctx context.Context, pos log.Position) error {
	return l.do(ctx, groupcommit.Trim, pos, "trim")
}

func (l *Log) do(ctx context.Context, op groupcommit.Op, pos log.Position, name string) error {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("seglog: %s position %d: %w", name, pos, err)
	}
	r := groupcommit.Get(op)
	r.Pos = pos
	if err := l.submit(r); err != nil {
		groupcommit.Put(r)
		return fmt.Errorf("seglog: %s position %d: %w", name, pos, err)
	}
	if err := r.Wait(ctx); err != nil {
		return fmt.Errorf("seglog: %s position %d: %w", name, pos, err) // withdrawn: not pooled
	}
	err := r.Err
	groupcommit.Put(r)
	return err
}

// submit queues rs together and wakes the committer.
func (l *Log) submit(rs ...*groupcommit.Request) error {
	if err := l.q.Add(rs...); err != nil {
		return err
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

// submitLead queues rs together and commits them itself or wakes the
// committer (see lead).
func (l *Log) submitLead(rs ...*groupcommit.Request) error {
	if err := l.q.Add(rs...); err != nil {
		return err
	}
	l.lead(len(rs))
	return nil
}

// Tail returns the next position to be assigned. Positions filled at or
// beyond it are skipped by Append, but do not move it.
func (l *Log) Tail(ctx context.Context) (log.Position, error) {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("seglog: tail: %w", err)
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.closed {
		return 0, fmt.Errorf("seglog: tail: %w", log.ErrClosed)
	}
	return log.Position(l.tail), nil
}

// WaitTail implements log.TailWaiter: it returns once the tail is beyond
// after (at once if it already is), with the tail it saw then. The tail
// moves when a group commit is durable, or a trim passes it.
func (l *Log) WaitTail(ctx context.Context, after log.Position) (log.Position, error) {
	ctx = orBackground(ctx)
	for {
		l.segMu.RLock()
		closed, tail, moved := l.closed, l.tail, l.tailMoved
		l.segMu.RUnlock()
		if closed {
			return 0, fmt.Errorf("seglog: wait for the tail beyond %d: %w", after, log.ErrClosed)
		}
		if tail > uint64(after) {
			return log.Position(tail), nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return 0, fmt.Errorf("seglog: wait for the tail beyond %d: %w", after, ctx.Err())
		}
	}
}

// tailMovedLocked wakes WaitTail callers and calls the NotifyTail notes
// the tail passed. The caller holds segMu.
func (l *Log) tailMovedLocked() {
	close(l.tailMoved)
	l.tailMoved = make(chan struct{})
	l.notifyLocked()
}

// locate finds the record at pos, or the error reading pos gives. On
// success the segment's fileMu is held shared; the caller releases it.
// The record lies in bytes [from, to) of the segment.
func (l *Log) locate(ctx context.Context, pos log.Position) (s *segment, i int, from, to uint32, err error) {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return nil, 0, 0, 0, fmt.Errorf("seglog: read position %d: %w", pos, err)
	}
	p := uint64(pos)
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	switch {
	case l.closed:
		return nil, 0, 0, 0, fmt.Errorf("seglog: read position %d: %w", pos, log.ErrClosed)
	case p < l.trim:
		return nil, 0, 0, 0, fmt.Errorf("seglog: read position %d: %w", pos, log.ErrTrimmed)
	case p >= l.tail:
		if _, ok := l.pending[p]; ok {
			return nil, 0, 0, 0, fmt.Errorf("seglog: read position %d: %w", pos, log.ErrFilled)
		}
		return nil, 0, 0, 0, fmt.Errorf("seglog: read position %d: %w", pos, log.ErrNotWritten)
	}
	s, i = l.find(p)
	if s == nil {
		return nil, 0, 0, 0, fmt.Errorf("seglog: read position %d: no segment holds it: %w", pos, log.ErrCorrupt)
	}
	if s.kinds[i] == kindJunk {
		return nil, 0, 0, 0, fmt.Errorf("seglog: read position %d: %w", pos, log.ErrFilled)
	}
	s.fileMu.RLock()
	from, to = s.span(i)
	return s, i, from, to, nil
}

// find returns the segment holding position p and its index there. The
// caller holds segMu (or is the committer).
func (l *Log) find(p uint64) (*segment, int) {
	k := sort.Search(len(l.segs), func(k int) bool { return l.segs[k].base > p }) - 1
	if k < 0 {
		return nil, 0
	}
	s := l.segs[k]
	if p >= s.next() {
		return nil, 0
	}
	return s, int(p - s.base)
}

// readRecord reads bytes [from, to) of s and decodes the record at their
// start, checking that it is the data record at pos.
func readRecord(s *segment, pos log.Position, from, to uint32) ([]byte, error) {
	buf := make([]byte, to-from)
	if _, err := s.f.ReadAt(buf, int64(from)); err != nil {
		return nil, fmt.Errorf("seglog: read position %d: segment %s offset %d: %w", pos, s.path, from, err)
	}
	h, payload, err := decodeRecord(buf, s.seed)
	if err == nil && (h.kind != kindData || h.pos != uint64(pos)) {
		err = fmt.Errorf("record of kind %d for position %d", h.kind, h.pos)
	}
	if err != nil {
		return nil, fmt.Errorf("seglog: read position %d: segment %s offset %d: %v: %w", pos, s.path, from, err, log.ErrCorrupt)
	}
	return payload, nil
}

// Read returns a copy of the entry at pos, after checking its record's
// checksum. A record that fails it is reported with an error wrapping
// log.ErrCorrupt.
func (l *Log) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	s, _, from, to, err := l.locate(ctx, pos)
	if err != nil {
		return nil, err
	}
	defer s.fileMu.RUnlock()
	if l.opts.readHook != nil {
		l.opts.readHook(uint64(pos))
	}
	if data, _, ok := l.recent.read(s, uint64(pos), from, 0, math.MaxInt); ok {
		return data, nil
	}
	return readRecord(s, pos, from, to)
}

// ChecksReads implements log.CheckedReader: every record read from a
// segment file is checked against its CRC-32C (a record larger than 64 KiB
// on its first ReadRange), and a record still in memory since its group
// was written is not read from the file.
func (l *Log) ChecksReads() bool { return true }

// rangeVerifyAll: ReadRange of a record up to this size reads and checks
// the whole record.
const rangeVerifyAll = 64 << 10

// ReadRange implements log.RangeReader. A record up to 64 KiB is read whole
// and its checksum checked; of a larger one, the first ReadRange reads and
// checks the whole record, and later ones read only the header and the
// range.
func (l *Log) ReadRange(ctx context.Context, pos log.Position, off, n int) ([]byte, int, error) {
	if off < 0 || n < 0 {
		return nil, 0, fmt.Errorf("seglog: read position %d: range of %d bytes at %d", pos, n, off)
	}
	s, i, from, to, err := l.locate(ctx, pos)
	if err != nil {
		return nil, 0, err
	}
	defer s.fileMu.RUnlock()
	if l.opts.readHook != nil {
		l.opts.readHook(uint64(pos))
	}
	if data, size, ok := l.recent.read(s, uint64(pos), from, off, n); ok {
		return data, size, nil
	}
	if _, ok := s.verified.Load(i); !ok || to-from <= rangeVerifyAll {
		data, err := readRecord(s, pos, from, to)
		if err != nil {
			return nil, 0, err
		}
		if to-from > rangeVerifyAll {
			s.verified.Store(i, struct{}{})
		}
		lo := min(off, len(data))
		return append([]byte{}, data[lo:lo+min(n, len(data)-lo)]...), len(data), nil
	}
	var hb [recHeaderSize]byte
	if _, err := s.f.ReadAt(hb[:], int64(from)); err != nil {
		return nil, 0, fmt.Errorf("seglog: read position %d: segment %s offset %d: %w", pos, s.path, from, err)
	}
	h, err := parseRecHeader(hb[:])
	if err != nil || h.kind != kindData || h.pos != uint64(pos) || uint64(from)+recHeaderSize+uint64(h.len) > uint64(to) {
		return nil, 0, fmt.Errorf("seglog: read position %d: segment %s offset %d: header changed since it was checked (%v): %w", pos, s.path, from, err, log.ErrCorrupt)
	}
	size := int(h.len)
	lo := min(off, size)
	out := make([]byte, min(n, size-lo))
	if _, err := s.f.ReadAt(out, int64(from)+recHeaderSize+int64(lo)); err != nil {
		return nil, 0, fmt.Errorf("seglog: read position %d: segment %s offset %d: %w", pos, s.path, from, err)
	}
	return out, size, nil
}

// Close waits for the group being committed, fails the requests still
// queued with log.ErrClosed, waits for reads in progress and closes the
// files. Later calls, Close included, return log.ErrClosed.
func (l *Log) Close() error {
	if !l.q.Shut("seglog") {
		return fmt.Errorf("seglog: close %s: %w", l.dir, log.ErrClosed)
	}
	close(l.stop)
	<-l.done
	l.commitMu.Lock() // wait for a group an appender is committing (lead)
	l.commitMu.Unlock()
	<-l.prep.done
	l.segMu.Lock()
	l.closed = true
	l.tailMovedLocked()
	segs := l.segs
	l.segs = nil
	l.segMu.Unlock()
	var first error
	for _, s := range segs {
		s.fileMu.Lock()
		if err := s.f.Close(); err != nil && first == nil {
			first = err
		}
		s.fileMu.Unlock()
	}
	if err := l.lockF.Close(); err != nil && first == nil {
		first = err
	}
	if first != nil {
		return fmt.Errorf("seglog: close %s: %w", l.dir, first)
	}
	return nil
}

// setFailed records a write failure. From then on every write is refused:
// after a failed fdatasync the state of the file is unknown, so a retry
// could acknowledge data that is not durable.
func (l *Log) setFailed(cause error) error {
	return l.q.Fail(fmt.Errorf("%s: write failed, nothing of that group commit is acknowledged, and the log refuses writes until reopened: %w", l.dir, cause))
}

var errFull = errors.New("log is full")
