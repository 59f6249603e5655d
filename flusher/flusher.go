// Package flusher owns an afterimage's life after the processor made its
// delta: serializing it with the right pointers, appending it to the log in
// parallel, matching the active afterimage of each intention, holding back
// commits when flushing falls behind, and, once a delta is durable and
// confirmed, handing its nodes to the node cache (package nodecache), which
// evicts them and loads them back on demand.
//
// # Pointers
//
// A child in another delta is written as a physical pointer when that
// delta's active afterimage is known, else as an intention pointer: node off
// of the active afterimage of intention q. Intention pointers let deltas be
// written in any order, so appends proceed in parallel (Options.Workers).
// Serial mode (Options.Serial) writes one afterimage at a time, each after
// the previous one is confirmed, with physical pointers only: the baseline,
// and the switch that turns the optimisation off. Neither changes any
// decision or any delta; they only change pointer bytes in afterimages.
//
// # Matching
//
// The active afterimage of intention I is the first afterimage for I after
// I in log order. The processor reads the log strictly in order, waiting on
// holes and filling those that stay empty, so the first afterimage for I it
// reports (Saw) is the active one and no hole before it can still receive an
// earlier one. Later afterimages for I are duplicates: counted, ignored.
//
// # Memory
//
// A delta's nodes are pinned until its afterimage is confirmed; their bytes
// count against Options.MaxUnflushedBytes, past which WaitRoom blocks new
// commits (never readers). Confirmed nodes join a clock of clean nodes
// bounded by Options.CacheBytes (package nodecache); evicted nodes are
// reloaded through their
// pointers: physical directly, intention through the index, or, on an index
// miss, by scanning the log forward from the intention. A reload decodes
// only the node it needs; the entry it read stays in a 64 MiB cache, with
// the offsets of the nodes parsed so far, for its neighbours.
//
// # Riding
//
// Afterimages are appended through a log/piggyback lane when Options.Log
// is one, so that they ride with this node's own intentions instead of
// holding the next one back.
//
// # Goroutines
//
// Produced, Saw and Evict are called on the processor goroutine. WaitRoom,
// Flush and Stats may be called from anywhere. Options.Workers goroutines
// take queued deltas oldest first — each every delta queued when it comes
// back, up to 32 (a checkpoint cut alone) — and append their afterimages in
// one batch (serialize, append, next), so an append that returns leads
// straight to the next one, and one wait for a group commit carries as
// many afterimages as queued meanwhile; serial mode has one such goroutine
// that writes one delta at a time and also waits for each confirmation.
package flusher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/flusher/nodecache"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/piggyback"
	"github.com/cruzlog/cruzdb/processor"
)

// Policy says which nodes of a shared log write an intention's afterimage.
type Policy uint8

const (
	// PolicyTakeover: the node that appended the intention writes its
	// afterimage; any other node writes it if none is confirmed after
	// Options.TakeoverDelay (the originator may have died). The default.
	PolicyTakeover Policy = iota
	// PolicyAll: every node writes every afterimage, as in CruzDB. Simple
	// and robust; costs one duplicate per extra node.
	PolicyAll
	// PolicyOriginator: only the node that appended the intention writes
	// it. If that node dies first, the delta stays unflushed until some
	// node restarts and replays it.
	PolicyOriginator
)

func (p Policy) String() string {
	switch p {
	case PolicyTakeover:
		return "takeover"
	case PolicyAll:
		return "all"
	case PolicyOriginator:
		return "originator"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ErrStopped is returned by waits once the flusher is stopped.
var ErrStopped = errors.New("flusher: stopped")

// ErrCannotFlush is returned by WaitRoom when memory is over budget and the
// last afterimage append failed: the flusher keeps retrying, but the commit
// should not wait on it blindly.
var ErrCannotFlush = errors.New("flusher: cannot write afterimages")

// Options configure a Flusher.
type Options struct {
	// Log receives the afterimages. Required. When it is a
	// *piggyback.Log (as the database's is), afterimages ride with this
	// node's intentions appended through it (not in Serial mode), and nodes
	// are read back from the log it wraps.
	Log log.Log
	// Workers is the number of afterimages appended in parallel.
	// Zero means DefaultWorkers().
	Workers int
	// Serial writes one afterimage at a time, physical pointers only.
	Serial bool
	// MaxUnflushedBytes bounds pinned delta memory. Zero means
	// DefaultMaxUnflushedBytes.
	MaxUnflushedBytes int64
	// CacheBytes bounds clean nodes in memory. Zero means DefaultCacheBytes.
	CacheBytes int64
	// ImageDuty is the share of the wall time a checkpoint image's writer
	// works: after each chunk it rests so that reading the tree, encoding
	// and appending take at most this fraction of the time, leaving the
	// cores to commits and reads. In (0, 1]; 1 never rests. Zero means
	// DefaultImageDuty (0.25).
	ImageDuty float64
	// Policy decides who writes an afterimage. Default PolicyTakeover.
	Policy Policy
	// TakeoverDelay is how long PolicyTakeover waits for another node's
	// afterimage. Zero means DefaultTakeoverDelay.
	TakeoverDelay time.Duration
	// IndexEntries bounds the intention -> afterimage index: it keeps about
	// the most recent IndexEntries intention positions (rounded up to a power
	// of two, at most 1<<24; 8 bytes each), and a lookup that misses scans
	// the log forward from the intention. Zero means DefaultIndexEntries.
	IndexEntries int
	// HoleTimeout is how long a forward scan waits on a hole before filling
	// it. Zero means processor.DefaultHoleTimeout.
	HoleTimeout time.Duration
	// Logger receives problems. Default: discard.
	Logger *slog.Logger
	// Appended, if set, is called after each afterimage append, so the
	// processor can be told to look for it (and confirm it) at once.
	Appended func()
	// Latest, if set, returns the latest version of the tree. The flusher
	// then also trims the cache on its own every few milliseconds, so reads
	// that load nodes cannot grow it past the budget while no delta is made.
	// ok is false while there is no version yet.
	Latest func() (tree cowtree.Tree, ok bool)
	// Hurry, if set, reports whether commits wait for a checkpoint to
	// complete (the database holds them back while the log outgrows its
	// checkpoints): the image writer then does not rest (see ImageDuty)
	// until it reports false again. Nor does it while a Flush waits.
	Hurry func() bool
	// ImageBudget, if set, returns the share of its room the log has used
	// since the newest cut: how far the bytes appended since then are
	// towards the point where the database holds commits back (1 or more:
	// there). Once it reaches ImageHurryShare the image writer
	// stops resting (see ImageDuty), so that the image of a tree small for
	// the rate its log grows at is written before commits are held, not
	// after (Hurry). Unset: no pacing against the log.
	ImageBudget func() float64
	// Prepared, if set, is called when this node has written every chunk
	// of a checkpoint image and is about to append its marker, with how
	// long the chunks took and their bytes (a passive metric).
	Prepared func(cut uint64, took time.Duration, bytes uint64)
}

// Stats are passive counters; nothing steers by them.
type Stats struct {
	// FlushedThrough is the newest committed intention such that it and
	// every delta before it are confirmed (the flush watermark).
	FlushedThrough     uint64
	AfterimagesWritten uint64 // appended by this node
	AfterimageBytes    uint64 // bytes of those appends
	PointersPhysical   uint64 // cross-delta pointers written physical
	PointersIntention  uint64 // cross-delta pointers written as intention pointers
	PointersSelf       uint64
	Confirmed          uint64 // deltas confirmed active (whoever wrote them)
	Duplicates         uint64 // afterimages seen after the active one
	AppendErrors       uint64
	UnflushedBytes     int64
	PendingDeltas      int // not counting checkpoint cuts
	CachedBytes        int64
	CacheHits          uint64 // node loads served from decoded afterimages
	CacheMisses        uint64 // node loads (evicted nodes read back)
	Evictions          uint64
	IndexEntries       int
	ForwardScans       uint64 // index misses resolved by scanning the log
	BackpressureWaits  uint64 // commits that waited for room
	Piggybacked        uint64 // afterimages appended in one batch with a local intention
	Inline             uint64 // of those written, encoded by Produced itself (inline.go)
	FlushLatencyTotal  time.Duration
	// Checkpoint images: markers and chunks this node appended, their
	// bytes, and images it abandoned (another node's won, or a node of
	// the cut's tree could not be read). An image pins no memory: it is
	// read from the cut's tree as it is written.
	CheckpointsWritten, CheckpointChunks, CheckpointBytes, CheckpointsAborted uint64
}

type pending struct {
	d      *processor.Delta
	prev   uint64 // the committed intention before d (or the start)
	local  bool
	since  time.Time
	queued bool
}

// Flusher writes deltas back to the log as afterimages. Create with New.
type Flusher struct {
	o     Options
	idx   *nodecache.Index
	pager *nodecache.Cache
	start uint64 // intentions at or below were replayed before this flusher
	last  uint64 // the last committed intention produced (processor goroutine)
	// lastDelta is the newest delta produced (under mu); sealed the newest
	// intention whose afterimage was written with itself as Base.
	lastDelta *processor.Delta
	sealed    atomic.Uint64
	flushing  atomic.Int32 // Flush calls waiting: image writers do not rest

	mu      sync.Mutex
	pend    map[uint64]*pending
	fifo    []uint64 // pending positions, ascending
	queue   []*pending
	room    chan struct{} // closed and replaced on every confirmation
	stopped bool
	unflush int64
	stopCh  chan struct{}
	ctx     context.Context // cancelled by Stop
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	more    *sync.Cond     // on mu: the queue grew, or the flusher stopped
	lane    *piggyback.Log // afterimages ride with local intentions; nil if off

	appendErr atomic.Pointer[error] // the last append failure, nil after a success

	written, writtenBytes, phys, intent, self atomic.Uint64
	confirmed, dups, appendErrs, bpWaits      atomic.Uint64
	inline                                    atomic.Uint64
	latency                                   atomic.Int64

	scratchMu sync.Mutex
	scratch   *imageScratch // an image writer's buffers, kept between images

	ckWritten, ckChunks, ckBytes, ckAborted atomic.Uint64
	ckPending                               int // cut deltas in pend, under mu
	// unproven are the stretches (cut, superseding cut) of intentions
	// whose trees point into the image of a cut that was superseded before
	// it was complete (see SawCheckpoint): their afterimages never name
	// themselves, or anything after the cut, as their Base. Under mu.
	unproven []unproven

	sig restSignals // what tests check inaction against (quiet.go)
}

// New starts a flusher. start is the last position replayed before the
// flusher's processor began (afterimages of intentions at or before it are
// not indexed from the stream, since their earlier duplicates were not seen).
func New(o Options, start uint64) (*Flusher, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Serial {
		o.Workers = 1
	}
	f := &Flusher{
		o:      o,
		idx:    nodecache.NewIndex(o.IndexEntries),
		start:  start,
		last:   start,
		pend:   map[uint64]*pending{},
		room:   make(chan struct{}),
		stopCh: make(chan struct{}),
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	reads := o.Log
	if pb, ok := o.Log.(*piggyback.Log); ok {
		reads = pb.Inner() // the node cache looks for log.RangeReader
		if !o.Serial {
			f.lane = pb
		}
	}
	f.pager = nodecache.NewCache(reads, f.idx, o.HoleTimeout)
	f.more = sync.NewCond(&f.mu)
	if o.Serial {
		f.wg.Add(1)
		go f.run(f.writeSerial)
	} else {
		f.wg.Add(o.Workers)
		for range o.Workers {
			go f.run(f.writeParallel)
		}
	}
	if o.Policy == PolicyTakeover {
		f.wg.Add(1)
		go f.takeover()
	}
	if o.Latest != nil {
		f.wg.Add(1)
		go f.trimLoop()
	}
	return f, nil
}

// trimLoop keeps the cache within budget while replay is idle.
func (f *Flusher) trimLoop() {
	defer f.wg.Done()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-f.stopCh:
			return
		case <-t.C:
			if f.pager.Clock().Bytes() > f.o.CacheBytes {
				if tree, ok := f.o.Latest(); ok {
					f.pager.Clock().Evict(f.o.CacheBytes, tree)
				}
			}
		}
	}
}

// Known seeds the index with an intention's active afterimage found by
// startup's scan.
func (f *Flusher) Known(intention, afterimage uint64) { f.idx.Put(intention, afterimage) }

// Loader returns the loader trees use to bring evicted nodes back.
func (f *Flusher) Loader() cowtree.Loader { return f.pager }

// Index returns the known active afterimage of an intention.
func (f *Flusher) Index(intention uint64) (uint64, bool) { return f.idx.Get(intention) }

// Produced hands over the delta of a committed intention. local says this
// node appended the intention. Processor goroutine only; never blocks.
// With one local commit under way and nothing else to write, it encodes the
// afterimage itself and hands it over to ride (inline.go).
func (f *Flusher) Produced(d *processor.Delta, local bool) {
	if p := f.produced(d, local); p != nil {
		f.writeInline(p)
	}
}

// produced is Produced under mu; it returns the pending delta the caller
// writes inline, or nil.
func (f *Flusher) produced(d *processor.Delta, local bool) *pending {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return nil
	}
	f.pager.Clock().Uncount(d.Replaced)
	f.lastDelta = d
	p := &pending{d: d, prev: f.last, local: local, since: time.Now()}
	f.last = d.Pos
	f.pend[d.Pos] = p
	f.fifo = append(f.fifo, d.Pos)
	if d.Checkpoint {
		f.pager.Cuts().SetPending(d.Pos, d.Tree)
		f.ckPending++
	} else {
		f.unflush += d.Bytes
	}
	if local && f.inlineLocked(p) {
		return p
	}
	if local || f.o.Policy == PolicyAll {
		f.enqueue(p)
	}
	return nil
}

// Last returns the newest intention whose delta was produced (or the start
// position if none was).
func (f *Flusher) Last() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *Flusher) enqueue(p *pending) {
	p.queued = true
	f.queue = append(f.queue, p)
	if p.d.Checkpoint && !f.o.Serial {
		// A cut's image goes before the afterimages queued: it depends on
		// none of them (its nodes are in memory or read by their own
		// addresses), and while it is written the log grows past its trigger
		// and commits wait (the root's checkpointRoom) for as long as it
		// queues, which is long when many clients keep Workers appends
		// waiting for their groups. Earlier cuts stay ahead of it. Serial
		// mode writes in order: its one writer waits for every earlier
		// delta before the cut's.
		i := len(f.queue) - 1
		for i > 0 && !f.queue[i-1].d.Checkpoint {
			f.queue[i] = f.queue[i-1]
			i--
		}
		f.queue[i] = p
	}
	f.more.Signal()
}

// Saw reports an afterimage entry at pos for the intention ai, in log order.
// Processor goroutine only.
func (f *Flusher) Saw(pos, intention uint64) {
	if intention <= f.start {
		return // its earlier duplicates were not seen: not indexed from here
	}
	f.mu.Lock()
	p, ok := f.pend[intention]
	if !ok {
		// Not pending: its active afterimage was seen before (the bounded
		// index may have dropped it since), or it never committed.
		f.mu.Unlock()
		f.dups.Add(1)
		return
	}
	f.idx.Put(intention, pos) // before waking waiters: serial mode looks it up
	delete(f.pend, intention)
	f.unflush -= p.d.Bytes
	close(f.room)
	f.room = make(chan struct{})
	f.mu.Unlock()
	f.confirmed.Add(1)
	f.latency.Add(int64(time.Since(p.since)))
	f.pager.Clock().Add(p.d.Nodes)
}

// Evict trims clean nodes to the cache budget, unlinking them from tree, the
// latest version. Called after each replayed position; with Options.Latest
// the flusher also trims on its own.
func (f *Flusher) Evict(tree cowtree.Tree) { f.pager.Clock().Evict(f.o.CacheBytes, tree) }

// WaitRoom blocks while pinned delta memory is over MaxUnflushedBytes.
func (f *Flusher) WaitRoom(ctx context.Context) error {
	waited := false
	for {
		f.mu.Lock()
		if f.stopped {
			f.mu.Unlock()
			return ErrStopped
		}
		if f.unflush <= f.o.MaxUnflushedBytes {
			f.mu.Unlock()
			return nil
		}
		room := f.room
		f.mu.Unlock()
		if e := f.appendErr.Load(); e != nil {
			// Over budget and the log refuses afterimages: waiting could
			// last forever, so say why instead.
			return fmt.Errorf("%w: %w", ErrCannotFlush, *e)
		}
		if !waited {
			waited = true
			f.bpWaits.Add(1)
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-f.stopCh:
			return ErrStopped
		}
	}
}

// Flush waits until every delta produced at or before upTo is confirmed.
// It makes sure each of them is being written by this node, whatever the
// policy, so it cannot wait on a dead originator.
func (f *Flusher) Flush(ctx context.Context, upTo uint64) error {
	f.flushing.Add(1) // an image writer does not rest while someone waits
	defer f.flushing.Add(-1)
	f.mu.Lock()
	for _, pos := range f.fifo {
		if pos > upTo {
			break
		}
		if p, ok := f.pend[pos]; ok && !p.queued {
			f.enqueue(p)
		}
	}
	f.mu.Unlock()
	for {
		f.mu.Lock()
		f.dropConfirmedLocked()
		if len(f.fifo) == 0 || f.fifo[0] > upTo {
			f.mu.Unlock()
			return nil
		}
		room := f.room
		stopped := f.stopped
		f.mu.Unlock()
		if stopped {
			return ErrStopped
		}
		f.sig.flushWaits.Add(1)
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-f.stopCh:
			return ErrStopped
		}
	}
}

// dropConfirmedLocked pops confirmed positions off the front of fifo.
func (f *Flusher) dropConfirmedLocked() {
	i := 0
	for i < len(f.fifo) {
		if _, ok := f.pend[f.fifo[i]]; ok {
			break
		}
		i++
	}
	if i > 0 {
		f.fifo = f.fifo[i:]
	}
}

func (f *Flusher) markSealed(pos uint64) {
	for {
		s := f.sealed.Load()
		if s >= pos || f.sealed.CompareAndSwap(s, pos) {
			return
		}
	}
}

// Seal is for a clean shutdown, after Flush. Afterimages written in
// parallel name as their Base an older tree whenever an earlier delta was
// still in flight, so the newest one may prove only an older tree, and a
// restart would resume (and replay) from there. When every delta is
// confirmed, Seal writes one more afterimage of the newest delta, with
// itself as Base, unless one was written already: a duplicate for matching,
// and the place the next startup resumes from.
func (f *Flusher) Seal(ctx context.Context) error {
	f.mu.Lock()
	d, pending := f.lastDelta, len(f.pend)
	f.mu.Unlock()
	if d == nil || pending > 0 || f.sealed.Load() >= d.Pos || d.Checkpoint {
		return nil // a cut's marker proves its tree already
	}
	data, _ := AppendEntry(nil, d, d.Pos, f.pager.Physical)
	if _, err := f.o.Log.Append(ctx, data); err != nil {
		return fmt.Errorf("flusher: seal at intention %d: %w", d.Pos, err)
	}
	f.markSealed(d.Pos)
	return nil
}

// baseFor returns the Base of the afterimage of p written now: p itself if
// every earlier delta is confirmed, else the committed intention before the
// oldest unconfirmed one (all deltas up to it are confirmed).
func (f *Flusher) baseFor(p uint64) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropConfirmedLocked()
	base := p
	if len(f.fifo) > 0 && f.fifo[0] < p {
		base = f.pend[f.fifo[0]].prev
	}
	for _, u := range f.unproven {
		if u.cut < p && p < u.until {
			base = min(base, u.base)
		}
	}
	return base
}

// unproven is a stretch of intentions after a cut whose image was
// superseded before it was complete: their trees are never wholly in the
// log, so no afterimage of theirs is a safe point.
type unproven struct {
	cut, until, base uint64
}

// confirmedBefore reports whether every delta before pos is confirmed.
func (f *Flusher) confirmedBefore(pos uint64) (bool, chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropConfirmedLocked()
	if len(f.fifo) > 0 && f.fifo[0] < pos {
		return false, f.room
	}
	return true, nil
}

func (f *Flusher) isConfirmed(pos uint64) (bool, chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.pend[pos]
	return !ok, f.room
}

// run is a writer goroutine: Options.Workers of them in parallel mode, each
// writing with write (f.writeParallel) and going back for the next deltas,
// so a finished append leads straight to the next one without a handoff;
// one in serial mode (f.writeSerial), one delta at a time, in order.
func (f *Flusher) run(write func([]*pending) bool) {
	defer f.wg.Done()
	limit := 1
	if !f.o.Serial {
		limit = maxBatch
	}
	for {
		ps := f.take(limit)
		if ps == nil {
			return // stopped
		}
		n := 0
		for _, p := range ps {
			if ok, _ := f.isConfirmed(p.d.Pos); !ok {
				ps[n] = p
				n++
			} else { // someone else's afterimage won meanwhile
				f.sig.writing.Add(-1)
			}
		}
		ok := n == 0 || write(ps[:n])
		f.sig.writing.Add(-int32(n))
		if !ok {
			return
		}
	}
}

// maxBatch and maxBatchBytes bound the deltas a worker takes at once in
// parallel mode: every delta queued when it comes back for more, oldest
// first, up to maxBatch of them and (after the first) maxBatchBytes of
// delta bytes; a checkpoint cut goes alone. It serializes them and appends
// them in one batch, with one wait: with many clients, afterimages queue
// faster than Options.Workers appends of one afterimage each can take them
// (each waits for its group commit), and commits then wait for room.
const (
	maxBatch      = 32
	maxBatchBytes = 1 << 20
)

// writeParallel writes ps with a physical pointer wherever the child's
// afterimage is known, else an intention pointer.
func (f *Flusher) writeParallel(ps []*pending) bool {
	if ps[0].d.Checkpoint {
		return f.writeCheckpoint(ps[0])
	}
	return f.write(ps, f.pager.Physical)
}

// take removes and returns the oldest queued deltas (see maxBatch), at
// most limit of them, waiting for one; nil once the flusher stops.
func (f *Flusher) take(limit int) []*pending {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.queue) == 0 {
		if f.stopped {
			return nil
		}
		f.more.Wait()
	}
	n := 1
	if size := f.queue[0].d.Bytes; !f.queue[0].d.Checkpoint {
		for n < len(f.queue) && n < limit && !f.queue[n].d.Checkpoint && size+f.queue[n].d.Bytes <= maxBatchBytes {
			size += f.queue[n].d.Bytes
			n++
		}
	}
	ps := make([]*pending, n)
	copy(ps, f.queue[:n])
	clear(f.queue[:n])
	f.queue = f.queue[n:]
	f.sig.writing.Add(int32(n)) // with the pop, under mu: see quiescent
	return ps
}

// writeSerial waits for every earlier delta, writes p with physical
// pointers only, and waits for it to be confirmed.
func (f *Flusher) writeSerial(ps []*pending) bool {
	p := ps[0] // take(1)
	for {
		ok, room := f.confirmedBefore(p.d.Pos)
		if ok {
			break
		}
		f.sig.serialWaits.Store(p.d.Pos)
		select {
		case <-room:
		case <-f.stopCh:
			return false
		}
	}
	f.sig.serialWaits.Store(0)
	if p.d.Checkpoint {
		if !f.writeCheckpoint(p) {
			return false
		}
	} else if !f.write(ps[:1], f.pager.MustPhysical) {
		return false
	}
	for {
		ok, room := f.isConfirmed(p.d.Pos)
		if ok {
			f.sig.serialWaits.Store(0)
			return true
		}
		f.sig.serialWaits.Store(p.d.Pos)
		select {
		case <-room:
		case <-f.stopCh:
			return false
		}
	}
}

// write serializes ps (deltas, no checkpoint cut) and appends them in one
// batch, retrying failed appends until the flusher stops. It reports false
// when stopped.
func (f *Flusher) write(ps []*pending, phys Physical) bool {
	type enc struct {
		p      *pending
		base   uint64
		buf    *[]byte
		counts afterimage.PointerCounts
	}
	encs := make([]enc, 0, len(ps))
	data := make([][]byte, 0, len(ps))
	defer func() {
		for i, e := range encs {
			if cap(data[i]) <= maxPooledEntry {
				*e.buf = data[i][:0]
				putEntryBuf(e.buf) // the log keeps no reference after Append
			}
		}
	}()
	for _, p := range ps {
		base := f.baseFor(p.d.Pos)
		buf := getEntryBuf(entrySizeHint(p.d))
		d, counts := AppendEntry((*buf)[:0], p.d, base, phys)
		if len(d) > log.MaxEntrySize {
			f.appendErrs.Add(1)
			f.o.Logger.Error("afterimage larger than a log entry; delta stays pinned", "intention", p.d.Pos, "bytes", len(d))
			continue
		}
		encs = append(encs, enc{p, base, buf, counts})
		data = append(data, d)
	}
	if len(encs) == 0 {
		return true
	}
	backoff := time.Millisecond
	for {
		err := f.appendAfterimages(data)
		if err == nil {
			f.appendErr.Store(nil)
			break
		}
		f.appendErr.Store(&err)
		select {
		case <-f.stopCh:
			return false
		default:
		}
		f.appendErrs.Add(1)
		if errors.Is(err, log.ErrClosed) {
			return false
		}
		f.o.Logger.Warn("afterimage append failed; retrying", "intention", encs[0].p.d.Pos, "afterimages", len(encs), "err", err)
		select {
		case <-time.After(backoff):
		case <-f.stopCh:
			return false
		}
		backoff = min(2*backoff, time.Second)
	}
	if f.o.Appended != nil {
		f.o.Appended()
	}
	for i, e := range encs {
		if e.base == e.p.d.Pos {
			f.markSealed(e.base)
		}
		f.written.Add(1)
		f.writtenBytes.Add(uint64(len(data[i])))
		f.phys.Add(uint64(e.counts.Afterimage))
		f.intent.Add(uint64(e.counts.Intention))
		f.self.Add(uint64(e.counts.Self))
	}
	return true
}

// entryBufs recycles encoded afterimage entries between appends.
var entryBufs = sync.Pool{New: func() any { return new([]byte) }}

// keptEntryBufs holds up to keptEntryBufCount buffers of at most
// keptEntryBufMax bytes (4 MiB in all) across garbage collections, which
// empty entryBufs: under a steady write load a collection came every few
// thousand commits, and half the afterimage buffers were allocated anew.
// keptLargeEntryBufs holds a few larger ones (2 MiB in all), for the
// entries of cruzd's combined transactions (150-250 SETs of 100 bytes:
// 80-150 KB, in buffers of 128 or 256 KB), which came back too large for
// keptEntryBufs: one entry in seven allocated its buffer.
var (
	keptEntryBufs      = make(chan *[]byte, keptEntryBufCount)
	keptLargeEntryBufs = make(chan *[]byte, keptLargeEntryBufCount)
)

const (
	keptEntryBufCount      = 64
	keptEntryBufMax        = 64 << 10
	keptLargeEntryBufCount = 8
	keptLargeEntryBufMax   = 256 << 10
)

// getEntryBuf returns an empty buffer for an afterimage entry of about
// size bytes: a kept large one first for an entry too large for the
// others.
func getEntryBuf(size int) *[]byte {
	first, second := keptEntryBufs, keptLargeEntryBufs
	if size > keptEntryBufMax {
		first, second = second, first
	}
	select {
	case b := <-first:
		return b
	default:
	}
	select {
	case b := <-second:
		return b
	default:
		return entryBufs.Get().(*[]byte)
	}
}

// putEntryBuf gives back a buffer of getEntryBuf, emptied, of at most
// maxPooledEntry bytes.
func putEntryBuf(b *[]byte) {
	kept := keptEntryBufs
	if cap(*b) > keptEntryBufMax {
		kept = keptLargeEntryBufs
	}
	if cap(*b) <= keptLargeEntryBufMax {
		select {
		case kept <- b:
			return
		default:
		}
	}
	entryBufs.Put(b)
}

// entrySizeHint is about the size of d's afterimage entry, to pick its
// buffer (see getEntryBuf): cruzd's combined SETs take ~80 bytes a node.
func entrySizeHint(d *processor.Delta) int { return len(d.Nodes) * 80 }

// maxPooledEntry is the largest buffer kept for reuse.
const maxPooledEntry = 1 << 20

// takeover writes deltas of other nodes that stay unconfirmed too long.
func (f *Flusher) takeover() {
	defer f.wg.Done()
	t := time.NewTicker(f.o.TakeoverDelay / 4)
	defer t.Stop()
	for {
		select {
		case <-f.stopCh:
			return
		case <-t.C:
		}
		began := time.Now()
		f.mu.Lock()
		for _, pos := range f.fifo {
			if p, ok := f.pend[pos]; ok && !p.queued && time.Since(p.since) >= f.o.TakeoverDelay {
				f.enqueue(p)
			}
		}
		f.mu.Unlock()
		f.sig.takeoverPass.Store(began.UnixNano())
	}
}

// Stats returns the counters.
func (f *Flusher) Stats() Stats {
	f.mu.Lock()
	unflush, npend := f.unflush, len(f.pend)-f.ckPending
	f.dropConfirmedLocked()
	through := f.last
	if len(f.fifo) > 0 {
		through = f.pend[f.fifo[0]].prev
	}
	f.mu.Unlock()
	return Stats{
		FlushedThrough:     through,
		AfterimagesWritten: f.written.Load(),
		AfterimageBytes:    f.writtenBytes.Load(),
		PointersPhysical:   f.phys.Load(),
		PointersIntention:  f.intent.Load(),
		PointersSelf:       f.self.Load(),
		Confirmed:          f.confirmed.Load(),
		Duplicates:         f.dups.Load(),
		AppendErrors:       f.appendErrs.Load(),
		UnflushedBytes:     unflush,
		PendingDeltas:      npend,
		CachedBytes:        f.pager.Clock().Bytes(),
		CacheHits:          f.pager.Hits(),
		CacheMisses:        f.pager.Misses(),
		Evictions:          f.pager.Clock().Evictions(),
		IndexEntries:       f.idx.Len(),
		ForwardScans:       f.pager.Scans(),
		BackpressureWaits:  f.bpWaits.Load(),
		Piggybacked:        f.piggybacked(),
		Inline:             f.inline.Load(),
		FlushLatencyTotal:  time.Duration(f.latency.Load()),

		CheckpointsWritten: f.ckWritten.Load(),
		CheckpointChunks:   f.ckChunks.Load(),
		CheckpointBytes:    f.ckBytes.Load(),
		CheckpointsAborted: f.ckAborted.Load(),
	}
}

// Stop stops the workers without waiting for pending deltas (call Flush
// first for that). Waits in progress return ErrStopped.
func (f *Flusher) Stop() {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.stopped = true
	close(f.stopCh)
	f.cancel()
	f.more.Broadcast()
	f.mu.Unlock()
	f.wg.Wait()
	f.pager.Clock().Stop()
}

// appendAfterimages appends afterimage entries, in order: through the
// piggyback lane (riding with this node's next intention when it is
// committing, or lazily with the next group), or at once, in one batch where
// the log batches, when there is none.
func (f *Flusher) appendAfterimages(data [][]byte) error {
	var err error
	switch {
	case f.lane != nil:
		_, err = f.lane.AppendAfterimages(f.ctx, data)
	case len(data) == 1:
		_, err = f.o.Log.Append(f.ctx, data[0])
	default:
		if b, ok := f.o.Log.(log.BatchAppender); ok {
			_, err = b.AppendBatch(f.ctx, data)
			break
		}
		for _, d := range data {
			if _, err = f.o.Log.Append(f.ctx, d); err != nil {
				break
			}
		}
	}
	return err
}

// piggybacked is Stats.Piggybacked: afterimages the lane appended together
// with an intention.
func (f *Flusher) piggybacked() uint64 {
	if f.lane == nil {
		return 0
	}
	return f.lane.Piggybacked()
}
