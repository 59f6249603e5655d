package seglog

import (
	"fmt"
	"sync/atomic"

	"github.com/cruzlog/cruzdb/log"
)

// A tailNote is a NotifyTail call waiting for the tail to pass after.
type tailNote struct {
	after uint64
	f     func(log.Position, error)
	state atomic.Int32 // noteArmed, then noteFired or noteStopped
}

const (
	noteArmed int32 = iota
	noteFired
	noteStopped
)

var _ log.TailNotifier = (*Log)(nil)

// NotifyTail implements log.TailNotifier: f is called once the tail is
// beyond after (at once if it already is), by the goroutine that moved it
// (a group's committer, a trim) with segMu held, or at Close with an error
// wrapping log.ErrClosed. Unlike WaitTail, no goroutine waits: a group
// commit with no note beyond its tail wakes nobody.
func (l *Log) NotifyTail(after log.Position, f func(log.Position, error)) (stop func() bool) {
	n := &tailNote{after: uint64(after), f: f}
	l.segMu.Lock()
	closed, tail := l.closed, l.tail
	if !closed && tail <= n.after {
		// Drop the notes stopped since the tail last moved, so that arming
		// and stopping without appends does not grow the list.
		l.notes = dropStopped(l.notes)
		l.notes = append(l.notes, n)
	}
	l.segMu.Unlock()
	switch {
	case closed:
		n.fire(0, fmt.Errorf("seglog: notify beyond %d: %w", after, log.ErrClosed))
	case tail > n.after:
		n.fire(log.Position(tail), nil)
	}
	return n.stop
}

func (n *tailNote) fire(tail log.Position, err error) {
	if n.state.CompareAndSwap(noteArmed, noteFired) {
		n.f(tail, err)
	}
}

func (n *tailNote) stop() bool { return n.state.CompareAndSwap(noteArmed, noteStopped) }

// notifyLocked calls the notes the tail has passed (all of them once the
// log is closed) and keeps the others. The caller holds segMu.
func (l *Log) notifyLocked() {
	if len(l.notes) == 0 {
		return
	}
	keep := l.notes[:0]
	for _, n := range l.notes {
		switch {
		case n.state.Load() != noteArmed:
		case l.closed:
			n.fire(0, fmt.Errorf("seglog: notify beyond %d: %w", n.after, log.ErrClosed))
		case l.tail > n.after:
			n.fire(log.Position(l.tail), nil)
		default:
			keep = append(keep, n)
		}
	}
	clear(l.notes[len(keep):])
	l.notes = keep
}

func dropStopped(notes []*tailNote) []*tailNote {
	keep := notes[:0]
	for _, n := range notes {
		if n.state.Load() == noteArmed {
			keep = append(keep, n)
		}
	}
	clear(notes[len(keep):])
	return keep
}
