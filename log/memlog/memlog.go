package memlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// Options configure a Log. The zero value (or a nil *Options) gives a log
// with no latency and no faults.
type Options struct {
	// AppendLatency is added to every Append attempt, after the position is
	// taken and before the data lands: appends in flight leave holes below
	// the tail for that long.
	AppendLatency time.Duration
	// ReadLatency is added to every Read, before the position is looked up.
	ReadLatency time.Duration
	// Latency, if set, is called once per operation (once per attempt for
	// Append) and its result is added to that operation's latency. r is the
	// log's random source, seeded from Seed.
	Latency func(op Op, r *rand.Rand) time.Duration
	// Inject, if set, is called once per operation (once per attempt for
	// Append, after the position is taken) and the Fault it returns is
	// applied to that operation. It can be replaced at run time with
	// SetInject. r is the log's random source, seeded from Seed. For Append
	// it runs while the log's lock is held: it must not call the log's
	// operations (Stats and SetInject are fine).
	Inject func(c Call, r *rand.Rand) Fault
	// Seed seeds the random source handed to Latency and Inject.
	Seed uint64
}

// Stats counts the operations a Log has seen. Calls are counted when they
// are made, whether they succeed or not.
type Stats struct {
	Appends uint64 // Append calls
	Reads   uint64 // Read calls
	Fills   uint64 // Fill calls
	Trims   uint64 // Trim calls
	Tails   uint64 // Tail calls
	// Retries counts Append attempts that found their position filled or
	// trimmed when the data was about to land, and so took another one.
	Retries uint64
	// Injected counts non-zero Faults returned by Inject.
	Injected uint64
	// InFlight is the number of Append attempts that hold a position but
	// have not written it yet (waiting out latency or held at a Gate).
	InFlight int64
}

// ErrInjected is returned (wrapped) by an operation that a Fault dropped
// without naming an error of its own.
var ErrInjected = errors.New("memlog: injected fault")

type state uint8

const (
	stHole state = iota // below the tail, taken, not written (yet)
	stData
	stJunk
)

type slot struct {
	data []byte
	st   state
}

const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
)

type chunk [chunkSize]slot

// at returns the slot of p, which must be in [l.trim, l.tail) or be the
// position being taken by takeLocked.
func (l *Log) at(p log.Position) *slot {
	return &l.chunks[p>>chunkBits-l.c0][p&(chunkSize-1)]
}

type injectHook struct {
	f func(Call, *rand.Rand) Fault
}

// Log is an in-memory shared log. It implements log.Log and is safe for
// concurrent use. Create it with New.
type Log struct {
	mu sync.RWMutex
	// Positions live in fixed-size chunks, so appends never copy the
	// entries already there and trims free whole chunks. chunks[i] holds
	// positions from (c0+i)*chunkSize on. Slots at or beyond the tail are
	// zero (holes with no data).
	chunks []*chunk
	c0     log.Position
	trim   log.Position              // positions below it are trimmed
	tail   log.Position              // the next position to be assigned; trim <= tail
	ahead  map[log.Position]struct{} // filled positions at or beyond the tail
	closed bool
	done   chan struct{} // closed by Close: wakes waiting calls

	appendLatency time.Duration
	readLatency   time.Duration
	latency       func(Op, *rand.Rand) time.Duration
	seed          uint64
	inject        atomic.Pointer[injectHook]

	hookMu sync.Mutex // serializes Latency and Inject; guards rng
	rng    *rand.Rand

	calls    [numOps]atomic.Uint64
	retries  atomic.Uint64
	injected atomic.Uint64
	inFlight atomic.Int64
}

var _ log.Log = (*Log)(nil)

// New returns an empty log. opts may be nil.
func New(opts *Options) *Log {
	var o Options
	if opts != nil {
		o = *opts
	}
	l := &Log{
		done:          make(chan struct{}),
		appendLatency: o.AppendLatency,
		readLatency:   o.ReadLatency,
		latency:       o.Latency,
		seed:          o.Seed,
		rng:           newRand(o.Seed),
	}
	if o.Inject != nil {
		l.inject.Store(&injectHook{f: o.Inject})
	}
	return l
}

func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x6372757a6c6f67)) // "cruzlog"
}

// SetInject replaces the fault hook (nil removes it) and returns the previous
// one. It is safe to call at any time, also from within a hook; calls already
// past their hook are not affected.
func (l *Log) SetInject(f func(c Call, r *rand.Rand) Fault) (prev func(c Call, r *rand.Rand) Fault) {
	var h *injectHook
	if f != nil {
		h = &injectHook{f: f}
	}
	if old := l.inject.Swap(h); old != nil {
		prev = old.f
	}
	return prev
}

// Stats returns the operation counters. It is safe to call at any time, also
// from within a hook.
func (l *Log) Stats() Stats {
	return Stats{
		Appends:  l.calls[OpAppend].Load(),
		Reads:    l.calls[OpRead].Load(),
		Fills:    l.calls[OpFill].Load(),
		Trims:    l.calls[OpTrim].Load(),
		Tails:    l.calls[OpTail].Load(),
		Retries:  l.retries.Load(),
		Injected: l.injected.Load(),
		InFlight: l.inFlight.Load(),
	}
}

// slow reports whether calls of op must go through the hook path.
func (l *Log) slow(op Op) bool {
	switch {
	case l.latency != nil, l.inject.Load() != nil:
		return true
	case op == OpAppend:
		return l.appendLatency > 0
	case op == OpRead:
		return l.readLatency > 0
	}
	return false
}

// hooks runs the Latency and Inject hooks for one call and returns the fault
// and the total time the call must wait. For Append it runs under l.mu.
func (l *Log) hooks(c Call) (Fault, time.Duration) {
	var d time.Duration
	switch c.Op {
	case OpAppend:
		d = l.appendLatency
	case OpRead:
		d = l.readLatency
	}
	h := l.inject.Load()
	if l.latency == nil && h == nil {
		return Fault{}, d
	}
	var f Fault
	l.hookMu.Lock()
	if l.latency != nil {
		d += l.latency(c.Op, l.rng)
	}
	if h != nil {
		f = h.f(c, l.rng)
	}
	l.hookMu.Unlock()
	if !f.zero() {
		l.injected.Add(1)
		if (f.Drop || f.AckLost) && f.Err == nil {
			f.Err = ErrInjected
		}
	}
	d += f.Delay
	return f, d
}

// pause waits d, then for f.Hold; it returns a non-nil error if the context
// ended or the log was closed meanwhile.
func (l *Log) pause(ctx context.Context, d time.Duration, f Fault) error {
	if err := sleep(ctx, l.done, d); err != nil {
		return err
	}
	if f.Hold != nil {
		return f.Hold.wait(ctx, l.done)
	}
	return nil
}

// before runs the hooks of a Read, Fill, Trim or Tail call and waits as
// they say. A non-nil error is final and already wrapped.
func (l *Log) before(ctx context.Context, c Call) (Fault, error) {
	if err := l.checkClosed(); err != nil {
		return Fault{}, wrap(c.Op, c.Pos, err)
	}
	f, d := l.hooks(c)
	if f.Err != nil && !f.AckLost {
		return f, wrap(c.Op, c.Pos, f.Err)
	}
	if err := l.pause(ctx, d, f); err != nil {
		return f, wrap(c.Op, c.Pos, err)
	}
	return f, nil
}

func (l *Log) checkClosed() error {
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return log.ErrClosed
	}
	return nil
}

// wrap names the operation and the position in err.
func wrap(op Op, pos log.Position, err error) error {
	switch op {
	case OpTrim:
		return fmt.Errorf("memlog: trim to position %d: %w", pos, err)
	case OpTail:
		return fmt.Errorf("memlog: tail: %w", err)
	}
	return fmt.Errorf("memlog: %s position %d: %w", op, pos, err)
}

func ctxOf(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// Append writes a copy of data at the next free position and returns it.
// With latency or a held Fault, the position is taken first and stays a hole
// until the data lands; if it is filled or trimmed meanwhile, Append takes
// another position (CORFU semantics) and tries again.
func (l *Log) Append(ctx context.Context, data []byte) (log.Position, error) {
	ctx = ctxOf(ctx)
	seq := l.calls[OpAppend].Add(1) - 1
	if len(data) > log.MaxEntrySize {
		if err := l.checkClosed(); err != nil {
			return 0, fmt.Errorf("memlog: append: %w", err)
		}
		return 0, fmt.Errorf("memlog: append of %d bytes (limit %d): %w", len(data), log.MaxEntrySize, log.ErrTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memlog: append: %w", err)
	}
	buf := make([]byte, len(data))
	copy(buf, data)

	if !l.slow(OpAppend) {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return 0, fmt.Errorf("memlog: append: %w", log.ErrClosed)
		}
		p, err := l.takeLocked()
		if err != nil {
			l.mu.Unlock()
			return 0, err
		}
		*l.at(p) = slot{data: buf, st: stData}
		l.mu.Unlock()
		return p, nil
	}
	return l.appendSlow(ctx, seq, buf)
}

func (l *Log) appendSlow(ctx context.Context, seq uint64, buf []byte) (log.Position, error) {
	for attempt := 0; ; attempt++ {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return 0, fmt.Errorf("memlog: append: %w", log.ErrClosed)
		}
		p, err := l.takeLocked()
		if err != nil {
			l.mu.Unlock()
			return 0, err
		}
		f, d := l.hooks(Call{Op: OpAppend, Pos: p, Seq: seq, Attempt: attempt})
		if f.Err != nil && !f.Drop && !f.AckLost {
			// Fail before sequencing: give the position back. Nobody
			// else has seen it, since l.mu was held all along.
			l.tail--
			l.mu.Unlock()
			return 0, fmt.Errorf("memlog: append: %w", f.Err)
		}
		if d <= 0 && f.Hold == nil && !f.Drop {
			*l.at(p) = slot{data: buf, st: stData}
			l.mu.Unlock()
			return l.ackAppend(p, f)
		}
		l.inFlight.Add(1)
		l.mu.Unlock()

		err = l.pause(ctx, d, f)
		if err == nil && f.Drop {
			err = f.Err
		}
		if err != nil {
			// The writer gives up (or died): its position stays a hole.
			l.inFlight.Add(-1)
			return 0, wrap(OpAppend, p, err)
		}

		l.mu.Lock()
		l.inFlight.Add(-1)
		if l.closed {
			l.mu.Unlock()
			return 0, wrap(OpAppend, p, log.ErrClosed)
		}
		if p >= l.trim && l.at(p).st == stHole {
			*l.at(p) = slot{data: buf, st: stData}
			l.mu.Unlock()
			return l.ackAppend(p, f)
		}
		// Filled or trimmed while in flight: the late write loses.
		l.mu.Unlock()
		l.retries.Add(1)
		if err := ctx.Err(); err != nil {
			return 0, wrap(OpAppend, p, err)
		}
	}
}

func (l *Log) ackAppend(p log.Position, f Fault) (log.Position, error) {
	if f.AckLost {
		return 0, wrap(OpAppend, p, f.Err)
	}
	return p, nil
}

// takeLocked assigns the next position, skipping positions filled ahead of
// the tail (they become junk), and leaves it a hole.
func (l *Log) takeLocked() (log.Position, error) {
	for {
		p := l.tail
		if p == math.MaxUint64 {
			return 0, fmt.Errorf("memlog: append: no position left after %d", p)
		}
		if c := p >> chunkBits; c-l.c0 == log.Position(len(l.chunks)) {
			l.chunks = append(l.chunks, new(chunk))
		}
		l.tail++
		if len(l.ahead) > 0 {
			if _, ok := l.ahead[p]; ok {
				delete(l.ahead, p)
				l.at(p).st = stJunk
				continue
			}
		}
		return p, nil
	}
}

// Read returns a copy of the data at pos.
func (l *Log) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	data, err := l.read(ctx, pos)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(data))
	copy(out, data)
	return out, nil
}

// ReadRange implements log.RangeReader. It is a Read (counted, delayed and
// faulted as one) that copies only the range.
func (l *Log) ReadRange(ctx context.Context, pos log.Position, off, n int) ([]byte, int, error) {
	if off < 0 || n < 0 {
		return nil, 0, fmt.Errorf("memlog: read position %d: range of %d bytes at %d", pos, n, off)
	}
	data, err := l.read(ctx, pos)
	if err != nil {
		return nil, 0, err
	}
	lo := min(off, len(data))
	hi := lo + min(n, len(data)-lo)
	out := make([]byte, hi-lo)
	copy(out, data[lo:hi])
	return out, len(data), nil
}

// read returns the data at pos, which the caller must not modify or keep.
func (l *Log) read(ctx context.Context, pos log.Position) ([]byte, error) {
	ctx = ctxOf(ctx)
	seq := l.calls[OpRead].Add(1) - 1
	if err := ctx.Err(); err != nil {
		return nil, wrap(OpRead, pos, err)
	}
	var f Fault
	if l.slow(OpRead) {
		var err error
		if f, err = l.before(ctx, Call{Op: OpRead, Pos: pos, Seq: seq}); err != nil {
			return nil, err
		}
	}
	var s slot
	var err error
	l.mu.RLock()
	switch {
	case l.closed:
		err = log.ErrClosed
	case pos < l.trim:
		err = log.ErrTrimmed
	case pos >= l.tail:
		if _, ok := l.ahead[pos]; ok {
			err = log.ErrFilled
		} else {
			err = log.ErrNotWritten
		}
	default:
		s = *l.at(pos)
		switch s.st {
		case stHole:
			err = log.ErrNotWritten
		case stJunk:
			err = log.ErrFilled
		}
	}
	l.mu.RUnlock()
	if err == nil && f.AckLost {
		err = f.Err
	}
	if err != nil {
		return nil, wrap(OpRead, pos, err)
	}
	return s.data, nil
}

// Fill turns pos into junk unless it holds data. It is idempotent on junk and
// on trimmed positions and allowed at or beyond the tail.
func (l *Log) Fill(ctx context.Context, pos log.Position) error {
	ctx = ctxOf(ctx)
	seq := l.calls[OpFill].Add(1) - 1
	if err := ctx.Err(); err != nil {
		return wrap(OpFill, pos, err)
	}
	var f Fault
	if l.slow(OpFill) {
		var err error
		if f, err = l.before(ctx, Call{Op: OpFill, Pos: pos, Seq: seq}); err != nil {
			return err
		}
	}
	var err error
	l.mu.Lock()
	switch {
	case l.closed:
		err = log.ErrClosed
	case pos < l.trim:
		// Trimmed: nothing can land there anyway.
	case pos >= l.tail:
		if l.ahead == nil {
			l.ahead = make(map[log.Position]struct{})
		}
		l.ahead[pos] = struct{}{}
	default:
		s := l.at(pos)
		switch s.st {
		case stHole:
			s.st = stJunk
		case stData:
			err = log.ErrWritten
		}
	}
	l.mu.Unlock()
	if err == nil && f.AckLost {
		err = f.Err
	}
	if err != nil {
		return wrap(OpFill, pos, err)
	}
	return nil
}

// Trim reclaims every position below pos. Trimming beyond the tail moves the
// tail up to pos, since positions below it can never be assigned.
func (l *Log) Trim(ctx context.Context, pos log.Position) error {
	ctx = ctxOf(ctx)
	seq := l.calls[OpTrim].Add(1) - 1
	if err := ctx.Err(); err != nil {
		return wrap(OpTrim, pos, err)
	}
	var f Fault
	if l.slow(OpTrim) {
		var err error
		if f, err = l.before(ctx, Call{Op: OpTrim, Pos: pos, Seq: seq}); err != nil {
			return err
		}
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return wrap(OpTrim, pos, log.ErrClosed)
	}
	if pos > l.trim {
		l.trimLocked(pos)
	}
	l.mu.Unlock()
	if f.AckLost {
		return wrap(OpTrim, pos, f.Err)
	}
	return nil
}

// trimLocked trims below pos > l.trim.
func (l *Log) trimLocked(pos log.Position) {
	if pos >= l.tail {
		clear(l.chunks)
		l.chunks = l.chunks[:0]
		l.c0 = pos >> chunkBits
		l.tail = pos
		for p := range l.ahead {
			if p < pos {
				delete(l.ahead, p)
			}
		}
	} else {
		// Free the whole chunks below pos, and the data below it in the
		// chunk that holds it.
		k := pos>>chunkBits - l.c0
		clear(l.chunks[:k])
		l.chunks = l.chunks[k:]
		l.c0 += k
		first := max(l.trim, l.c0<<chunkBits)
		for p := first; p < pos; p++ {
			*l.at(p) = slot{}
		}
	}
	l.trim = pos
}

// Tail returns the next position to be assigned.
func (l *Log) Tail(ctx context.Context) (log.Position, error) {
	ctx = ctxOf(ctx)
	seq := l.calls[OpTail].Add(1) - 1
	if err := ctx.Err(); err != nil {
		return 0, wrap(OpTail, 0, err)
	}
	var f Fault
	if l.slow(OpTail) {
		var err error
		if f, err = l.before(ctx, Call{Op: OpTail, Seq: seq}); err != nil {
			return 0, err
		}
	}
	l.mu.RLock()
	closed := l.closed
	tail := l.tail
	l.mu.RUnlock()
	switch {
	case closed:
		return 0, wrap(OpTail, 0, log.ErrClosed)
	case f.AckLost:
		return 0, wrap(OpTail, 0, f.Err)
	}
	return tail, nil
}

// Close closes the log. Calls waiting out latency or held at a Gate return
// ErrClosed; appends among them leave their positions as holes. Closing a
// closed log returns an error wrapping log.ErrClosed, like every other call.
// The contents stay available to CrashClone.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("memlog: close: %w", log.ErrClosed)
	}
	l.closed = true
	close(l.done)
	return nil
}

// CrashClone returns an independent log holding what a crash at this instant
// leaves: every written and filled position (also those filled beyond the
// tail), the trim point and the tail. Appends still in flight are lost: their
// positions stay holes in the clone forever. The clone is open even if l is
// closed, has l's latency options and seed (a fresh random source from it;
// the Latency function itself is shared, so both logs may call it), no
// Inject hook (arm one with SetInject) and zeroed Stats. l keeps running
// unaffected.
func (l *Log) CrashClone() *Log {
	c := &Log{
		done:          make(chan struct{}),
		appendLatency: l.appendLatency,
		readLatency:   l.readLatency,
		latency:       l.latency,
		seed:          l.seed,
		rng:           newRand(l.seed),
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	c.c0, c.trim, c.tail = l.c0, l.trim, l.tail
	// Data slices are never modified once written, so they can be shared;
	// the slots are copied, since holes change.
	c.chunks = make([]*chunk, len(l.chunks))
	for i, ch := range l.chunks {
		cp := *ch
		c.chunks[i] = &cp
	}
	if len(l.ahead) > 0 {
		c.ahead = make(map[log.Position]struct{}, len(l.ahead))
		for p := range l.ahead {
			c.ahead[p] = struct{}{}
		}
	}
	return c
}
