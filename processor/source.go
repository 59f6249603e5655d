package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// catchUpBacklog: when more entries than this wait to be replayed, the
// applying goroutine starts a reader goroutine that reads and decodes
// ahead of it (Runner.read) until it has caught up with the tail; at or
// below it, the applying goroutine reads the entries itself.
//
// At the tail (a commit's own intention, the entries of one or a few
// groups) a separate reader only adds a goroutine wake-up to every commit:
// the group commit wakes the reader, the reader the applier, the applier
// the committing client. Reading inline, the group commit wakes the
// applier directly. A reader pays off when there is a backlog to decode
// while the applier works (replay at open, a burst of appends).
const catchUpBacklog = 64

// source hands the applying goroutine its entries in log order: read by
// the goroutine itself at the tail, or by a catch-up reader (Runner.read)
// when a backlog waits.
type source struct {
	r      *Runner
	ctx    context.Context
	cancel context.CancelFunc
	ticker *time.Ticker
	next   uint64 // the next position to read inline
	buf    []item // the batch read inline, reused
	// held is an entry a committing goroutine read but left to the
	// applying goroutine (one that failed: see ApplyLocal); it comes first.
	held []item

	// The catch-up reader, while one runs (in non-nil), and where it
	// stopped once it caught up (set before it closes in).
	in       <-chan []item
	stopRead context.CancelFunc
	caught   caughtUp
}

// caughtUp is where a catch-up reader stopped: done once it found no
// entry beyond next.
type caughtUp struct {
	done bool
	next uint64
}

// newSource returns a source of the entries from position from on.
func (r *Runner) newSource(from uint64) *source {
	s := &source{r: r, next: from, ticker: time.NewTicker(r.cfg.PollInterval)}
	s.ctx, s.cancel = context.WithCancel(r.ctx)
	return s
}

// close stops the source and waits for its reader, if any.
func (s *source) close() {
	s.cancel()
	if s.in != nil {
		for range s.in { // let the reader finish
		}
		s.in = nil
	}
	s.ticker.Stop()
}

// batch returns the next entries in log order; ok is false when replay
// must stop (the runner is stopping, or failed reading the tail). The
// batch is valid until the next call.
func (s *source) batch() (batch []item, ok bool) {
	for {
		if len(s.held) > 0 {
			b := append(s.buf[:0], s.held...)
			s.held = s.held[:0]
			s.buf = b
			return b, true
		}
		if s.in != nil {
			if b, ok := <-s.in; ok {
				return b, true
			}
			s.in = nil
			s.stopRead()
			if !s.caught.done {
				return nil, false // stopped, or failed
			}
			s.next = s.caught.next
		}
		b, ok := s.readInline()
		if !ok || len(b) > 0 {
			return b, ok
		}
	}
}

// waitTail returns a tail beyond next: on a log.TailWaiter once the
// applying goroutine has something to apply (Runner.park: the tail may be
// stale, at or below a next that committers advanced meanwhile); else by
// polling Tail between wake-ups (Notify, the poll). ok is false when
// stopping. The caller does not hold r.mu.
func (s *source) waitTail(next uint64) (tail log.Position, err error, ok bool) {
	r := s.r
	if r.tw != nil {
		tail, err = r.park(s.ctx, next)
		return tail, err, true
	}
	for {
		tail, err = r.cfg.Log.Tail(s.ctx)
		if err != nil || uint64(tail) > next {
			return tail, err, true
		}
		if !s.wait() {
			return 0, nil, false
		}
	}
}

// wait waits for a wake-up (Notify or the poll); false when stopping.
func (s *source) wait() bool {
	s.r.idle.Add(1)
	select {
	case <-s.ctx.Done():
		return false
	case <-s.r.wake:
	case <-s.ticker.C:
	}
	return true
}

// readInline reads the entries from s.next up to the tail it waits for
// (at most ReadAhead), or starts a catch-up reader if more than
// catchUpBacklog wait (and returns no entries). Before waiting on a hole it
// returns the entries already read, so that they are applied first.
func (s *source) readInline() ([]item, bool) {
	r := s.r
	for {
		if len(s.held) > 0 {
			return nil, true // a committing goroutine left an entry (batch)
		}
		// The tail is waited for without the apply role, so that a
		// committing goroutine may apply meanwhile; s.next is read again
		// once the role is back.
		next := s.next
		r.mu.Unlock()
		tail, err, ok := s.waitTail(next)
		if !r.lockApplier(s.ctx) || !ok {
			return nil, false
		}
		if err != nil {
			if s.ctx.Err() == nil {
				r.fail(fmt.Errorf("processor: read tail: %w", err))
			}
			return nil, false
		}
		if len(s.held) > 0 || uint64(tail) <= s.next {
			continue // a committing goroutine applied, or left an entry
		}
		if uint64(tail)-s.next > catchUpBacklog {
			s.caught = caughtUp{}
			r.catchUps.Add(1)
			s.in, s.stopRead = r.startReader(s.ctx, s.next, &s.caught)
			return nil, true
		}
		n := min(uint64(tail)-s.next, uint64(r.cfg.ReadAhead))
		batch := s.buf[:0]
		yield := false
		wait := func() bool {
			if len(batch) > 0 {
				yield = true // apply what was read before waiting on a hole
				return false
			}
			return s.wait()
		}
		for i := uint64(0); i < n; i++ {
			it, ok := r.fetch(s.ctx, s.next, wait)
			if !ok {
				if yield {
					break
				}
				return nil, false
			}
			batch = append(batch, it)
			s.next++
			if it.fail != nil {
				break
			}
		}
		s.buf = batch
		return batch, true
	}
}
