package processor

import "fmt"

// IdleWaits is how many waits for a wake-up (Notify or the poll) the
// runner's reader has begun.
func (r *Runner) IdleWaits() uint64 { return r.idle.Load() }

// ReplayPrefix is how much of an entry replay reads first.
const ReplayPrefix = replayPrefix

// CatchUps is how many catch-up readers the runner started.
func (r *Runner) CatchUps() uint64 { return r.catchUps.Load() }

// CatchUpBacklog is the backlog above which the runner reads ahead on a
// second goroutine.
const CatchUpBacklog = catchUpBacklog

// Parked reports whether the applying goroutine is parked, waiting for a
// poke (park).
func (r *Runner) Parked() bool {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	return r.parked
}

// ParkState describes the applying goroutine's park, for failing tests.
func (r *Runner) ParkState() string {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	return fmt.Sprintf("applied %d inflight %d parked %v left %v armed %v fired %v hint %d", r.applied.Load(), r.inflight, r.parked, r.left, r.note != nil, r.fired.Load(), r.hint.Load())
}
