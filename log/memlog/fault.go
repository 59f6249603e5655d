package memlog

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// Op names a log operation, for the Latency and Inject hooks.
type Op uint8

// The operations of a log. Close is never hooked.
const (
	OpAppend Op = iota
	OpRead
	OpFill
	OpTrim
	OpTail
	numOps
)

var opNames = [numOps]string{"append", "read", "fill", "trim", "tail"}

// String returns the operation's name in lower case ("append", "read", ...).
func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Call describes one operation to the Inject hook.
type Call struct {
	Op Op
	// Pos is the position concerned: for Append, the position just taken;
	// for Trim, the trim point; zero for Tail.
	Pos log.Position
	// Seq numbers the calls of Op on this log, from 0, in the order they
	// were made. It is what a test uses to pick "the third append".
	Seq uint64
	// Attempt is 0 for the first position an Append takes and counts up
	// each time that Append loses its position to a Fill or Trim and takes
	// another. Always 0 for other operations.
	Attempt int
}

// Fault tells the log what to do to one call. The zero Fault does nothing.
//
// Effects are applied in this order: Err (without Drop or AckLost) fails the
// call at once, with no effect on the log; otherwise the call waits Delay
// (added to the configured latencies), then waits at Hold, then takes effect
// (or, with Drop, does not) and returns.
type Fault struct {
	// Err fails the call with an error wrapping Err and naming the
	// position. An Append failed this way takes no position (it failed
	// before reaching the sequencer). With Drop or AckLost, Err is the
	// error returned; if nil, ErrInjected is used.
	Err error
	// Drop (Append only) keeps the position taken but never writes it, as
	// a writer that crashed after sequencing does: the position is a hole
	// until someone fills it, and Append returns Err.
	Drop bool
	// AckLost lets the call take effect but returns Err to the caller, as a
	// lost reply does: an appended entry is in the log although Append
	// failed, a fill or trim is done although it reported an error.
	AckLost bool
	// Hold parks the call at the gate until the gate is released, the
	// call's context ends or the log is closed. A held Append owns its
	// position meanwhile and leaves a hole below the tail; if the position
	// is filled or trimmed before the release, the late write loses and
	// Append takes a new position (CORFU semantics: the client retries with
	// a fresh position from the sequencer), calling Inject again with
	// Attempt+1.
	Hold *Gate
	// Delay is extra latency for this call, added to AppendLatency or
	// ReadLatency and to what Options.Latency returns.
	Delay time.Duration
}

// zero reports whether f does nothing. (Fault is not compared with == since
// Err may hold an incomparable dynamic type.)
func (f Fault) zero() bool {
	return f.Err == nil && !f.Drop && !f.AckLost && f.Hold == nil && f.Delay == 0
}

// Gate holds calls until it is released. A gate may hold any number of calls;
// once released, it lets every call through, including later ones.
type Gate struct {
	release  chan struct{}
	held     chan struct{}
	relOnce  sync.Once
	heldOnce sync.Once
	waiting  atomic.Int64
}

// NewGate returns a closed (holding) gate.
func NewGate() *Gate {
	return &Gate{release: make(chan struct{}), held: make(chan struct{})}
}

// Release lets every held call, and every later one, through. Releasing twice
// is harmless.
func (g *Gate) Release() {
	g.relOnce.Do(func() { close(g.release) })
}

// Held returns a channel closed as soon as a call has reached the gate. For an
// Append, the position is taken by then (it is visible as a hole).
func (g *Gate) Held() <-chan struct{} {
	return g.held
}

// Waiting returns the number of calls parked at the gate now.
func (g *Gate) Waiting() int {
	return int(g.waiting.Load())
}

// wait parks until the gate is released, ctx ends or done is closed.
func (g *Gate) wait(ctx context.Context, done <-chan struct{}) error {
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	g.heldOnce.Do(func() { close(g.held) })
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return log.ErrClosed
	}
}
