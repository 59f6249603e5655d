package boltlog

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"

	"github.com/cruzlog/cruzdb/internal/groupcommit"
	"github.com/cruzlog/cruzdb/log"
)

// submit queues r and sees to it that a group takes it. If no group is being
// committed, the caller commits one itself, right away and on its own
// goroutine: a lone appender pays no goroutine handoff, only bbolt's commit.
// Otherwise it wakes the committer goroutine, which takes r in the next group
// once the token is free.
func (l *Log) submit(r *groupcommit.Request) error { return l.submitAll(r) }

// submitAll queues rs together, so that one group holds them all (unless
// MaxGroupBytes cuts the group between them), in order.
func (l *Log) submitAll(rs ...*groupcommit.Request) error {
	if err := l.q.Add(rs...); err != nil {
		return err
	}
	select {
	case <-l.token:
		// The group holds rs, unless MaxGroupBytes cut it short before; the
		// committer goroutine then takes what is left.
		l.commitNext()
		l.token <- struct{}{}
		if l.q.Len() > 0 {
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

// setFailed records a write failure. From then on every write is refused.
func (l *Log) setFailed(cause error) error {
	return l.q.Fail(fmt.Errorf("%s: commit failed, nothing of that commit is acknowledged, and the log refuses writes until reopened: %w", l.path, cause))
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
	n := 0
	failed := l.q.Take(func(waiting []*groupcommit.Request) []*groupcommit.Request {
		size := 0
		for n < len(waiting) {
			if r := waiting[n]; r.Op == groupcommit.Append {
				if n > 0 && size+len(r.Data) > l.opts.MaxGroupBytes {
					break
				}
				size += len(r.Data)
			}
			n++
		}
		l.group = append(l.group[:0], waiting[:n]...)
		return waiting[:copy(waiting, waiting[n:])]
	})
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
func (l *Log) commitGroup(group []*groupcommit.Request, failed error) {
	n := 0
	for _, r := range group {
		if r.Claim() {
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
			r.Finish(groupcommit.OpError("boltlog", r, failed))
		}
		return
	}
	trim, tail := l.trim.Load(), l.tail.Load()
	err := l.runGroup(group, &trim, &tail)
	if err != nil {
		err = l.setFailed(err)
		for _, r := range group {
			r.Finish(groupcommit.OpError("boltlog", r, err))
		}
		return
	}
	advanced := trim > l.trim.Load()
	l.trim.Store(trim)
	l.tail.Store(tail)
	for _, r := range group {
		r.Complete()
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
func (l *Log) runGroup(group []*groupcommit.Request, trim, tail *uint64) error {
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
		if r.Op == groupcommit.Trim && uint64(r.Pos) > newTrim {
			newTrim = uint64(r.Pos)
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
		if r.Op != groupcommit.Fill || uint64(r.Pos) < newTrim {
			continue // trimmed: Fill is idempotent there
		}
		k := posKey(nil, uint64(r.Pos)) // not reused: a key must outlive the tx
		switch v := entries.Get(k); {
		case v == nil:
			if err := entries.Put(k, junkValue); err != nil {
				return err
			}
			r.Write, dirty = true, true
		case len(v) > 0 && (v[0] == tagData || v[0] == tagParts):
			r.Err = fmt.Errorf("boltlog: fill position %d: %w", r.Pos, log.ErrWritten)
		case len(v) != 1 || v[0] != tagJunk:
			r.Err = fmt.Errorf("boltlog: fill position %d: corrupt entry (%d bytes)", r.Pos, len(v))
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
		if r.Op != groupcommit.Append {
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
			r.Err = fmt.Errorf("boltlog: append: log is full (position %d)", p)
			continue
		}
		r.Pos, r.Write = log.Position(p), true
		p++
		if 1+len(r.Data) <= l.part {
			size += posKeySize + 1 + len(r.Data)
		} else {
			// The head's key and value, and the other parts' keys: their
			// values are slices of r.Data, which outlives the commit.
			size += posKeySize + l.part + (len(r.Data)/l.part+1)*partKeySize
		}
	}
	if size > 0 {
		if cap(l.arena) < size {
			l.arena = make([]byte, 0, size)
		}
		buf := l.arena[:0]
		for _, r := range group {
			if r.Op != groupcommit.Append || !r.Write {
				continue
			}
			var err error
			if buf, err = l.putEntry(entries, meta, buf, uint64(r.Pos), r.Data); err != nil {
				return err
			}
			newTail = max(newTail, uint64(r.Pos)+1)
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
