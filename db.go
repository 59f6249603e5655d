package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/piggyback"
	"github.com/cruzlog/cruzdb/processor"
	"github.com/cruzlog/cruzdb/startup"
)

// LogFileName is the embedded boltlog log's file inside the database
// directory, used by databases created before seglog became the default (see
// EmbeddedLogBackend).
const LogFileName = "log.db"

// DB is a cruzdb database: a view of a shared log kept current by a
// transaction processor. A DB is safe for concurrent use.
type DB struct {
	opts      Options
	log       log.Log
	ownsLog   bool
	header    entry.Header
	runner    *processor.Runner
	runnerRef atomic.Pointer[processor.Runner] // for the flusher's callback
	flusher   *flusher.Flusher
	lane      *piggyback.Log // log's decorator: intentions appended with riding afterimages

	cur       atomic.Pointer[version]
	pub       publication // what replay applied early, until it is durable (early.go)
	stopOrder func()      // stops the log's OrderWatcher (early.go)

	// mu guards the fields from waiters to closed (and the closing of
	// closing): who waits for which decision or position, the open
	// transactions, and how far replay's events have been handled. It is
	// held only briefly, never across I/O or a wait.
	mu        sync.Mutex
	waiters   map[uint64]*commitWaiter // by intention token
	syncs     []syncWaiter
	open      map[uint64]*Txn
	nextTxnID uint64
	released  uint64 // the last position whose event was fully handled (under mu)
	closed    bool
	closing   chan struct{}

	watchDone chan struct{} // closed when watchRunner returns; Close waits for it

	stats     stats
	safePoint startup.SafePoint
	ck        ckpt
}

// version is the database state after a log position.
type version struct {
	tree cowtree.Tree
	pos  uint64
}

type commitWaiter struct {
	ch  chan processor.Decision
	pos atomic.Uint64 // the intention's position once appended
}

type syncWaiter struct {
	target uint64
	ch     chan struct{}
}

type stats struct {
	commits, aborts, conflicts, tooOld, invalid atomic.Uint64
	appended                                    atomic.Uint64
}

// Stats are counters and gauges of a DB. They are passive: nothing steers by
// them.
type Stats struct {
	// Position is the last log position the processor has replayed. It
	// moves once everything the database does for an entry is done, which
	// is after the entry's decision reaches its committer: an Update that
	// has returned may briefly be above it (a transaction begun then still
	// reads what it committed).
	Position log.Position
	// Commits and Aborts count decisions made by replay (for every node's
	// intentions, not only this DB's).
	Commits, Aborts uint64
	// Conflicts, TooOld and Rejected break Aborts down.
	Conflicts, TooOld, Rejected uint64
	// IntentionsAppended counts intentions this DB appended.
	IntentionsAppended uint64
	// IntentionsAppliedEarly counts intentions replay applied while the log
	// was still syncing them (see Options.ApplyAfterSync).
	IntentionsAppliedEarly uint64
	// HolesFilled counts holes the processor filled.
	HolesFilled uint64
	// FlushedThrough is the newest committed position up to which every
	// delta is durable as an afterimage and confirmed (Position minus it is
	// the flush lag).
	FlushedThrough log.Position
	// AfterimagesWritten counts afterimages this DB appended, and
	// AfterimageBytes their size. An append is counted when it returns,
	// which can be just after replay confirmed the afterimage, so right
	// after Flush the count may still miss the last ones; after Close it is
	// final.
	AfterimagesWritten, AfterimageBytes uint64
	// PointersPhysical and PointersIntention count the cross-delta child
	// pointers written, by kind.
	PointersPhysical, PointersIntention uint64
	// Confirmed counts deltas whose active afterimage replay has seen;
	// Duplicates the afterimages seen after an active one.
	Confirmed, Duplicates uint64
	// UnflushedBytes is the memory of committed deltas not yet confirmed,
	// in PendingDeltas deltas; CachedBytes the memory of clean nodes kept.
	UnflushedBytes, CachedBytes int64
	PendingDeltas               int
	// CacheMisses counts nodes read back from the log after eviction;
	// CacheHits those served from an afterimage decoded moments before.
	CacheHits, CacheMisses, Evictions uint64
	// ForwardScans counts intention pointers resolved by scanning the log.
	ForwardScans uint64
	// BackpressureWaits counts commits that waited for the flusher.
	BackpressureWaits uint64
	// Piggybacked counts afterimages appended in one batch with one of this
	// node's intentions (on logs that batch appends, such as the embedded
	// one, while few clients commit), or, with more clients on seglog, in
	// one group commit with another write (see log/piggyback).
	Piggybacked uint64
	// AfterimagesInline counts afterimages a committing goroutine encoded
	// itself and handed over to ride with the next intention, waking no
	// flusher worker (one client committing: see flusher/inline.go).
	AfterimagesInline uint64
	// OpenTxns is the number of transactions not yet closed.
	OpenTxns int
	// Rebootstraps counts the times replay fell behind the log's trim
	// point and resumed from a newer safe point.
	Rebootstraps uint64

	// Checkpoints counts checkpoint images confirmed while this DB
	// replayed (whoever wrote them); CheckpointsWritten those this DB
	// wrote, in CheckpointBytes; CheckpointsAborted the images this DB
	// abandoned because another node's was confirmed first;
	// AutoCheckpoints the checkpoints the automatic trigger started here.
	// CheckpointWaits counts commits held back because the log outgrew
	// automatic checkpoints (see Options.CheckpointLogRatio).
	Checkpoints, CheckpointsWritten, CheckpointBytes, CheckpointsAborted, AutoCheckpoints, CheckpointWaits uint64
	// CheckpointInProgress: a cut was replayed whose image is not yet
	// confirmed.
	CheckpointInProgress bool
	// LastCheckpoint is the cut of the newest confirmed image (0: none).
	LastCheckpoint log.Position
	// TrimmedBelow is the trim point this DB set (0: it trimmed nothing).
	TrimmedBelow log.Position
	// LogLiveBytes is the size of the entries at or above the trim point
	// this DB set: those it replayed, and after a restart those from the
	// log's trim point up to the safe point it resumed from (measured in
	// the background just after Open). The log this node keeps alive.
	LogLiveBytes int64
	// CheckpointPrepare and CheckpointAuthority are the durations of the
	// newest checkpoint's phases: the image's chunks, then its marker's
	// confirmation and the trim (passive metrics).
	CheckpointPrepare, CheckpointAuthority time.Duration
}

// Open opens the database in directory path (created if missing), on its
// embedded log (seglog, or boltlog for a directory that holds LogFileName:
// see EmbeddedLogBackend), or on opts.Log when that is set (path may then be "").
// It replays the log up to the tail it finds before returning, so the DB
// starts with every commit made before Open.
func Open(path string, opts *Options) (*DB, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	db := &DB{
		opts:    o,
		waiters: map[uint64]*commitWaiter{},
		open:    map[uint64]*Txn{},
		closing: make(chan struct{}),

		watchDone: make(chan struct{}),
	}
	db.ck.init()
	if o.Log != nil {
		db.log = o.Log
	} else {
		if path == "" {
			return nil, fmt.Errorf("%w: a path is required without Options.Log", ErrInvalidOptions)
		}
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, fmt.Errorf("cruzdb: open: %w", err)
		}
		l, err := OpenEmbeddedLog(path, o.NoSync)
		if err != nil {
			return nil, fmt.Errorf("cruzdb: open: %w", err)
		}
		db.log, db.ownsLog = l, true
	}
	if err := db.start(); err != nil {
		if db.ownsLog {
			db.log.Close()
		}
		return nil, err
	}
	return db, nil
}

func (db *DB) start() error {
	ctx := context.Background()
	h, err := readOrWriteHeader(ctx, db.log, db.opts)
	if err != nil {
		return err
	}
	db.header = *h
	sp, err := findSafePoint(ctx, db.log, db.opts.Logger)
	if err != nil {
		return fmt.Errorf("cruzdb: open: %w", err)
	}
	db.safePoint = sp
	db.lane = piggyback.New(db.log)
	db.flusher, err = flusher.New(flusher.Options{
		Log:               db.lane,
		Workers:           db.opts.FlushWorkers,
		Serial:            db.opts.FlushSerial,
		MaxUnflushedBytes: db.opts.MaxUnflushedBytes,
		CacheBytes:        db.opts.CacheBytes,
		ImageDuty:         db.opts.CheckpointDuty,
		Policy:            db.opts.FlushPolicy,
		TakeoverDelay:     db.opts.TakeoverDelay,
		IndexEntries:      flusher.DefaultIndexEntries,
		HoleTimeout:       db.opts.HoleTimeout,
		Logger:            db.opts.Logger,
		Appended: func() {
			if r := db.runnerRef.Load(); r != nil {
				r.Notify()
			}
		},
		Prepared:    db.onPrepared,
		Hurry:       func() bool { return db.ck.held.Load() > 0 },
		ImageBudget: db.imageBudget,
		Latest: func() (cowtree.Tree, bool) {
			if v := db.cur.Load(); v != nil {
				return v.tree, true
			}
			return cowtree.Tree{}, false
		},
	}, sp.Intention)
	if err != nil {
		return err
	}
	tree := cowtree.New(db.flusher.Loader())
	if sp.Marker != nil {
		db.flusher.KnownCheckpoint(sp.Afterimage, sp.Marker)
		db.resumeFromCheckpoint(sp)
		tree = cowtree.FromRoot(sp.Root, db.flusher.Loader())
	} else if sp.Intention != 0 {
		db.flusher.Known(sp.Intention, sp.Afterimage)
		tree = cowtree.FromRoot(sp.Root, db.flusher.Loader())
	}
	st := processor.NewState(*h, tree, sp.Intention)
	st.SetEpoch(sp.Intention) // see processor.State.SetEpoch
	db.cur.Store(&version{tree: st.Tree(), pos: sp.Intention})
	db.pub.tree = st.Tree()
	db.pub.shownPos.Store(sp.Intention)
	db.released = sp.Intention
	db.runner, err = processor.Start(processor.Config{
		Early:        db.early(),
		Log:          db.log,
		State:        st,
		OnEvent:      db.onEvent,
		HoleTimeout:  db.opts.HoleTimeout,
		PollInterval: db.opts.PollInterval,
		ReadAhead:    processor.DefaultReadAhead,
		Logger:       db.opts.Logger,
		Rebootstrap:  db.rebootstrap,
	})
	if err != nil {
		db.flusher.Stop()
		return err
	}
	db.runnerRef.Store(db.runner)
	db.stopOrder = db.watchOrder()
	go db.watchRunner()
	stopProgress := db.reportReplay(sp)
	err = db.Sync(ctx)
	stopProgress()
	if err != nil {
		db.stopOrder()
		db.runner.Stop()
		<-db.watchDone
		db.flusher.Stop()
		return fmt.Errorf("cruzdb: open: replay: %w", err)
	}
	db.startCheckpoints()
	return nil
}

// reportReplay logs replay progress every few seconds until stopped.
func (db *DB) reportReplay(sp startup.SafePoint) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		start, last, lastAt := time.Now(), sp.Intention, time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				pos := db.runner.Applied()
				rate := float64(pos-last) / now.Sub(lastAt).Seconds()
				remaining := int64(sp.Tail) - 1 - int64(pos)
				db.opts.Logger.Info("replaying the log", "position", pos, "tail", sp.Tail,
					"remaining", remaining, "entries_per_sec", int64(rate), "elapsed", now.Sub(start).Round(time.Second))
				last, lastAt = pos, now
			}
		}
	}()
	return func() { close(done); <-exited }
}

// SafePoint returns where this DB resumed at Open.
func (db *DB) SafePoint() startup.SafePoint { return db.safePoint }

// readOrWriteHeader returns the database header at position 0, writing it
// first if the log is empty.
func readOrWriteHeader(ctx context.Context, l log.Log, o Options) (*entry.Header, error) {
	tail, err := l.Tail(ctx)
	if err != nil {
		return nil, fmt.Errorf("cruzdb: open: read tail: %w", err)
	}
	if tail == 0 {
		h := entry.NewHeader(o.ConflictWindow, DefaultMaxKeySize, DefaultMaxValueSize)
		if _, err := l.Append(ctx, entry.EncodeHeader(h)); err != nil {
			return nil, fmt.Errorf("cruzdb: open: write header: %w", err)
		}
		// Another node may have won position 0; read whatever is there.
	}
	deadline := time.Now().Add(o.HoleTimeout + 5*time.Second)
	for {
		data, err := l.Read(ctx, 0)
		switch {
		case err == nil:
			h, err := entry.DecodeHeaderEntry(0, data)
			if err != nil {
				if errors.Is(err, entry.ErrWrongType) {
					return nil, fmt.Errorf("cruzdb: open: log position 0 is not a cruzdb header: %w", ErrCorrupt)
				}
				return nil, fmt.Errorf("cruzdb: open: %w", err)
			}
			if err := h.Validate(); err != nil {
				return nil, fmt.Errorf("cruzdb: open: log position 0: %w: %w", ErrCorrupt, err)
			}
			return h, nil
		case errors.Is(err, log.ErrNotWritten) && time.Now().Before(deadline):
			// Another node took position 0 and is still writing its header.
			time.Sleep(time.Millisecond)
		case errors.Is(err, log.ErrTrimmed):
			return headerAtTrimPoint(ctx, l)
		case errors.Is(err, log.ErrFilled):
			return nil, fmt.Errorf("cruzdb: open: log position 0 holds junk, not a header: %w", ErrCorrupt)
		default:
			return nil, fmt.Errorf("cruzdb: open: read header: %w", err)
		}
	}
}

// onEvent runs on the processor goroutine for every replayed position (or
// on a committing goroutine that applies its own intention: Txn.Commit,
// processor.Runner.ApplyLocal), one position at a time, in log order.
func (db *DB) onEvent(ev processor.Event) {
	if !ev.Early {
		// Read back from the log, so durable, as is everything before it:
		// show what was applied early before anything of this one is done.
		db.pub.raise(ev.Pos + 1)
		db.showDurable()
	}
	db.countReplayed(ev)
	if d := ev.Decision; d != nil {
		switch d.Outcome {
		case processor.Committed:
			db.stats.commits.Add(1)
		case processor.Conflict:
			db.stats.aborts.Add(1)
			db.stats.conflicts.Add(1)
		case processor.TooOld:
			db.stats.aborts.Add(1)
			db.stats.tooOld.Add(1)
		case processor.Invalid:
			db.stats.aborts.Add(1)
			db.stats.invalid.Add(1)
		}
	}
	v := &version{pos: ev.Pos}
	if ev.Delta != nil {
		v.tree = ev.Delta.Tree
	} else {
		v.tree = db.pub.tree
	}
	db.pub.tree = v.tree

	db.mu.Lock()
	// Deltas of intentions found in the log at open are ours to flush: their
	// originator may be this node's previous, crashed incarnation.
	local := ev.Pos < db.safePoint.Tail
	db.mu.Unlock()
	if ev.Checkpoint != nil && db.onCheckpointEvent(ev) {
		local = true
	}
	db.mu.Lock()
	var committer *commitWaiter
	if d := ev.Decision; d != nil {
		if w, ok := db.waiters[d.Token]; ok {
			delete(db.waiters, d.Token)
			committer = w
			local = true
		}
	}
	db.mu.Unlock()

	if ev.Delta != nil {
		if db.opts.deltaHook != nil {
			db.opts.deltaHook(ev.Delta)
		}
		db.flusher.Produced(ev.Delta, local)
	}
	db.published(shown{ev: ev, v: v, committer: committer})
}

// watchRunner fails everything waiting once replay stops for good.
func (db *DB) watchRunner() {
	defer close(db.watchDone)
	<-db.runner.Done()
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, s := range db.syncs {
		close(s.ch)
	}
	db.syncs = nil
	for tok, w := range db.waiters {
		delete(db.waiters, tok)
		close(w.ch)
	}
}

// replayErr is the error to report when replay has stopped.
func (db *DB) replayErr() error {
	if err := db.runner.Err(); err != nil {
		return fmt.Errorf("cruzdb: replay stopped: %w", err)
	}
	return ErrClosed
}

// waiterDroppedErr says why a commit's wait for its decision ended without
// one: replay stopped, the database closed, or (neither) a re-bootstrap
// resumed past the intention because the log was trimmed there.
func (db *DB) waiterDroppedErr() error {
	if err := db.runner.Err(); err != nil {
		return fmt.Errorf("cruzdb: replay stopped: %w", err)
	}
	select {
	case <-db.closing:
		return ErrClosed
	default:
		return errSkippedByTrim
	}
}

// errSkippedByTrim: replay fell behind the log's trim point and resumed
// from a newer safe point, past the intention.
var errSkippedByTrim = errors.New("cruzdb: replay resumed past this intention from a newer checkpoint (the log was trimmed below it)")

// waitApplied blocks until replay has passed position target.
func (db *DB) waitApplied(ctx context.Context, target uint64) error {
	ch := make(chan struct{})
	db.mu.Lock()
	if db.released >= target {
		db.mu.Unlock()
		return nil
	}
	select {
	case <-db.runner.Done():
		db.mu.Unlock()
		return db.replayErr()
	default:
	}
	db.syncs = append(db.syncs, syncWaiter{target: target, ch: ch})
	db.mu.Unlock()
	select {
	case <-ch:
		db.mu.Lock()
		ok := db.released >= target
		db.mu.Unlock()
		if ok {
			return nil
		}
		return db.replayErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sync returns once the processor has replayed everything up to the log's
// tail at the time of the call: after Sync, this DB sees every commit that
// any node of the shared log had acknowledged before Sync was called.
func (db *DB) Sync(ctx context.Context) error {
	if db.isClosed() {
		return ErrClosed
	}
	tail, err := db.log.Tail(ctx)
	if err != nil {
		return fmt.Errorf("cruzdb: sync: %w", err)
	}
	if tail == 0 {
		return nil
	}
	db.runner.Notify()
	return db.waitApplied(ctx, uint64(tail)-1)
}

// Flush returns once every delta produced so far (up to the position replay
// has reached) is durable in the log as an afterimage and confirmed as its
// intention's active afterimage. Nodes of flushed deltas may be evicted from
// memory, and a restart need not replay their intentions.
func (db *DB) Flush(ctx context.Context) error {
	if db.isClosed() {
		return ErrClosed
	}
	return db.flush(ctx)
}

func (db *DB) flush(ctx context.Context) error {
	// Every delta produced so far: a commit's delta is produced before its
	// committer returns, while Applied may still lag behind it.
	if err := db.flusher.Flush(ctx, db.flusher.Last()); err != nil {
		if errors.Is(err, flusher.ErrStopped) {
			return db.replayErr()
		}
		return fmt.Errorf("cruzdb: flush: %w", err)
	}
	return nil
}

// Stats returns the current counters.
func (db *DB) Stats() Stats {
	db.mu.Lock()
	openTxns := len(db.open)
	db.mu.Unlock()
	fs := db.flusher.Stats()
	return Stats{
		FlushedThrough:         log.Position(fs.FlushedThrough),
		AfterimagesWritten:     fs.AfterimagesWritten,
		AfterimageBytes:        fs.AfterimageBytes,
		PointersPhysical:       fs.PointersPhysical,
		PointersIntention:      fs.PointersIntention,
		Confirmed:              fs.Confirmed,
		Duplicates:             fs.Duplicates,
		UnflushedBytes:         fs.UnflushedBytes,
		PendingDeltas:          fs.PendingDeltas,
		CachedBytes:            fs.CachedBytes,
		CacheHits:              fs.CacheHits,
		CacheMisses:            fs.CacheMisses,
		Evictions:              fs.Evictions,
		ForwardScans:           fs.ForwardScans,
		BackpressureWaits:      fs.BackpressureWaits,
		Piggybacked:            fs.Piggybacked,
		AfterimagesInline:      fs.Inline,
		Position:               log.Position(db.pub.shownPos.Load()),
		Commits:                db.stats.commits.Load(),
		Aborts:                 db.stats.aborts.Load(),
		Conflicts:              db.stats.conflicts.Load(),
		TooOld:                 db.stats.tooOld.Load(),
		Rejected:               db.stats.invalid.Load(),
		IntentionsAppended:     db.stats.appended.Load(),
		IntentionsAppliedEarly: db.runner.EarlyApplies(),
		HolesFilled:            db.runner.HolesFilled(),
		OpenTxns:               openTxns,
		Rebootstraps:           db.runner.Rebootstraps(),

		Checkpoints:          db.ck.count.Load(),
		CheckpointsWritten:   fs.CheckpointsWritten,
		CheckpointBytes:      fs.CheckpointBytes,
		CheckpointsAborted:   fs.CheckpointsAborted,
		AutoCheckpoints:      db.ck.autoRuns.Load(),
		CheckpointWaits:      db.ck.waits.Load(),
		CheckpointInProgress: db.ck.pending.Load() > 0,
		LastCheckpoint:       log.Position(db.ck.lastCut.Load()),
		TrimmedBelow:         log.Position(db.ck.trimmed.Load()),
		LogLiveBytes:         db.liveBytes(),
		CheckpointPrepare:    time.Duration(db.ck.prepareNs.Load()),
		CheckpointAuthority:  time.Duration(db.ck.authNs.Load()),
	}
}

// Limits returns the largest key and value this database accepts, as its
// header at log position 0 says.
func (db *DB) Limits() (maxKey, maxValue int) {
	return int(db.header.MaxKeySize), int(db.header.MaxValueSize)
}

// Log returns the shared log the DB runs on.
func (db *DB) Log() log.Log { return db.log }

func (db *DB) isClosed() bool {
	select {
	case <-db.closing:
		return true
	default:
		return false
	}
}

// Close stops replay and releases the log (if the DB opened it). Commits
// waiting for a decision return ErrClosed. Transactions still open are named
// in the returned error (wrapping ErrLeakedTxn); they are closed anyway.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return ErrClosed
	}
	db.closed = true
	close(db.closing)
	var leaked []string
	ids := make([]uint64, 0, len(db.open))
	for id := range db.open {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		tx := db.open[id]
		leaked = append(leaked, fmt.Sprintf("txn %d (writable=%v, snapshot %d, open %s)", id, tx.writable, tx.snap.pos, time.Since(tx.started).Round(time.Millisecond)))
	}
	db.mu.Unlock()
	db.stopCheckpoints()

	var errs []error
	// Flush while replay still runs: it confirms the afterimages.
	fctx, cancel := context.WithTimeout(context.Background(), db.opts.CloseFlushTimeout)
	if err := db.flush(fctx); err != nil {
		errs = append(errs, fmt.Errorf("cruzdb: close: %w", err))
	} else if err := db.flusher.Seal(fctx); err != nil {
		errs = append(errs, fmt.Errorf("cruzdb: close: %w", err))
	}
	cancel()
	db.stopOrder()
	db.flusher.Stop()
	if err := db.runner.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("cruzdb: close: replay had stopped: %w", err))
	}
	<-db.watchDone
	if db.ownsLog {
		if err := db.log.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cruzdb: close log: %w", err))
		}
	}
	if len(leaked) > 0 {
		db.opts.Logger.Warn("transactions left open at close", "txns", leaked)
		errs = append(errs, fmt.Errorf("%w: %s", ErrLeakedTxn, strings.Join(leaked, "; ")))
	}
	return errors.Join(errs...)
}
