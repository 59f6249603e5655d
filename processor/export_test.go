package processor

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
