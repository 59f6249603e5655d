package seglog

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cruzlog/cruzdb/internal/groupcommit"
)

// The group commit pipeline.
//
// Two committer goroutines (and an appender leading its own group: lead)
// take turns: one takes a group, encodes its records and writes them into
// the active segment, after the groups written before it; if no fdatasync
// is under way, it makes every group written durable with one fdatasync
// (which started after all of them were written), publishes them in
// position order (the segment's index and end, the tail, the ring of
// recent groups, tail notices: so a reader never sees an entry before it is
// durable) and completes their requests: a sync round. While it does, the
// other committer takes the requests that arrive, writes them behind as one
// group, and leaves it to the round that follows, which the first starts
// as soon as its round ends, after writing what queued meanwhile as one
// more group (one write per group, not one per request that arrives while
// a fdatasync runs: measured, that cost more CPU than the overlap saved).
// So the first requests to arrive during a fdatasync are written while it
// runs, nothing waits for a Gosched between rounds, and requests go from
// their appender to a committer and back (no third goroutine).
//
// What needs the published state to be the written state waits until
// every group written is published (drain): a group with fills or trims
// (which read the index and move the trim point), and a segment roll (the
// seal writes the index of everything the segment holds).
//
// A failed write or fdatasync fails the groups being synced and every group
// written behind them (none of them is published), and the log refuses
// every later write (sticky, see setFailed).
//
// Large appends (over smallEntry) are not written while groups are written
// or syncing, until one fdatasync that started after they were first left
// has finished (or the pipeline is empty): small appends (intentions)
// written meanwhile do not wait for the fdatasync of large ones
// (afterimages, checkpoint chunks) that queued with them.

// committers is the number of committer goroutines: one writing while the
// other syncs.
const committers = 2

// wgroup is a group written and not yet published.
type wgroup struct {
	seg    *segment
	reqs   []*groupcommit.Request // every request of the group
	offs   []uint32               // offsets of its records (positions from seg.next() on)
	kinds  []byte
	gstart uint32   // its first byte in seg
	n      int      // its bytes
	tail   uint64   // the tail once it is published
	fills  []uint64 // its fill-ahead records
	junked []uint64 // fills it wrote junk for
	ring   uint64   // its reservation in recent (0: none)
	data   int      // bytes of entry data
}

// pipeState is the state shared by the writers of groups (committers,
// leading appenders) and the sync rounds, guarded by mu.
type pipeState struct {
	mu      sync.Mutex
	idle    *sync.Cond // broadcast when a sync round ends
	written []*wgroup  // written, waiting for a fdatasync that starts after them
	syncing bool       // a sync round (fdatasync, publish, complete) is under way
	// started and finished count the sync rounds.
	started, finished uint64
}

// busyLocked reports whether groups are written or syncing.
func (p *pipeState) busyLocked() bool { return p.syncing || len(p.written) > 0 }

// claimRound takes every group written, if no round is under way, and
// starts a round for them; nil if there is none to start.
func (l *Log) claimRound() []*wgroup {
	p := &l.pipe
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.syncing || len(p.written) == 0 {
		return nil
	}
	gs := p.written
	p.written = nil
	p.syncing = true
	p.started++
	return gs
}

// handOff queues g, just written, for a fdatasync. If no round is under
// way, it starts one for every group written, which the caller runs
// (syncRound) once it no longer holds commitMu; otherwise the round under
// way leaves them to the next.
func (l *Log) handOff(g *wgroup) []*wgroup {
	p := &l.pipe
	p.mu.Lock()
	defer p.mu.Unlock()
	p.written = append(p.written, g)
	if p.syncing {
		return nil
	}
	gs := p.written
	p.written = nil
	p.syncing = true
	p.started++
	return gs
}

// drain returns once every group written is published (or failed),
// running the sync rounds itself when no other goroutine does. The caller
// is a writer (it holds commitMu), so no group is written meanwhile.
func (l *Log) drain() {
	p := &l.pipe
	p.mu.Lock()
	for p.busyLocked() {
		if p.syncing {
			p.idle.Wait()
			continue
		}
		p.mu.Unlock()
		if gs := l.claimRound(); gs != nil {
			l.syncRound(gs)
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
}

// syncRound makes gs (written in this order, in one segment) durable with
// one fdatasync, publishes them in order and completes their requests; or,
// if the fdatasync fails (or the log already failed), fails them all. It
// ends the round; the caller starts the next one for the groups written
// meanwhile (see committer).
func (l *Log) syncRound(gs []*wgroup) {
	seg := gs[0].seg
	err := l.q.Failed()
	if err == nil {
		t0 := time.Now()
		if serr := l.sync(seg.f); serr != nil {
			err = l.setFailed(fmt.Errorf("fdatasync segment %s: %w", seg.path, serr))
		} else {
			l.stats.syncNanos.Add(uint64(time.Since(t0)))
			l.stats.syncs.Add(1)
		}
	}
	for _, g := range gs {
		if err != nil {
			if g.ring != 0 {
				l.recent.cancel(g.ring)
			}
			l.finish(g.reqs, err)
			continue
		}
		l.publish(g)
		l.complete(g.reqs)
	}
	p := &l.pipe
	p.mu.Lock()
	p.syncing = false
	p.finished++
	p.idle.Broadcast()
	p.mu.Unlock()
}

// publish makes g, durable, visible: its records in the segment's index,
// the tail past them, its bytes in the ring, the tail notices; and asks
// the preparer for blocks ahead of it.
func (l *Log) publish(g *wgroup) {
	act := g.seg
	if g.ring != 0 {
		l.recent.publish(act, g.ring, g.gstart, g.n)
	}
	l.stats.groups.Add(1)
	l.stats.entries.Add(uint64(len(g.offs)))
	l.stats.bytes.Add(uint64(g.data))

	l.segMu.Lock()
	act.offs = append(act.offs, g.offs...)
	act.kinds = append(act.kinds, g.kinds...)
	act.end = g.gstart + uint32(g.n)
	for _, q := range g.fills {
		l.pending[q] = struct{}{}
	}
	for _, q := range g.junked {
		delete(l.pending, q)
	}
	if g.tail != l.tail {
		l.tail = g.tail
		l.tailMovedLocked()
	}
	l.segMu.Unlock()
	l.askPrepare(act, int64(g.n))
	for _, r := range g.reqs {
		if r.Op == groupcommit.Append {
			r.Data = nil
		}
	}
}

// complete counts the lazy appends of a committed group and completes
// every request of it.
func (l *Log) complete(group []*groupcommit.Request) {
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
		r.Complete()
	}
}
