package processor

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/cruzlog/cruzdb/internal/entry"
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
	return r.ApplyLocalWith(ctx, pos, data, nil)
}

// Appended is an entry below a committer's own, decoded from the bytes its
// appender handed over (Runner.DecodeAppended), for ApplyLocalWith.
type Appended struct {
	it item
	ok bool
}

// DecodeAppended decodes the entry at pos from data, the bytes appended
// there (an afterimage that rode in the committer's batch: see
// log/piggyback's AppendIntentionHeld), for ApplyLocalWith. It keeps
// nothing of data, so its appender may reuse it at once. Only afterimages
// are decoded (an intention's decode keeps references into its bytes):
// anything else is read from the log as ApplyLocal reads it. A decode
// holds no state of the runner and needs no apply role.
func (r *Runner) DecodeAppended(pos uint64, data []byte) Appended {
	if r.tw == nil {
		return Appended{} // nothing is applied locally on this log (see Runner.tw)
	}
	if t, err := entry.PeekType(pos, data); err != nil || t != entry.TypeAfterimage {
		return Appended{}
	}
	a := Appended{it: item{pos: pos}, ok: true}
	if len(data) > replayPrefix {
		r.decodePrefix(&a.it, data[:replayPrefix], len(data)) // its header: all replay needs
	} else {
		r.decode(&a.it, data)
	}
	return a
}

// ApplyLocalWith is ApplyLocal, given also entries below pos as their
// appenders handed them over (DecodeAppended), which it applies instead of
// reading them back.
func (r *Runner) ApplyLocalWith(ctx context.Context, pos uint64, data []byte, below []Appended) bool {
	done := r.applyLocal(ctx, pos, data, below)
	r.endLocal(pos, done)
	return done
}

func (r *Runner) applyLocal(ctx context.Context, pos uint64, data []byte, below []Appended) bool {
	if r.applied.Load() >= pos {
		return true
	}
	if r.tw == nil {
		return false // see Runner.tw
	}
	if !r.mu.TryLock() {
		return false
	}
	done := r.applyLocalLocked(ctx, pos, data, below)
	r.mu.Unlock()
	return done
}

// The applying goroutine's wait while local commits apply themselves.
//
// Waiting on the log's tail, the applying goroutine was woken by every
// group commit, on the committing goroutine's path (seglog's leader woke
// it after its fdatasync), and found nothing to do: the committer applies
// its own intention, and whatever precedes it. So while it has nothing to
// apply, the applying goroutine parks (park) and is woken only when
// something may be left to it:
//
//   - With no local commit under way, it arms a tail notice
//     (log.TailNotifier; a goroutine on WaitTail for a log that is only a
//     TailWaiter) for the position after the last applied: an append by
//     anyone else (the flusher alone, a checkpoint, another node) wakes it.
//   - BeginLocal disarms it: whatever is appended from then on is below
//     the committer's own position, or is appended later still, and the
//     committer applies everything up to its own position.
//   - A committer that ends without its position applied (the role was
//     taken, its append failed, an entry failed) wakes it (left).
//   - The last committer to end re-arms the notice for the position after
//     the last applied, which fires at once if anything is beyond it
//     (entries appended after the last committer's own).
//
// watchMu orders these: whoever changes inflight, or decides to sleep,
// holds it, so the applying goroutine never sleeps with no notice armed
// and no commit under way that will end and look. A notice's callback
// takes no lock (it may run inside NotifyTail or under the log's locks):
// it records the tail and pokes.

// BeginLocal says that a committing goroutine is about to append an
// intention and then call ApplyLocal (or EndLocal if its append fails).
// While any such commit is under way the applying goroutine is not woken
// by the tail: the commits apply what is appended meanwhile, and the last
// one to end looks for anything left (see park).
func (r *Runner) BeginLocal() {
	if r.tw == nil {
		return
	}
	r.watchMu.Lock()
	r.inflight++
	if r.note != nil {
		r.note() // if it fired already, park sees the commit under way
		r.note = nil
	}
	r.watchMu.Unlock()
}

// EndLocal ends a commit begun with BeginLocal whose intention was not
// appended. ApplyLocal ends it itself.
func (r *Runner) EndLocal() { r.endLocal(0, false) }

// endLocal ends a local commit: pos is its position (0: its append
// failed), done whether every position up to it was applied.
func (r *Runner) endLocal(pos uint64, done bool) {
	if r.tw != nil {
		r.watchMu.Lock()
		r.inflight--
		if pos > 0 {
			r.sawTail(pos + 1)
		}
		if !done {
			r.left = true // park takes it from here
			if pos == 0 {
				r.lost = true // where its append went, if anywhere, the log says
			}
		}
		if r.parked {
			switch {
			case r.left:
				r.pokeApplier()
			case r.inflight == 0 && r.note == nil:
				r.armLocked()
			}
		}
		r.watchMu.Unlock()
	}
	r.handBack() // the apply role back to the applying goroutine (lockApplier)
}

// armLocked arms the tail notice for the position after the last applied.
// The caller holds watchMu, and nobody applies meanwhile (the applying
// goroutine is parked, no local commit is under way).
func (r *Runner) armLocked() {
	r.note = r.tn.NotifyTail(log.Position(r.applied.Load()+1), r.notedFn)
}

// noted is the tail notice's callback: it records the tail seen (or the
// log's error) and pokes the applying goroutine. It takes no lock.
func (r *Runner) noted(tail log.Position, err error) {
	if err != nil {
		r.noteErr.CompareAndSwap(nil, &err)
	} else {
		r.sawTail(uint64(tail))
	}
	r.fired.Store(true)
	r.pokeApplier()
}

// sawTail raises hint, a tail known to have been reached, to tail.
func (r *Runner) sawTail(tail uint64) {
	for {
		h := r.hint.Load()
		if h >= tail || r.hint.CompareAndSwap(h, tail) {
			return
		}
	}
}

func (r *Runner) pokeApplier() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// park is the applying goroutine's wait for entries beyond next, without
// the apply role, on a log.TailWaiter (see above). It returns a tail that
// was reached: beyond next, unless the entries were applied meanwhile by a
// committer (the caller, back in the role, compares it with what it has
// read). An error is the context's or the log's.
func (r *Runner) park(ctx context.Context, next uint64) (log.Position, error) {
	for {
		r.watchMu.Lock()
		left, lost := r.left, r.lost
		r.left, r.lost = false, false
		if !left {
			if r.inflight > 0 {
				// The commits under way apply whatever the notice saw, or
				// the last of them to end re-arms it.
				r.fired.Store(false)
			}
			if !r.fired.Load() {
				r.sleepLocked(ctx)
				r.watchMu.Unlock()
				if err := ctx.Err(); err != nil {
					return 0, fmt.Errorf("processor: wait for the tail beyond %d: %w", next, err)
				}
				continue
			}
			r.fired.Store(false)
		}
		tail := r.hint.Load()
		r.watchMu.Unlock()
		if p := r.noteErr.Load(); p != nil {
			return 0, *p
		}
		if lost {
			// A commit whose append failed: what it, or anyone, appended
			// is below the log's tail now.
			return r.cfg.Log.Tail(ctx)
		}
		if tail > next {
			return log.Position(tail), nil
		}
		// A commit left its position (below hint, so below next): the
		// applying goroutine read it before it parked. Entries beyond hint
		// are the notice's, armed at the next sleep or by the last commit.
	}
}

// sleepLocked arms the notice if no local commit is under way and waits
// for a poke (or ctx). The caller holds watchMu; it is released while
// asleep.
func (r *Runner) sleepLocked(ctx context.Context) {
	select { // a poke from before is answered by what the caller just read
	case <-r.poke:
	default:
	}
	if r.inflight == 0 && r.note == nil {
		r.armLocked()
	}
	if !r.fired.Load() { // else it fired at once (or meanwhile): no sleep
		r.idle.Add(1)
		r.parked = true
		r.watchMu.Unlock()
		select {
		case <-r.poke:
		case <-ctx.Done():
		}
		r.watchMu.Lock()
		r.parked = false
	}
	if r.note != nil { // awake, the applying goroutine arms again before it sleeps
		r.note()
		r.note = nil
	}
}

// waitNotifier is the log.TailNotifier of a log that is only a
// log.TailWaiter: a goroutine per notice waits on WaitTail.
type waitNotifier struct {
	r  *Runner
	tw log.TailWaiter
}

func (w waitNotifier) NotifyTail(after log.Position, f func(log.Position, error)) (stop func() bool) {
	ctx, cancel := context.WithCancel(w.r.ctx)
	var state atomic.Int32 // 0 armed, 1 fired, 2 stopped
	w.r.wg.Add(1)          // the applying goroutine is running: the count is not zero
	go func() {
		defer w.r.wg.Done()
		defer cancel()
		tail, err := w.tw.WaitTail(ctx, after)
		if state.CompareAndSwap(0, 1) {
			f(tail, err)
		}
	}()
	return func() bool {
		ok := state.CompareAndSwap(0, 2)
		cancel()
		return ok
	}
}

func (r *Runner) applyLocalLocked(ctx context.Context, pos uint64, data []byte, below []Appended) bool {
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
		} else if a := appendedAt(below, s.next); a != nil {
			it = a.it
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
				if it.early {
					r.earlies.Add(1)
				}
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

// appendedAt returns the entry at pos in below, or nil.
func appendedAt(below []Appended, pos uint64) *Appended {
	for i := range below {
		if below[i].ok && below[i].it.pos == pos {
			return &below[i]
		}
	}
	return nil
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
