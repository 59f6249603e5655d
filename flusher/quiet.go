package flusher

import (
	"sync/atomic"
	"time"
)

// restSignals say when the flusher has looked at its work and decided to
// wait, so that a test can check that something does NOT happen (no
// afterimage of a remote delta, no return from a blocked Flush) against a
// state the flusher reached instead of against a time window, which a
// loaded machine can make pass vacuously. They are passive: nothing in the
// flusher reads them, and they cost an atomic add or store next to a lock
// or a wait the flusher takes anyway.
type restSignals struct {
	// writing counts deltas taken off the queue whose write has not
	// returned. It grows under mu with the pop, so queue and writing read
	// together under mu never miss a delta between them.
	writing atomic.Int32
	// serialWaits is, in serial mode, the intention whose write waits for
	// a confirmation (of the deltas before it, or of its own afterimage);
	// 0 while the writer is not waiting for one.
	serialWaits atomic.Uint64
	// flushWaits counts the times a Flush found a delta it needs
	// unconfirmed and went to wait.
	flushWaits atomic.Uint64
	// takeoverPass is when the last takeover pass began (Unix ns): every
	// delta it left alone had been pending for less than TakeoverDelay at
	// that time, or was confirmed or queued already.
	takeoverPass atomic.Int64
}

// quiescent reports whether the flusher is at rest: nothing queued and no
// write under way. Until Produced, Flush or a takeover pass queues a delta,
// its writers append nothing (Seal appends on its caller's goroutine); any
// afterimage they wrote before is in the log.
func (f *Flusher) quiescent() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queue) == 0 && f.sig.writing.Load() == 0
}

// serialWaitingOn returns the intention whose write the serial writer holds
// back until a confirmation arrives, or 0.
func (f *Flusher) serialWaitingOn() uint64 { return f.sig.serialWaits.Load() }

// flushWaits returns how many times a Flush went to wait.
func (f *Flusher) flushWaits() uint64 { return f.sig.flushWaits.Load() }

// lastTakeoverPass returns when the last takeover pass began (zero before
// the first).
func (f *Flusher) lastTakeoverPass() time.Time {
	ns := f.sig.takeoverPass.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
