package boltlog

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cruzlog/cruzdb/log"
)

type opKind uint8

const (
	opAppend opKind = iota
	opFill
	opTrim
)

// Request states: the token holder claims a queued request, or its waiter
// cancels it (context done) before that; whoever wins the CAS owns the
// outcome.
const (
	stQueued int32 = iota
	stClaimed
	stCancelled
)

type request struct {
	op    opKind
	data  []byte       // opAppend
	pos   log.Position // target of fill/trim; result of append
	err   error
	state atomic.Int32
	done  chan struct{} // cap 1; signalled once the outcome is set
	write bool          // token holder: this request writes in the current tx
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

func getRequest(op opKind) *request {
	r := requestPool.Get().(*request)
	r.op = op
	r.state.Store(stQueued)
	return r
}

func putRequest(r *request) {
	r.data, r.err, r.pos, r.write = nil, nil, 0, false
	requestPool.Put(r)
}

func (r *request) complete() { r.done <- struct{}{} }

// submit queues r and sees to it that a group takes it. If no group is being
// committed, the caller commits one itself, right away and on its own
// goroutine: a lone appender pays no goroutine handoff, only bbolt's commit.
// Otherwise it wakes the committer goroutine, which takes r in the next group
// once the token is free.
func (l *Log) submit(r *request) error { return l.submitAll(r) }

// submitAll queues rs together, so that one group holds them all (unless
// MaxGroupBytes cuts the group between them), in order.
func (l *Log) submitAll(rs ...*request) error {
	l.mu.Lock()
	if l.shut {
		l.mu.Unlock()
		return log.ErrClosed
	}
	if l.failed != nil {
		err := l.failed
		l.mu.Unlock()
		return err
	}
	l.queue = append(l.queue, rs...)
	l.mu.Unlock()
	select {
	case <-l.token:
		// The group holds rs, unless MaxGroupBytes cut it short before; the
		// committer goroutine then takes what is left.
		l.commitNext()
		l.token <- struct{}{}
		l.mu.Lock()
		more := len(l.queue) > 0
		l.mu.Unlock()
		if more {
			l.signal()
		}
	default:
		l.signal()
	}
	return nil
}

// signal wakes the committer goroutine.
func (l *Log) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// wait blocks until r has an outcome, or until ctx is done while r is still
// queued, in which case r is withdrawn (never written) and ctx's error is
// returned. A request already taken into a transaction is waited for: its
// outcome is decided by that commit.
func (l *Log) wait(ctx context.Context, r *request) (cancelled error) {
	done := ctx.Done()
	if done == nil {
		<-r.done
		return nil
	}
	select {
	case <-r.done:
		return nil
	case <-done:
		if r.state.CompareAndSwap(stQueued, stCancelled) {
			return ctx.Err() // the group taker drops r; it is not pooled
		}
		<-r.done
		return nil
	}
}

func (l *Log) opError(r *request, err error) error {
	switch r.op {
	case opAppend:
		if r.write {
			return fmt.Errorf("boltlog: append at position %d: %w", r.pos, err)
		}
		return fmt.Errorf("boltlog: append: %w", err)
	case opFill:
		return fmt.Errorf("boltlog: fill position %d: %w", r.pos, err)
	default:
		return fmt.Errorf("boltlog: trim position %d: %w", r.pos, err)
	}
}

// setFailed records a write failure. From then on every write is refused.
func (l *Log) setFailed(cause error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		l.failed = fmt.Errorf("%s: commit failed, nothing of that commit is acknowledged, and the log refuses writes until reopened: %w", l.path, cause)
	}
	return l.failed
}

// committer commits the groups of requests that arrive while another group
// is being committed, until Close.
func (l *Log) committer() {
	defer close(l.committerDone)
	for {
		select {
		case <-l.wake:
		case <-l.stop:
			return
		}
		select {
		case <-l.token:
		case <-l.stop:
			return
		}
		for l.commitNext() {
			// Let the requesters just woken run before taking the next
			// group: those that append again join it, instead of waiting a
			// whole commit for the one after. This waits for no timer, only
			// for goroutines that are already runnable.
			runtime.Gosched()
		}
		l.token <- struct{}{}
	}
}

// commitNext takes every request waiting at the moment (up to MaxGroupBytes
// of entry data) and commits them as one group. It reports false if nothing
// was waiting. The caller holds the token.
func (l *Log) commitNext() bool {
	l.mu.Lock()
	n, size := 0, 0
	for n < len(l.queue) {
		if r := l.queue[n]; r.op == opAppend {
			if n > 0 && size+len(r.data) > l.opts.MaxGroupBytes {
				break
			}
			size += len(r.data)
		}
		n++
	}
	l.group = append(l.group[:0], l.queue[:n]...)
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	failed := l.failed
	l.mu.Unlock()
	if n == 0 {
		return false
	}
	l.commitGroup(l.group, failed)
	clear(l.group)
	return true
}

// commitGroup runs one transaction for group. Within a group the requests are
// concurrent (none has returned), so any order is a valid linearisation: trims
// first, then fills, then appends, which therefore skip positions the fills
// took.
func (l *Log) commitGroup(group []*request, failed error) {
	n := 0
	for _, r := range group {
		if r.state.CompareAndSwap(stQueued, stClaimed) {
			group[n] = r
			n++
		}
	}
	group = group[:n]
	if len(group) == 0 {
		return
	}
	if failed != nil {
		for _, r := range group {
			r.err = l.opError(r, failed)
			r.complete()
		}
		return
	}
	trim, tail := l.trim.Load(), l.tail.Load()
	err := l.runGroup(group, &trim, &tail)
	if err != nil {
		err = l.setFailed(err)
		for _, r := range group {
			if r.err == nil {
				r.err = l.opError(r, err)
			}
			r.complete()
		}
		return
	}
	advanced := trim > l.trim.Load()
	l.trim.Store(trim)
	l.tail.Store(tail)
	for _, r := range group {
		r.complete()
	}
	if advanced {
		l.kickReclaim()
	}
	if cap(l.arena) > 4<<20 {
		l.arena = nil
	}
}

// runGroup writes group in one transaction and commits it, updating trim and
// tail to their values after the commit. Requests get their results, except
// for the error of a failed commit, which the caller sets.
func (l *Log) runGroup(group []*request, trim, tail *uint64) error {
	tx, err := l.db.Begin(true)
	if err != nil {
		return err
	}
	// Rolls back on every early return; a no-op after Commit (or after the
	// commit hook) closed tx.
	defer func() { _ = tx.Rollback() }()
	dirty := false
	meta := tx.Bucket(bucketMeta)
	entries := tx.Bucket(bucketEntries)
	entries.FillPercent = 1.0 // keys only ever grow: pack leaves full

	// Trims.
	newTrim := *trim
	for _, r := range group {
		if r.op == opTrim && uint64(r.pos) > newTrim {
			newTrim = uint64(r.pos)
		}
	}
	if newTrim > *trim {
		var b [8]byte
		if err := meta.Put(keyTrim, posKey(b[:0], newTrim)); err != nil {
			return err
		}
		dirty = true
	}
	newTail := max(*tail, newTrim)

	// Fills: the write-once check reads the entry inside this transaction.
	for _, r := range group {
		if r.op != opFill || uint64(r.pos) < newTrim {
			continue // trimmed: Fill is idempotent there
		}
		k := posKey(nil, uint64(r.pos)) // not reused: a key must outlive the tx
		switch v := entries.Get(k); {
		case v == nil:
			if err := entries.Put(k, junkValue); err != nil {
				return err
			}
			r.write, dirty = true, true
		case len(v) > 0 && (v[0] == tagData || v[0] == tagParts):
			r.err = fmt.Errorf("boltlog: fill position %d: %w", r.pos, log.ErrWritten)
		case len(v) != 1 || v[0] != tagJunk:
			r.err = fmt.Errorf("boltlog: fill position %d: corrupt entry (%d bytes)", r.pos, len(v))
		}
	}

	// Appends: assign positions from the tail, skipping every position that
	// holds an entry in this transaction (junk from fills at or beyond the
	// tail). One cursor walk covers the group; positions are assigned before
	// any Put, since a Put may invalidate the cursor.
	size := 0
	c := entries.Cursor()
	var kb [8]byte
	k, _ := c.Seek(posKey(kb[:0], newTail))
	p := newTail
	for _, r := range group {
		if r.op != opAppend {
			continue
		}
		for k != nil {
			if len(k) == partKeySize {
				k, _ = c.Next() // a part of the entry before: no position of its own
				continue
			}
			if binary.BigEndian.Uint64(k) != p {
				break
			}
			p++
			k, _ = c.Next()
		}
		if p == math.MaxUint64 {
			r.err = fmt.Errorf("boltlog: append: log is full (position %d)", p)
			continue
		}
		r.pos, r.write = log.Position(p), true
		p++
		if 1+len(r.data) <= l.part {
			size += posKeySize + 1 + len(r.data)
		} else {
			// The head's key and value, and the other parts' keys: their
			// values are slices of r.data, which outlives the commit.
			size += posKeySize + l.part + (len(r.data)/l.part+1)*partKeySize
		}
	}
	if size > 0 {
		if cap(l.arena) < size {
			l.arena = make([]byte, 0, size)
		}
		buf := l.arena[:0]
		for _, r := range group {
			if r.op != opAppend || !r.write {
				continue
			}
			var err error
			if buf, err = l.putEntry(entries, meta, buf, uint64(r.pos), r.data); err != nil {
				return err
			}
			newTail = max(newTail, uint64(r.pos)+1)
		}
		dirty = true
	}

	if !dirty {
		return nil // nothing to write: the reads above answered everything
	}
	if err := l.opts.commitTx(tx); err != nil {
		return err
	}
	*trim, *tail = newTrim, newTail
	return nil
}
