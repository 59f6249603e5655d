package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
)

// Event reports one log position, in log order, on the processor goroutine
// (or on a committing goroutine that holds the apply role: ApplyLocal; one
// at a time either way).
type Event struct {
	Pos uint64
	// Type of the entry; 0 for junk (a filled position).
	Type entry.Type
	// Intention entries.
	Intention *Intention
	Decision  *Decision
	Delta     *Delta // committed intentions only
	// Afterimage entries.
	Afterimage *AfterimageHeader
	// Checkpoint entries: what kind, and the cut's token or the marker.
	Checkpoint *CheckpointEntry
	// Size is the entry's size in bytes (0 for junk).
	Size int
	// Early: the entry was applied before the log said it was durable
	// (Config.Early, early.go); nothing of it may be shown before then.
	Early bool
}

// CheckpointEntry is what replay reads of a checkpoint entry. A cut's delta
// is the Event's Delta.
type CheckpointEntry struct {
	Kind   byte // entry.CheckpointCut, CheckpointChunk or CheckpointMarker
	Token  uint64
	Marker *entry.Marker
}

// Intention is an alias so that callers need not import the intention
// package to read an Event.
type Intention = intention.Intention

// Config configures a Runner.
type Config struct {
	// Log is the shared log to replay. Required.
	Log log.Log
	// State is the state to replay from; replay starts at State.Pos()+1.
	// Required. The Runner owns it from Start on.
	State *State
	// OnEvent is called for every position, in log order, on the processor
	// goroutine or, for the positions a committer applies itself, on the
	// goroutine calling ApplyLocal; never two at once. It must not block for
	// long: replay waits for it. Required.
	OnEvent func(Event)
	// HoleTimeout is how long a position below the tail may stay unwritten
	// before the runner fills it, so a dead writer cannot stall every node.
	// Zero means DefaultHoleTimeout.
	HoleTimeout time.Duration
	// PollInterval is how often the runner looks for appends made by other
	// nodes when nothing wakes it. Zero means DefaultPollInterval. A
	// log.TailWaiter is waited on instead; the interval then only paces
	// waiting on a hole.
	PollInterval time.Duration
	// ReadAhead is how many entries the reader decodes ahead of the core
	// (while a backlog is read by a reader goroutine: see Runner), and the
	// most read in one go at the tail. Zero means DefaultReadAhead.
	ReadAhead int
	// Logger receives progress and problems. Default: discard.
	Logger *slog.Logger
	// Rebootstrap, if set, is called on the processor goroutine when replay
	// meets the trimmed part of the log: the next position to replay was
	// trimmed, or the tree could not load a node because it was (another
	// node checkpointed and trimmed while this one lagged). It returns the
	// state to go on from, a safe point above the trim, and replay resumes
	// after its position. Without it, or when it fails, replay stops.
	Rebootstrap func(cause error) (*State, error)
	// Early lets the runner apply the entries handed to Ordered before they
	// are durable (early.go); their events carry Early. Default false.
	Early bool
}

// Runner drives a State over the log on one goroutine, which applies the
// entries and, at the tail, reads them itself; while more than a few dozen
// entries wait (replay at start, a burst), a second goroutine reads and
// decodes ahead of it until it has caught up (source.go). Create with
// Start.
type Runner struct {
	cfg     Config
	wake    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	done    chan struct{}
	errOnce sync.Once
	err     error
	applied atomic.Uint64
	fills   atomic.Uint64

	rebootstraps atomic.Uint64
	// idle counts the waits the reader began for a wake-up (Notify or the
	// poll), and the applier's parks on a TailWaiter (park), so that a test
	// can tell it is asleep; nothing reads it.
	idle atomic.Uint64
	// catchUps counts the catch-up readers started (source.go), for tests.
	catchUps atomic.Uint64

	// mu is the apply role: whoever holds it may read at the tail and
	// apply, in log order. The applying goroutine holds it except while it
	// waits for the tail; a committing goroutine takes it only if it is
	// free (ApplyLocal, local.go). It guards the fields below.
	mu       sync.Mutex
	st       *State
	src      *source
	stopped  bool // the applying goroutine has returned
	rebooted bool // rebootstrap swapped the state in during applyItem
	// missed is set by the applying goroutine when it found mu taken by a
	// committing goroutine; that goroutine wakes it once it lets go.
	missed atomic.Bool
	// locals counts the intentions applied by committing goroutines
	// (ApplyLocal), for tests and benchmarks.
	locals atomic.Uint64
	// earlies counts the intentions applied before the log said they were
	// durable (early.go), for Stats and benchmarks.
	earlies atomic.Uint64
	// tw is the log as a log.TailWaiter, or nil: committers apply their
	// own intentions only on such a log (seglog, etcdlog). On a polled log
	// (memlog, boltlog) nothing races them, and an append that does not
	// block (memlog) let a committer that applies its own intentions keep
	// the flusher, readied on its P, from running: afterimages trailed
	// their intentions further, and a recovery's forward scans in
	// TestCheckpointCrashBoundaries (memlog, -race) passed its bound in 6
	// of about 200 subtests (never in 112 without local applies).
	tw log.TailWaiter
	// tn tells the applying goroutine, parked, that the tail moved: the
	// log itself (seglog), or a goroutine on tw (waitNotifier).
	tn log.TailNotifier
	// The applying goroutine's park (local.go). watchMu guards inflight
	// (the commits between BeginLocal and their end), parked, left (a
	// commit ended without its position applied), lost (one whose append
	// failed) and note (the armed tail notice's stop). hint is a tail known to have been reached; fired and
	// noteErr are set by the notice's callback, which takes no lock.
	watchMu  sync.Mutex
	inflight int
	parked   bool
	left     bool
	lost     bool
	note     func() bool
	notedFn  func(log.Position, error)
	hint     atomic.Uint64
	fired    atomic.Bool
	noteErr  atomic.Pointer[error]
	poke     chan struct{} // cap 1: wakes the parked applying goroutine
	handback chan struct{} // wakes the applying goroutine for the apply role

	// Early application (early.go): the entries staged by Ordered.
	earlyMu   sync.Mutex
	staged    []staged
	earlyPoke chan struct{} // cap 1
}

type item struct {
	pos   uint64
	early bool // staged by Ordered: not known to be durable (early.go)
	typ   entry.Type
	in    *intention.Intention
	ai    *AfterimageHeader
	ck    *CheckpointEntry
	size  int
	fail  error
}

// AfterimageHeader is what replay reads of an afterimage entry: whose it is,
// its base and its size. The nodes are decoded only when loaded.
type AfterimageHeader struct {
	Intention, Base uint64
	Nodes           int
}

// Start begins replay after cfg.State.Pos().
func Start(cfg Config) (*Runner, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, wake: make(chan struct{}, 1), handback: make(chan struct{}, 1), poke: make(chan struct{}, 1), done: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.tw, _ = cfg.Log.(log.TailWaiter)
	if r.tw != nil {
		r.notedFn = r.noted
		if r.tn, _ = cfg.Log.(log.TailNotifier); r.tn == nil {
			r.tn = waitNotifier{r: r, tw: r.tw}
		}
	}
	r.applied.Store(cfg.State.Pos())
	// Set before the goroutines start: the early applier may take the
	// apply role first.
	r.st = cfg.State
	r.src = r.newSource(r.st.Pos() + 1)
	r.wg.Add(1)
	go r.apply()
	if cfg.Early {
		r.earlyPoke = make(chan struct{}, 1)
		r.wg.Add(1)
		go r.applyEarly()
	}
	go func() { r.wg.Wait(); close(r.done) }()
	return r, nil
}

// Notify tells the runner that new entries may be in the log (for example
// after a local Append), so it need not wait for the next poll.
func (r *Runner) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Applied returns the last position the core has replayed.
func (r *Runner) Applied() uint64 { return r.applied.Load() }

// HolesFilled returns how many holes this runner filled.
func (r *Runner) HolesFilled() uint64 { return r.fills.Load() }

// Done is closed when the runner has stopped, after Stop or a fatal error.
func (r *Runner) Done() <-chan struct{} { return r.done }

// Err returns the fatal error that stopped the runner, if any.
func (r *Runner) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Stop stops replay and waits for both goroutines. It returns the fatal error
// that had stopped the runner, if any.
func (r *Runner) Stop() error {
	r.cancel()
	<-r.done
	return r.err
}

func (r *Runner) fail(err error) {
	r.errOnce.Do(func() {
		r.err = err
		r.cfg.Logger.Error("processor stopped", "err", err)
	})
	r.cancel()
}

// startReader starts a reader from position from, under parent; cancel
// stops it, and it then closes its channel. With caught set, the reader
// also stops once it finds no entry beyond the last it handed over, and
// says where in caught before it closes its channel (see source).
func (r *Runner) startReader(parent context.Context, from uint64, caught *caughtUp) (<-chan []item, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan []item, 4)
	r.wg.Add(1)
	go r.read(ctx, ch, from, caught)
	return ch, cancel
}

// read fetches and decodes entries in order from next on and hands them
// over in batches (until it has caught up, with caught set).
func (r *Runner) read(ctx context.Context, out chan<- []item, next uint64, caught *caughtUp) {
	defer r.wg.Done()
	defer close(out)
	ticker := time.NewTicker(r.cfg.PollInterval)
	defer ticker.Stop()
	wait := func() bool {
		r.idle.Add(1)
		select {
		case <-ctx.Done():
			return false
		case <-r.wake:
		case <-ticker.C:
		}
		return true
	}
	// A log that says when its tail moves is waited on instead of polled;
	// not by a catch-up reader, which must find that it has caught up (a
	// TailWaiter returns only once the tail is beyond next, so a catch-up
	// reader waiting on it never stopped, and the applying goroutine never
	// read at the tail again after the first backlog).
	tw, _ := r.cfg.Log.(log.TailWaiter)
	if caught != nil {
		tw = nil
	}
	for {
		var tail log.Position
		var err error
		if tw != nil {
			tail, err = tw.WaitTail(ctx, log.Position(next))
		} else {
			tail, err = r.cfg.Log.Tail(ctx)
		}
		if err != nil {
			if ctx.Err() == nil {
				r.fail(fmt.Errorf("processor: read tail: %w", err))
			}
			return
		}
		if uint64(tail) <= next {
			if caught != nil {
				*caught = caughtUp{done: true, next: next}
				return
			}
			if !wait() {
				return
			}
			continue
		}
		n := min(uint64(tail)-next, uint64(r.cfg.ReadAhead))
		batch := make([]item, 0, n)
		// Before waiting on a hole, hand over the entries already read, so
		// that a slow or dead writer does not hold back decisions that
		// precede its position.
		handOverAndWait := func() bool {
			if len(batch) > 0 {
				select {
				case out <- batch:
				case <-ctx.Done():
					return false
				}
				batch = make([]item, 0, n)
			}
			return wait()
		}
		for i := uint64(0); i < n; i++ {
			it, ok := r.fetch(ctx, next, handOverAndWait)
			if !ok {
				return
			}
			batch = append(batch, it)
			next++
			if it.fail != nil {
				break
			}
		}
		select {
		case out <- batch:
		case <-ctx.Done():
			return
		}
		if len(batch) > 0 && batch[len(batch)-1].fail != nil {
			return
		}
	}
}

// fetch reads and decodes position pos, waiting on a hole and filling it
// once it has stayed empty for HoleTimeout. ok is false when stopping.
func (r *Runner) fetch(ctx context.Context, pos uint64, wait func() bool) (it item, ok bool) {
	it.pos = pos
	var holeSince time.Time
	for attempt := 0; ; attempt++ {
		data, size, err := r.readEntry(ctx, pos)
		switch {
		case err == nil && len(data) < size:
			r.decodePrefix(&it, data, size)
			return it, true
		case err == nil:
			r.decode(&it, data)
			return it, true
		case errors.Is(err, log.ErrFilled):
			return it, true
		case errors.Is(err, log.ErrNotWritten):
			if holeSince.IsZero() {
				holeSince = time.Now()
			}
			if time.Since(holeSince) >= r.cfg.HoleTimeout {
				ferr := r.cfg.Log.Fill(ctx, log.Position(pos))
				switch {
				case ferr == nil:
					r.fills.Add(1)
					r.cfg.Logger.Warn("filled a hole left by a slow or dead writer", "pos", pos)
					return it, true
				case errors.Is(ferr, log.ErrWritten):
					continue // the writer landed meanwhile: read it
				case ctx.Err() != nil:
					return it, false
				default:
					r.cfg.Logger.Warn("fill failed", "pos", pos, "err", ferr)
				}
			}
			if !wait() {
				return it, false
			}
		case ctx.Err() != nil:
			return it, false
		case errors.Is(err, log.ErrTrimmed), errors.Is(err, log.ErrClosed):
			it.fail = fmt.Errorf("processor: read position %d: %w", pos, err)
			return it, true
		default:
			if attempt >= 20 {
				it.fail = fmt.Errorf("processor: read position %d: %w", pos, err)
				return it, true
			}
			r.cfg.Logger.Warn("log read failed; retrying", "pos", pos, "err", err)
			if !wait() {
				return it, false
			}
		}
	}
}

// replayPrefix is how much of an entry replay reads first from a log that
// reads ranges: the whole of an intention of a few writes, and enough of a
// larger entry to see that it is a checkpoint image's chunk or an
// afterimage, whose header is all replay needs of it. (It was 64 KiB, which
// copied 64 KiB of every large afterimage and chunk that replay does not
// need: the read-back was 40 % of the bytes cruzd allocated per SET,
// bench/journal/2026-12-07-resp20.md §2.) Another entry larger than this is
// read in two ranges, the prefix and the rest.
const replayPrefix = 4 << 10

// readEntry reads the entry at pos, of size bytes. Of an entry replay needs
// only the first bytes of, when the log can read ranges, it reads just
// those (data is then shorter than size): a checkpoint image's chunk, and
// an afterimage on a log that checks what it reads (log.CheckedReader),
// whose header the prefix holds (see decodePrefix). Of any other large
// entry it reads the rest once. Replay needs nothing of a chunk but its
// place, nor of an afterimage but its header: their nodes are checked when
// they are loaded (each node against its own checksum when read alone, the
// whole entry against the envelope's when read whole), and reading every
// image and afterimage back would copy it twice more (~185 KB each on
// cruzd's SET path).
func (r *Runner) readEntry(ctx context.Context, pos uint64) (data []byte, size int, err error) {
	rr, ok := r.cfg.Log.(log.RangeReader)
	if !ok {
		data, err = r.cfg.Log.Read(ctx, log.Position(pos))
		return data, len(data), err
	}
	data, size, err = rr.ReadRange(ctx, log.Position(pos), 0, replayPrefix)
	if err != nil || len(data) == size {
		return data, size, err
	}
	if t, perr := entry.PeekType(pos, data); perr == nil && len(data) > entry.FrameSize {
		switch t {
		case entry.TypeCheckpoint:
			if k, _ := entry.CheckpointKind(data[entry.FrameSize:]); k == entry.CheckpointChunk {
				return data, size, nil
			}
		case entry.TypeAfterimage:
			// The header's fields (whose afterimage it is) steer the
			// flusher's matching and carry no checksum of their own: they
			// are trusted without the envelope's only from a log that
			// checked them.
			if c, ok := r.cfg.Log.(log.CheckedReader); ok && c.ChecksReads() {
				return data, size, nil
			}
		}
	}
	// The rest of a large entry: the prefix is not read again.
	rest, _, err := rr.ReadRange(ctx, log.Position(pos), len(data), size-len(data))
	if err != nil {
		return nil, 0, err
	}
	whole := make([]byte, 0, len(data)+len(rest))
	whole = append(append(whole, data...), rest...)
	return whole, len(whole), nil
}

// headPrefix is what replay needs of an afterimage: its frame and header.
const headPrefix = entry.FrameSize + afterimage.MaxHeadSize

// decodePrefix decodes the entry at it.pos, of size bytes, from its first
// bytes, prefix, as readEntry left them: a checkpoint image's chunk or an
// afterimage (its header).
func (r *Runner) decodePrefix(it *item, prefix []byte, size int) {
	typ, err := entry.PeekType(it.pos, prefix)
	if err != nil {
		it.fail = err
		return
	}
	it.typ, it.size = typ, size
	switch typ {
	case entry.TypeCheckpoint:
		it.ck = &CheckpointEntry{Kind: entry.CheckpointChunk}
	case entry.TypeAfterimage:
		h, err := afterimage.ReadHead(prefix[entry.FrameSize:min(len(prefix), headPrefix)])
		if err == nil && h.Intention >= it.pos {
			err = fmt.Errorf("%w: afterimage names intention %d, not before it", afterimage.ErrMalformed, h.Intention)
		}
		if err != nil {
			it.fail = entry.Corrupt(it.pos, err)
			return
		}
		it.ai = &AfterimageHeader{Intention: h.Intention, Base: h.Base, Nodes: h.Nodes}
	default:
		it.fail = entry.Corrupt(it.pos, fmt.Errorf("a %s entry read in part", typ))
	}
}

func (r *Runner) decode(it *item, data []byte) {
	typ, payload, err := entry.Decode(it.pos, data)
	if err != nil {
		it.fail = err
		return
	}
	it.typ = typ
	it.size = len(data)
	switch typ {
	case entry.TypeCheckpoint:
		ck, err := decodeCheckpoint(it.pos, payload)
		if err != nil {
			it.fail = entry.Corrupt(it.pos, err)
			return
		}
		it.ck = ck
	case entry.TypeIntention:
		in, err := intention.DecodeNoCopy(payload)
		if err != nil {
			it.fail = entry.Corrupt(it.pos, err)
			return
		}
		it.in = in
	case entry.TypeAfterimage:
		in, base, n, err := afterimage.DecodeHeader(payload)
		if err == nil && in >= it.pos {
			err = fmt.Errorf("%w: afterimage names intention %d, not before it", afterimage.ErrMalformed, in)
		}
		if err != nil {
			it.fail = entry.Corrupt(it.pos, err)
			return
		}
		it.ai = &AfterimageHeader{Intention: in, Base: base, Nodes: n}
	}
}

// apply runs the deterministic core over the decoded entries. It holds
// r.mu (the apply role) except while it waits for the tail to move, so that
// a committing goroutine can apply its own intention in between (ApplyLocal,
// local.go).
func (r *Runner) apply() {
	defer r.wg.Done()
	r.mu.Lock()
	defer func() {
		r.stopped = true
		r.src.close()
		r.mu.Unlock()
	}()
	for {
		batch, ok := r.src.batch()
		if !ok {
			return
		}
		for i := range batch {
			if !r.applyItem(&batch[i]) {
				return
			}
			if batch[i].fail != nil || r.rebooted {
				r.rebooted = false
				break // the rest of the batch belonged to the old source
			}
			if r.ctx.Err() != nil {
				return
			}
		}
	}
}

// applyItem applies one entry and reports it; a failed entry, or an error
// applying it, re-bootstraps (setting r.rebooted) or stops replay (false).
// The caller holds r.mu.
func (r *Runner) applyItem(it *item) bool {
	if it.fail != nil {
		return r.rebootstrap(it.fail)
	}
	if err := r.applyEntry(it); err != nil {
		return r.rebootstrap(err)
	}
	return true
}

// applyEntry applies one entry that was read whole and reports it. The
// caller holds r.mu.
func (r *Runner) applyEntry(it *item) error {
	st := r.st
	ev := Event{Pos: it.pos, Type: it.typ, Size: it.size, Checkpoint: it.ck, Early: it.early}
	var err error
	switch {
	case it.ck != nil && it.ck.Kind == entry.CheckpointCut:
		ev.Delta, err = st.Cut(it.pos)
	case it.in != nil:
		var d Decision
		var delta *Delta
		if d, delta, err = st.Apply(it.pos, it.in); err == nil {
			ev.Intention, ev.Decision, ev.Delta = it.in, &d, delta
		}
	default:
		err = st.Skip(it.pos)
		ev.Afterimage = it.ai
	}
	if err != nil {
		return err
	}
	r.cfg.OnEvent(ev)
	// Applied moves only once the event is handled, so whoever waits for a
	// position sees everything OnEvent did for it.
	r.applied.Store(it.pos)
	return nil
}

// rebootstrap swaps in a newer state after a trim (setting r.rebooted);
// false when replay must stop. The caller holds r.mu and is the applying
// goroutine.
func (r *Runner) rebootstrap(cause error) bool {
	if r.cfg.Rebootstrap == nil || !errors.Is(cause, log.ErrTrimmed) || r.ctx.Err() != nil {
		r.fail(cause)
		return false
	}
	st := r.st
	r.src.close()
	next, err := r.cfg.Rebootstrap(cause)
	if err == nil && next.Pos() <= st.Pos() {
		err = fmt.Errorf("processor: resuming at %d would go back from %d", next.Pos(), st.Pos())
	}
	if err != nil {
		// The source is closed: the deferred close of apply finds it so.
		r.fail(fmt.Errorf("processor: %w; rebootstrap from the newest checkpoint failed: %w", cause, err))
		return false
	}
	r.cfg.Logger.Warn("replay fell behind the log's trim point; resumed from a newer safe point", "from", st.Pos(), "to", next.Pos(), "cause", cause)
	r.st = next
	r.rebootstraps.Add(1)
	r.applied.Store(next.Pos())
	r.src = r.newSource(next.Pos() + 1)
	r.rebooted = true
	return true
}

// Rebootstraps counts the times replay resumed from a newer safe point
// after falling behind the log's trim point.
func (r *Runner) Rebootstraps() uint64 { return r.rebootstraps.Load() }

// decodeCheckpoint reads a checkpoint entry at pos: a cut's token, a
// marker (whose chunks must lie between its cut and itself), or a chunk,
// whose nodes are decoded only when loaded.
func decodeCheckpoint(pos uint64, payload []byte) (*CheckpointEntry, error) {
	kind, err := entry.CheckpointKind(payload)
	if err != nil {
		return nil, err
	}
	ck := &CheckpointEntry{Kind: kind}
	switch kind {
	case entry.CheckpointCut:
		ck.Token, _, err = entry.DecodeCut(payload)
	case entry.CheckpointMarker:
		ck.Marker, err = entry.DecodeMarker(payload)
		if err == nil && (ck.Marker.Cut >= pos || len(ck.Marker.Chunks) > 0 && ck.Marker.Chunks[len(ck.Marker.Chunks)-1].Pos >= pos) {
			err = fmt.Errorf("%w: marker at %d names a cut or chunk not before it", entry.ErrCheckpointMalformed, pos)
		}
	case entry.CheckpointChunk:
		_, _, err = entry.DecodeChunk(payload)
	}
	if err != nil {
		return nil, err
	}
	return ck, nil
}
