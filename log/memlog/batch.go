package memlog

import (
	"context"
	"fmt"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

var _ log.BatchAppender = (*Log)(nil)

// AppendBatch appends copies of the entries in order as one round trip and
// returns their positions, ascending. It implements log.BatchAppender.
//
// The positions are taken together (consecutive, except where fills ahead of
// the tail are skipped), the append latency is paid once (the largest any
// entry draws), and the entries land together. Each entry is one call for the
// hooks, with its own Seq, so a fault can hit one entry of a batch:
//
//   - Err (failure before sequencing) on any entry fails the whole batch; the
//     positions already taken for it become junk, and nothing is written;
//   - Drop on entry i: the writer died mid-batch, so entries before i land
//     and i and the rest stay holes;
//   - AckLost on any entry: every entry lands, the caller gets an error;
//   - Hold: the batch waits for each entry's gate in turn, after the latency.
//
// If an entry's position was filled or trimmed while the batch was in flight,
// that entry and every later one are appended again one by one (after the
// positions they held and never wrote are filled), so the positions stay
// ascending in the order given. A batch with an entry over
// log.MaxEntrySize is refused whole.
func (l *Log) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	ctx = ctxOf(ctx)
	for _, d := range data {
		if len(d) > log.MaxEntrySize {
			if err := l.checkClosed(); err != nil {
				return nil, fmt.Errorf("memlog: append: %w", err)
			}
			return nil, fmt.Errorf("memlog: append of %d bytes (limit %d): %w", len(d), log.MaxEntrySize, log.ErrTooLarge)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memlog: append: %w", err)
	}
	n := len(data)
	bufs := make([][]byte, n)
	seqs := make([]uint64, n)
	for i, d := range data {
		bufs[i] = append([]byte(nil), d...)
		seqs[i] = l.calls[OpAppend].Add(1) - 1
	}
	pos := make([]log.Position, n)
	faults := make([]Fault, n)
	slow := l.slow(OpAppend)

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("memlog: append: %w", log.ErrClosed)
	}
	var wait bool
	var delay time.Duration
	for i := range n {
		p, err := l.takeLocked()
		if err != nil {
			l.junkLocked(pos[:i])
			l.mu.Unlock()
			return nil, err
		}
		pos[i] = p
		if !slow {
			continue
		}
		f, d := l.hooks(Call{Op: OpAppend, Pos: p, Seq: seqs[i]})
		if f.Err != nil && !f.Drop && !f.AckLost {
			l.junkLocked(pos[:i+1])
			l.mu.Unlock()
			return nil, fmt.Errorf("memlog: append: %w", f.Err)
		}
		faults[i] = f
		delay = max(delay, d)
		wait = wait || d > 0 || f.Hold != nil || f.Drop
	}
	if !wait {
		for i, p := range pos {
			*l.at(p) = slot{data: bufs[i], st: stData}
		}
		l.mu.Unlock()
		return l.ackBatch(pos, faults)
	}
	l.inFlight.Add(int64(n))
	l.mu.Unlock()

	err := sleep(ctx, l.done, delay)
	land := n
	for i := 0; i < n && err == nil; i++ {
		if f := faults[i]; f.Hold != nil {
			err = f.Hold.wait(ctx, l.done)
		}
		if err == nil && faults[i].Drop {
			err, land = faults[i].Err, i
		}
	}
	l.mu.Lock()
	l.inFlight.Add(-int64(n))
	if l.closed {
		err, land = log.ErrClosed, n
	}
	if err != nil && land == n {
		// The writer gave up (context, close): nothing lands, and its
		// positions stay holes, as with a failed Append.
		l.mu.Unlock()
		return nil, wrap(OpAppend, pos[0], err)
	}
	for i := range land {
		p := pos[i]
		if p >= l.trim && l.at(p).st == stHole {
			*l.at(p) = slot{data: bufs[i], st: stData}
			continue
		}
		// Lost to a fill or trim: the rest must land after it to keep
		// the order, so give up the positions still held and append
		// them again.
		l.junkLocked(pos[i+1 : land])
		l.mu.Unlock()
		l.retries.Add(1)
		return l.appendRest(ctx, pos, bufs, seqs, faults, i, land, err)
	}
	l.mu.Unlock()
	if err != nil { // a dropped entry: the ones before it landed
		return nil, wrap(OpAppend, pos[land], err)
	}
	return l.ackBatch(pos, faults)
}

// appendRest appends entries from..land-1 again one at a time, after an
// entry of the batch lost its position; err is the drop that ended the batch
// at land, if any.
func (l *Log) appendRest(ctx context.Context, pos []log.Position, bufs [][]byte, seqs []uint64, faults []Fault, from, land int, err error) ([]log.Position, error) {
	for i := from; i < land; i++ {
		if cerr := ctx.Err(); cerr != nil {
			return nil, wrap(OpAppend, pos[i], cerr)
		}
		p, aerr := l.appendSlow(ctx, seqs[i], bufs[i])
		if aerr != nil {
			return nil, aerr
		}
		pos[i] = p
	}
	if err != nil {
		return nil, wrap(OpAppend, pos[land], err)
	}
	return l.ackBatch(pos, faults)
}

// ackBatch returns the positions, or the error of a lost acknowledgement.
func (l *Log) ackBatch(pos []log.Position, faults []Fault) ([]log.Position, error) {
	for i, f := range faults {
		if f.AckLost {
			return nil, wrap(OpAppend, pos[i], f.Err)
		}
	}
	return pos, nil
}

// junkLocked fills positions this caller took and did not write. l.mu is
// held.
func (l *Log) junkLocked(pos []log.Position) {
	for _, p := range pos {
		if p >= l.trim && l.at(p).st == stHole {
			l.at(p).st = stJunk
		}
	}
}
