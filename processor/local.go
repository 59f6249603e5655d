package processor

import (
	"context"

	"github.com/cruzlog/cruzdb/log"
)

// The apply role and the committing goroutine.
//
// After its group commit, a committing client used to wait for two
// goroutine wake-ups before it had its decision: the group commit woke the
// applying goroutine (waiting on the tail), which read, applied and woke
// the client. ApplyLocal lets the client apply its own intention (and
// whatever precedes it) on its own goroutine when nobody else is applying,
// so that its decision is ready when the call returns. Applies stay in log
// order, one at a time: whoever applies holds r.mu (the apply role) and
// reads from the source's next position on, exactly as the applying
// goroutine would; only which goroutine runs the deterministic core
// changes, never what it decides.

// ApplyLocal applies the log's entries up to and including pos on the
// calling goroutine, if the apply role is free (no waiting for it), and
// reports whether every position up to pos has been applied when it
// returns; OnEvent is then called on the calling goroutine for the
// positions it applied. pos must be below the log's tail (the caller's own
// append returned it), and the call ends a commit begun with BeginLocal.
// data, if not nil, is the entry at pos as appended, used instead of
// reading it back. Reads of the entries below pos end with ctx (then
// false). It does not wait on holes, re-bootstrap or start catch-up
// readers: such work, and any entry it cannot apply, is left to the
// applying goroutine (false). On a log that is not a log.TailWaiter it
// applies nothing (false): see Runner.tw.
func (r *Runner) ApplyLocal(ctx context.Context, pos uint64, data []byte) bool {
	defer r.EndLocal()
	if r.applied.Load() >= pos {
		return true
	}
	if r.tw == nil {
		return false // see Runner.tw
	}
	if !r.mu.TryLock() {
		return false
	}
	done := r.applyLocalLocked(ctx, pos, data)
	r.mu.Unlock()
	return done
}

// BeginLocal says that a committing goroutine is about to append an
// intention and then call ApplyLocal (or EndLocal if its append fails).
// While any such commit is under way, the applying goroutine, woken by a
// group commit, leaves the entries it saw to the committers (their own
// group commits would otherwise have it race them for the apply role) and
// waits for the tail to move further; a committer that ends with some of
// them not applied (it found the role taken, or its append failed) wakes it
// (leaveToCommitters).
func (r *Runner) BeginLocal() { r.inflight.Add(1) }

// EndLocal ends a commit begun with BeginLocal whose intention was not
// appended. ApplyLocal ends it itself.
func (r *Runner) EndLocal() {
	r.inflight.Add(-1)
	if r.missed.Load() && r.missed.CompareAndSwap(true, false) {
		select { // hand the apply role back (lockApplier)
		case r.handback <- struct{}{}:
		default:
		}
	}
	if r.applied.Load()+1 < r.seen.Load() {
		if k := r.kick.Load(); k != nil {
			(*k)() // the applier saw entries nobody applied
		}
	}
}

// leaveToCommitters is the applying goroutine's wait, without the apply
// role, while local commits are under way, having seen the tail at tail:
// it returns once no local commit is under way, or once one that ended
// left some of the entries seen unapplied (it cancels the wait), with the
// newest tail seen. An error is the context's.
//
// The hand-off is two-sided: the applier publishes how to wake it and what
// it saw (kick, then seen) before it looks at inflight again; a committer
// takes itself out of inflight before it looks at seen (then kick). So
// either the applier finds no commit under way, or a committer still under
// way finds what it saw and how to wake it.
func (r *Runner) leaveToCommitters(parent context.Context, tw log.TailWaiter, tail log.Position) (log.Position, error) {
	for {
		ctx, cancel := context.WithCancel(parent)
		r.kick.Store(&cancel)
		r.seen.Store(uint64(tail))
		if r.inflight.Load() == 0 {
			r.kick.Store(nil)
			cancel()
			return tail, nil
		}
		r.idle.Add(1)
		t, err := tw.WaitTail(ctx, tail)
		r.kick.Store(nil)
		kicked := ctx.Err() != nil
		cancel()
		switch {
		case parent.Err() != nil:
			return 0, parent.Err()
		case kicked:
			return tail, nil
		case err != nil:
			return 0, err
		}
		tail = t
		if r.inflight.Load() == 0 {
			return tail, nil
		}
	}
}

func (r *Runner) applyLocalLocked(ctx context.Context, pos uint64, data []byte) bool {
	s := r.src
	if r.stopped || s == nil || s.ctx.Err() != nil || s.in != nil || len(s.held) > 0 || ctx.Err() != nil {
		return false
	}
	// Reads end with the runner (Stop) or with the committer's context.
	readCtx := s.ctx
	if ctx.Done() != nil {
		var cancel context.CancelFunc
		readCtx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.ctx, cancel)()
	}
	noWait := func() bool { return false }
	for s.next <= pos {
		var it item
		if s.next == pos && data != nil {
			it.pos = pos
			r.decode(&it, data)
		} else {
			var ok bool
			if it, ok = r.fetch(readCtx, s.next, noWait); !ok {
				return false // a hole, or a read to retry: the applier's
			}
		}
		s.next++
		if it.fail == nil {
			if err := r.applyEntry(&it); err != nil {
				it.fail = err
			} else if it.in != nil {
				r.locals.Add(1)
			}
		}
		if it.fail != nil {
			// Re-bootstrapping or stopping is the applying goroutine's.
			s.held = append(s.held, it)
			r.missed.Store(true) // EndLocal wakes the applying goroutine
			return false
		}
	}
	return true
}

// lockApplier takes the apply role for the applying goroutine, waiting for
// a committing goroutine to let go of it (which wakes it: missed). It
// always returns holding r.mu; false when the runner is stopping.
func (r *Runner) lockApplier(ctx context.Context) bool {
	for {
		if r.mu.TryLock() {
			r.missed.Store(false)
			return ctx.Err() == nil
		}
		r.missed.Store(true)
		if r.mu.TryLock() {
			r.missed.Store(false)
			return ctx.Err() == nil
		}
		select {
		case <-r.handback:
		case <-ctx.Done():
			r.mu.Lock()
			return false
		}
	}
}

// LocalApplies is how many intentions committing goroutines applied
// (ApplyLocal).
func (r *Runner) LocalApplies() uint64 { return r.locals.Load() }
