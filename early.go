package cruzdb

import (
	"sync"
	"sync/atomic"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/processor"
)

// Early application, the database's side (processor/early.go has the
// runner's).
//
// On a log that says what it ordered before it is durable
// (log.OrderNotifier), replay applies a group's intentions while the log
// writes and syncs the group. The events of those entries (Event.Early)
// are handled in two steps:
//
//   - at once, what nobody outside sees: the counters, whose commit the
//     decision is, and the delta handed to the flusher (whose afterimage is
//     appended after the intention, so it cannot be durable before it);
//   - once the log says the position is durable (orderWatch.Durable), what
//     shows the entry: the version readers begin on, the decision sent to
//     its committer, the afterimage's confirmation to the flusher (which
//     lets its nodes be evicted and read back from the log), eviction, and
//     the waiters of Sync.
//
// So nothing acknowledged or readable is ever lost with a log that fails
// or a process that dies mid-sync: what was applied early is shown only
// once durable. A checkpoint's entries are never applied early (a
// confirmed checkpoint trims the log).

// publication holds the events applied early that are not shown yet.
type publication struct {
	// tree is the tree after the last event applied (shown or not); only
	// the goroutine calling onEvent uses it (never two at once).
	tree cowtree.Tree

	// durable: every position below it is durable (the log's Durable, a
	// committer's append that returned, or an entry replay read back from
	// the log).
	durable atomic.Uint64
	// waiting counts pending, so that a committer need not take mu to
	// find nothing to show.
	waiting atomic.Int64

	// shownPos is the last position shown (Stats.Position).
	shownPos atomic.Uint64

	mu      sync.Mutex // held while showing, so that events are shown in order
	pending []shown
}

// shown is an event's second step: what it shows once durable.
type shown struct {
	ev        processor.Event
	v         *version
	committer *commitWaiter
}

// early reports whether replay applies entries before they are durable.
func (db *DB) early() bool {
	_, ok := db.log.(log.OrderNotifier)
	return ok && !db.opts.ApplyAfterSync
}

// watchOrder makes the database the log's OrderWatcher, if it applies
// early; the returned function stops it.
func (db *DB) watchOrder() (stop func()) {
	on, ok := db.log.(log.OrderNotifier)
	if !ok || !db.early() {
		return func() {}
	}
	return on.NotifyOrder(orderWatch{db})
}

// orderWatch is the database as the log's log.OrderWatcher: Ordered stages
// the group for the runner; Durable records what may be shown.
type orderWatch struct{ db *DB }

func (o orderWatch) Ordered(first log.Position, data [][]byte) {
	if r := o.db.runnerRef.Load(); r != nil {
		r.Ordered(uint64(first), data)
	}
}

func (o orderWatch) Durable(tail log.Position) {
	o.db.pub.raise(uint64(tail))
}

// raise moves durable up to tail.
func (p *publication) raise(tail uint64) {
	for {
		d := p.durable.Load()
		if d >= tail || p.durable.CompareAndSwap(d, tail) {
			return
		}
	}
}

// published is an event's second step: done now if its position is known
// to be durable (then after every earlier event kept), else kept until it
// is (showDurable). onEvent has raised durable past an event read back from
// the log.
func (db *DB) published(s shown) {
	p := &db.pub
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.ev.Pos >= p.durable.Load() {
		p.pending = append(p.pending, s)
		p.waiting.Add(1)
		// A committer that raised durable meanwhile may have found nothing
		// waiting (showDurable) just before the count went up: look again.
		if s.ev.Pos < p.durable.Load() {
			db.showPendingLocked()
		}
		return
	}
	db.showPendingLocked()
	one := [1]shown{s}
	db.showRun(one[:])
}

// showDurable shows the events kept whose positions are now durable. A
// committer calls it once its append has returned.
func (db *DB) showDurable() {
	p := &db.pub
	if p.waiting.Load() == 0 {
		return
	}
	p.mu.Lock()
	db.showPendingLocked()
	p.mu.Unlock()
}

// showPendingLocked shows the kept events below durable, in order. The
// caller holds pub.mu.
func (db *DB) showPendingLocked() {
	p := &db.pub
	d := p.durable.Load()
	n := 0
	for n < len(p.pending) && p.pending[n].ev.Pos < d {
		n++
	}
	if n > 0 {
		db.showRun(p.pending[:n])
		rest := copy(p.pending, p.pending[n:])
		clear(p.pending[rest:])
		p.pending = p.pending[:rest]
		p.waiting.Add(int64(-n))
	}
}

// dropPending forgets the events kept (a re-bootstrap replaced the state
// they belonged to) and sets the tree replay goes on from.
func (db *DB) dropPending(tree cowtree.Tree) {
	p := &db.pub
	p.mu.Lock()
	p.waiting.Add(int64(-len(p.pending)))
	clear(p.pending)
	p.pending = p.pending[:0]
	p.tree = tree
	p.mu.Unlock()
}

// showRun is the second step of a run of events, in order: each one's
// version, afterimage confirmation and decision, then, once for the run,
// eviction and the Sync waiters. The caller holds pub.mu.
func (db *DB) showRun(run []shown) {
	for _, s := range run {
		ev := s.ev
		db.cur.Store(s.v)
		if ev.Afterimage != nil {
			db.flusher.Saw(ev.Pos, ev.Afterimage.Intention)
		}
		// The committer learns its decision only once its delta is with the
		// flusher (the first step), so a Flush it calls next includes it,
		// and once the version it made is the current one.
		if s.committer != nil {
			s.committer.ch <- *ev.Decision
		}
	}
	last := run[len(run)-1]
	db.flusher.Evict(last.v.tree)

	// Sync waiters last: once released they may look at anything above.
	db.mu.Lock()
	db.releaseLocked(last.ev.Pos)
	db.mu.Unlock()
	db.pub.shownPos.Store(last.ev.Pos)
}

// releaseLocked records that everything up to pos is handled and releases
// the Sync waiters it satisfies. The caller holds db.mu.
func (db *DB) releaseLocked(pos uint64) {
	db.released = pos
	if len(db.syncs) == 0 {
		return
	}
	kept := db.syncs[:0]
	for _, sw := range db.syncs {
		if sw.target <= pos {
			close(sw.ch)
		} else {
			kept = append(kept, sw)
		}
	}
	clear(db.syncs[len(kept):])
	db.syncs = kept
}
