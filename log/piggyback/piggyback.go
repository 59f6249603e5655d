// Package piggyback is a log decorator through which one node's
// afterimages ride with its own intentions.
//
// On a log where every append is a commit of its own (boltlog: a
// transaction and an fsync), an afterimage appended just before this node's
// next intention makes that intention wait for the afterimage's commit,
// which halves one client's commit rate (figures: bench/RESULTS.md). So
// while few clients commit on this node (an intention was appended through
// AppendIntention within Window, and at most MaxRidingCommitters commits are
// under way), AppendAfterimage waits up to Window for the next local
// intention and the two are appended in one batch (log.BatchAppender), or
// the afterimage alone when none comes. Replaying and idle nodes append at
// once, and so do busy ones on a log that is not a LazyAppender.
//
// With more commits under way, on a wrapped log that is a LazyAppender
// (seglog), AppendAfterimage appends lazily: the afterimage joins the next
// group commit started for anything else (an intention, whoever appends
// it) instead of costing a group and an fdatasync of its own that
// intentions would queue behind; it commits alone only after Window
// without one. (With one or two clients riding in a batch is kept: a lazy
// append wakes the log's committer once more per commit, which made one
// client's commits slower.)
//
// The database appends its intentions through AppendIntention and the
// flusher its afterimages through AppendAfterimage; every other use of the
// decorator (Append, AppendBatch, reads, fills, trims) passes straight to
// the log it wraps, so it can be handed to anything that takes a log.Log.
// Optional interfaces of the wrapped log other than log.BatchAppender
// (log.RangeReader, log.TailWaiter) are reached through Inner.
package piggyback

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// Window is how recent a local intention must be for an afterimage to wait
// for the next one, and how long it waits.
const Window = 2 * time.Millisecond

// MaxRidingCommitters: with more local commits under way than this,
// afterimages do not wait: group commit merges them with the intentions
// anyway, and waiting made 64 clients slower (bench/RESULTS.md).
const MaxRidingCommitters = 2

// LazyAppender is a log that can hold an append back until another write
// commits (log/seglog implements it).
type LazyAppender interface {
	// AppendLazy appends data as Append does, but starts no group commit
	// of its own: it joins the next one started for another request, or
	// commits alone once it has waited within. shared reports that its
	// group held another request.
	AppendLazy(ctx context.Context, data []byte, within time.Duration) (pos log.Position, shared bool, err error)
}

// LazyBatchAppender is a LazyAppender that can hold back several entries
// with one wait (log/seglog implements it).
type LazyBatchAppender interface {
	// AppendLazyBatch appends the entries in order as AppendLazy does
	// and returns their positions; shared reports that every group that
	// committed them held another request.
	AppendLazyBatch(ctx context.Context, data [][]byte, within time.Duration) (pos []log.Position, shared bool, err error)
}

// Log wraps a log.Log. Create with New; safe for concurrent use.
type Log struct {
	log.Log
	batch  log.BatchAppender // nil: the wrapped log cannot batch, nothing rides
	lazy   LazyAppender      // non-nil: afterimages ride through the log's lazy appends
	lazyB  LazyBatchAppender // non-nil: several afterimages ride with one lazy wait
	window time.Duration     // Window; tests lengthen it so that riding is certain

	lastLocal  atomic.Int64 // UnixNano of the last AppendIntention
	committing atomic.Int32 // local commits under way (CommitBegins)
	ridden     atomic.Uint64

	mu     sync.Mutex
	riders []*rider
}

var (
	_ log.Log           = (*Log)(nil)
	_ log.BatchAppender = (*Log)(nil)
)

type rider struct {
	data []byte
	pos  log.Position
	err  error
	done chan struct{}
	// then and timer: a rider handed over by Ride, whose writer does not
	// wait (done is nil): then gets the outcome, and timer appends it
	// alone after the window.
	then  func(log.Position, error)
	timer *time.Timer
}

// New wraps l. If l is not a log.BatchAppender, afterimages never ride and
// AppendBatch appends its entries one at a time.
func New(l log.Log) *Log {
	p := &Log{Log: l, window: Window}
	p.batch, _ = l.(log.BatchAppender)
	p.lazy, _ = l.(LazyAppender)
	p.lazyB, _ = l.(LazyBatchAppender)
	return p
}

// NewWindow is New with window in place of Window (at least 1 ns): tests
// of code built on the lane lengthen it so that riding is certain on a
// loaded machine.
func NewWindow(l log.Log, window time.Duration) *Log {
	p := New(l)
	p.window = max(window, 1)
	return p
}

// Inner returns the wrapped log.
func (p *Log) Inner() log.Log { return p.Log }

// AppendBatch passes to the wrapped log's AppendBatch (nothing rides with
// it); on a log without one, it appends the entries one at a time, stopping
// at the first error.
func (p *Log) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	if p.batch != nil {
		return p.batch.AppendBatch(ctx, data)
	}
	pos := make([]log.Position, 0, len(data))
	for _, d := range data {
		at, err := p.Log.Append(ctx, d)
		if err != nil {
			return nil, err
		}
		pos = append(pos, at)
	}
	return pos, nil
}

// CommitBegins records that a local commit is under way, until the returned
// function is called (when the commit has its decision).
func (p *Log) CommitBegins() (ends func()) {
	if p.batch == nil {
		return func() {}
	}
	p.committing.Add(1)
	return func() { p.committing.Add(-1) }
}

// Committing returns how many local commits are under way (CommitBegins).
func (p *Log) Committing() int { return int(p.committing.Load()) }

// Piggybacked returns how many afterimages were appended in one batch with
// an intention (on a LazyAppender: in one group commit with another write).
func (p *Log) Piggybacked() uint64 { return p.ridden.Load() }

// AppendAfterimage appends an afterimage entry, riding with the next local
// intention when this node is committing (see the package doc). It returns
// the afterimage's position, or the error of the append it rode in.
func (p *Log) AppendAfterimage(ctx context.Context, data []byte) (log.Position, error) {
	if p.lazy != nil && p.committing.Load() > MaxRidingCommitters && time.Since(time.Unix(0, p.lastLocal.Load())) <= p.window {
		pos, shared, err := p.lazy.AppendLazy(ctx, data, p.window)
		if err == nil && shared {
			p.ridden.Add(1)
		}
		return pos, err
	}
	if p.batch == nil || p.committing.Load() > MaxRidingCommitters || time.Since(time.Unix(0, p.lastLocal.Load())) > p.window {
		// Idle, or many commits under way (group commit then takes this
		// append along with their intentions).
		return p.Log.Append(ctx, data)
	}
	r := &rider{data: data, done: make(chan struct{})}
	p.mu.Lock()
	p.riders = append(p.riders, r)
	p.mu.Unlock()
	t := time.NewTimer(p.window)
	defer t.Stop()
	select {
	case <-r.done:
		return r.pos, r.err
	case <-t.C:
	case <-ctx.Done():
	}
	p.mu.Lock()
	i := slices.Index(p.riders, r)
	if i >= 0 {
		p.riders = slices.Delete(p.riders, i, i+1)
	}
	p.mu.Unlock()
	if i < 0 { // an intention took it meanwhile
		<-r.done
		return r.pos, r.err
	}
	return p.Log.Append(ctx, data)
}

// Ride hands over an afterimage entry to ride with the next local
// intention, as AppendAfterimage does, but without waiting for it: no
// goroutine waits, so the intention's committer wakes none when it is
// appended. then is called exactly once, with the afterimage's position or
// the error of the append it rode in: by Riders.Release on the committer's
// goroutine (AppendIntention calls it at once), or, if no local intention
// is appended within Window, after it was appended alone, on a goroutine of
// its own (ctx bounds that append). data must stay untouched until then.
//
// ok is false, and then is never called, where AppendAfterimage would not
// wait for an intention (this node is not committing, or many commits are
// under way): the caller appends the entry another way.
func (p *Log) Ride(ctx context.Context, data []byte, then func(log.Position, error)) (ok bool) {
	if !p.Rides() {
		return false
	}
	r := &rider{data: data, then: then}
	p.mu.Lock()
	p.riders = append(p.riders, r)
	// Set under mu: an intention that takes r stops it.
	r.timer = time.AfterFunc(p.window, func() { p.alone(ctx, r) })
	p.mu.Unlock()
	return true
}

// Rides reports whether an afterimage handed over now would wait to ride
// with the next local intention (Ride would take it), so that a caller can
// skip encoding one for Ride when it would not.
func (p *Log) Rides() bool {
	return p.batch != nil && p.committing.Load() <= MaxRidingCommitters && time.Since(time.Unix(0, p.lastLocal.Load())) <= p.window
}

// alone appends r, handed over by Ride, by itself if no intention took it
// within the window.
func (p *Log) alone(ctx context.Context, r *rider) {
	p.mu.Lock()
	i := slices.Index(p.riders, r)
	if i >= 0 {
		p.riders = slices.Delete(p.riders, i, i+1)
	}
	p.mu.Unlock()
	if i < 0 {
		return // an intention took it: its Release calls then
	}
	pos, err := p.Log.Append(ctx, r.data)
	r.then(pos, err)
}

// AppendAfterimages appends several afterimage entries, in order, with one
// wait: lazily in one batch where AppendAfterimage would append lazily,
// else in one batch at once (they do not wait for an intention to ride
// with: a writer holding several afterimages is behind). It returns their
// positions, or the error of the append.
func (p *Log) AppendAfterimages(ctx context.Context, data [][]byte) ([]log.Position, error) {
	if len(data) == 1 {
		pos, err := p.AppendAfterimage(ctx, data[0])
		if err != nil {
			return nil, err
		}
		return []log.Position{pos}, nil
	}
	if p.lazyB != nil && p.committing.Load() > MaxRidingCommitters && time.Since(time.Unix(0, p.lastLocal.Load())) <= p.window {
		pos, shared, err := p.lazyB.AppendLazyBatch(ctx, data, p.window)
		if err == nil && shared {
			p.ridden.Add(uint64(len(data)))
		}
		return pos, err
	}
	return p.AppendBatch(ctx, data)
}

// AppendIntention appends an intention this node commits, together with the
// afterimages waiting to ride with one, and returns the intention's
// position. An error is the intention's append error; the riders get the
// same error (their writers retry them).
func (p *Log) AppendIntention(ctx context.Context, data []byte) (log.Position, error) {
	pos, riders, err := p.AppendIntentionHeld(ctx, data)
	riders.Release()
	return pos, err
}

// AppendIntentionHeld is AppendIntention, except that the afterimages that
// rode with the intention are handed to the caller, their writers held
// until the caller calls Release on them (exactly once): a committer that
// applies the entries up to its own reads their bytes instead of reading
// them back from the log, and wakes their writers once it is done. After an
// error there are none (the riders already have the error).
func (p *Log) AppendIntentionHeld(ctx context.Context, data []byte) (log.Position, Riders, error) {
	if p.batch == nil {
		pos, err := p.Log.Append(ctx, data)
		return pos, Riders{}, err
	}
	p.lastLocal.Store(time.Now().UnixNano())
	p.mu.Lock()
	riders := p.riders
	p.riders = nil
	p.mu.Unlock()
	for _, r := range riders {
		if r.timer != nil {
			// Taken: if its timer fired meanwhile, alone finds it gone.
			r.timer.Stop()
		}
	}
	if len(riders) == 0 {
		pos, err := p.Log.Append(ctx, data)
		return pos, Riders{}, err
	}
	batch := make([][]byte, 0, len(riders)+1)
	for _, r := range riders {
		batch = append(batch, r.data)
	}
	pos, err := p.batch.AppendBatch(ctx, append(batch, data))
	if err != nil {
		for _, r := range riders {
			r.err = err
		}
		Riders{riders}.Release()
		return 0, Riders{}, err
	}
	for i, r := range riders {
		r.pos = pos[i]
	}
	p.ridden.Add(uint64(len(riders)))
	return pos[len(pos)-1], Riders{riders}, nil
}

// Riders are the afterimages that rode with an intention
// (AppendIntentionHeld), in log order, below it. Their writers wait until
// Release.
type Riders struct{ rs []*rider }

// Len is how many afterimages rode.
func (rd Riders) Len() int { return len(rd.rs) }

// At returns the i-th afterimage's position and bytes, which are its
// writer's: valid until Release.
func (rd Riders) At(i int) (log.Position, []byte) { return rd.rs[i].pos, rd.rs[i].data }

// Release lets the afterimages' writers go on (their AppendAfterimage
// returns; for those handed over by Ride, their function is called here,
// on the caller's goroutine). Call it once.
func (rd Riders) Release() {
	for _, r := range rd.rs {
		if r.then != nil {
			r.then(r.pos, r.err)
			continue
		}
		close(r.done)
	}
}
