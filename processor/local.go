package processor

import "context"

// The apply role and the committing goroutine.
//
// After its group commit, a committing client would otherwise wait for two
// goroutine wake-ups before it has its decision: the group commit wakes the
// applying goroutine (waiting on the tail), which reads, applies and wakes
// the client. ApplyLocal lets the client apply its own intention (and
// whatever precedes it) on its own goroutine when nobody else is applying,
// so that its decision is ready when the call returns. Applies stay in log
// order, one at a time: whoever applies holds r.mu, and reads from the
// source's next position on, exactly as the applying goroutine would.

// ApplyLocal applies the log's entries up to and including pos on the
// calling goroutine, if the apply role is free (no waiting for it), and
// reports whether every position up to pos has been applied when it
// returns; OnEvent is then called on the calling goroutine for the
// positions it applied. Its reads of the log end with ctx (then false). pos must be below the log's tail (the caller's own
// append returned it). data, if not nil, is the entry at pos as appended,
// used instead of reading it back. It does not wait on holes, does not
// re-bootstrap and does not start catch-up readers: such work, and any
// entry it cannot apply, is left to the applying goroutine (false).
func (r *Runner) ApplyLocal(ctx context.Context, pos uint64, data []byte) bool {
	defer r.EndLocal()
	if r.applied.Load() >= pos {
		return true
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
// While any such commit is under way, the applying goroutine, once it has
// applied everything, waits for the committers instead of for the tail
// (their own group commits would otherwise wake it to race them for the
// apply role): the last to end wakes it, and so does any that could not
// apply.
func (r *Runner) BeginLocal() { r.inflight.Add(1) }

// EndLocal ends a commit begun with BeginLocal whose intention was not
// appended. ApplyLocal ends it itself.
func (r *Runner) EndLocal() {
	r.inflight.Add(-1)
	missed := r.missed.Load() && r.missed.CompareAndSwap(true, false)
	if missed || r.parked.Load() {
		select { // hand the apply role back
		case r.handback <- struct{}{}:
		default:
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

// waitLocal parks the applying goroutine while commits begun with
// BeginLocal are under way (each wakes it as it ends); false when stopping.
// It returns at once if none is.
func (r *Runner) waitLocal(ctx context.Context) (waited, ok bool) {
	r.parked.Store(true)
	defer r.parked.Store(false)
	select {
	case <-r.handback: // stale: from a commit that ended before
	default:
	}
	if r.inflight.Load() == 0 {
		return false, true
	}
	r.idle.Add(1)
	select {
	case <-r.handback:
		return true, true
	case <-ctx.Done():
		return true, false
	}
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
