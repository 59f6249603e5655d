package main

import (
	"bytes"
	"errors"
	"time"

	"github.com/cruzlog/cruzdb"
)

// MULTI/EXEC/WATCH on optimistic transactions.
//
// MULTI queues commands; EXEC runs them all in one cruzdb transaction.
// WATCH records, for each key, the log position of its last write
// (Txn.LastWrite) as of the WATCH. EXEC begins its transaction, compares
// each watched key's last write with the recorded one — any change makes
// EXEC reply a nil array, as Redis does — and then runs the queued
// commands. The watched keys are in the transaction's read set, so a write
// to one of them that lands between EXEC's snapshot and its commit makes
// the commit conflict: EXEC replies nil then too, never retrying. A
// conflict on a key that is not watched (a KEYS or SCAN range, say) says
// nothing about what the client watched, so EXEC is re-run, re-checking the
// watched keys first.

// queue adds a command to the MULTI queue, copying its arguments (they
// live in the connection's batch arena).
func (c *conn) queue(spec *cmdSpec, args [][]byte) {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	buf := make([]byte, 0, n)
	owned := make([][]byte, len(args))
	for i, a := range args {
		start := len(buf)
		buf = append(buf, a...)
		owned[i] = buf[start:len(buf):len(buf)]
	}
	c.queued = append(c.queued, queuedCmd{spec: spec, args: owned})
	c.w.Simple("QUEUED")
}

func (c *conn) resetMulti() {
	c.inMulti, c.multiDirty = false, false
	clear(c.queued)
	c.queued = c.queued[:0]
	c.watches = nil
}

func cmdMulti(c *conn, _ *cruzdb.Txn, _ [][]byte) {
	if c.inMulti {
		c.w.Err("ERR MULTI calls can not be nested")
		return
	}
	c.inMulti = true
	c.w.OK()
}

func cmdDiscard(c *conn, _ *cruzdb.Txn, _ [][]byte) {
	if !c.inMulti {
		c.w.Err("ERR DISCARD without MULTI")
		return
	}
	c.resetMulti()
	c.w.OK()
}

func cmdUnwatch(c *conn, _ *cruzdb.Txn, _ [][]byte) {
	c.watches = nil
	c.w.OK()
}

func cmdWatch(c *conn, _ *cruzdb.Txn, args [][]byte) {
	if c.inMulti {
		c.w.Err("ERR WATCH inside MULTI is not allowed")
		return
	}
	tx, err := c.s.db.Begin(c.s.ctx, false)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	defer tx.Rollback()
	for _, k := range args[1:] {
		if c.watchingKey(k) {
			continue // the first WATCH's position is the one that counts
		}
		pos, err := lastWrite(tx, k)
		if err != nil {
			c.w.Err(errText(err))
			return
		}
		c.watches = append(c.watches, watch{key: bytes.Clone(k), pos: pos})
	}
	c.w.OK()
}

func (c *conn) watching(k []byte) bool {
	if len(k) == 0 || k[0] != metaPrefix {
		return false
	}
	return c.watchingKey(k[1:]) // the Redis key of a metadata key
}

// watchingKey reports whether the Redis key k is watched.
func (c *conn) watchingKey(k []byte) bool {
	for _, w := range c.watches {
		if bytes.Equal(w.key, k) {
			return true
		}
	}
	return false
}

// lastWrite is Txn.LastWrite of k's metadata (which every write to k
// writes), with 0 for keys that cannot exist.
func lastWrite(tx *cruzdb.Txn, k []byte) (uint64, error) {
	pos, err := tx.LastWrite(metaKey(k))
	switch {
	case err == nil:
		return uint64(pos), nil
	case errors.Is(err, cruzdb.ErrEmptyKey), errors.Is(err, cruzdb.ErrKeyTooLarge):
		return 0, nil
	}
	return 0, err
}

func cmdExec(c *conn, _ *cruzdb.Txn, _ [][]byte) {
	if !c.inMulti {
		c.w.Err("ERR EXEC without MULTI")
		return
	}
	defer c.resetMulti()
	if c.multiDirty {
		c.w.Err("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	writable := false
	for _, q := range c.queued {
		if q.spec.flags&flagWrite != 0 {
			writable = true
			break
		}
	}
	if writable {
		// Keep plain commands off the keys EXEC reads and writes while it
		// runs (see keyLocks); range reads are not covered.
		c.locks = c.locks[:0]
		for _, q := range c.queued {
			q.spec.keys(q.args, func(k []byte) { c.locks = append(c.locks, c.s.locks.req(k, true)) })
		}
		for _, w := range c.watches {
			c.locks = append(c.locks, c.s.locks.req(w.key, true))
		}
		held := c.s.locks.acquire(c.locks)
		defer c.s.locks.release(held)
	}

	mark := len(c.w.B)
	for attempt := 0; ; attempt++ {
		tx, err := c.s.db.Begin(c.s.ctx, writable)
		if err != nil {
			c.w.Err(errText(err))
			return
		}
		changed, err := c.watchedChanged(tx)
		if err != nil || changed {
			tx.Rollback()
			if err != nil {
				c.w.Err(errText(err))
			} else {
				c.s.metrics.watchAborts.Inc()
				c.w.NullArray()
			}
			return
		}
		c.w.ArrayLen(len(c.queued))
		for _, q := range c.queued {
			q.spec.run(c, tx, q.args)
		}
		if hook := c.s.beforeExecCommit.Load(); hook != nil {
			(*hook)()
		}
		t0 := time.Now()
		err = tx.Commit()
		if writable {
			c.s.metrics.commitDuration.Observe(time.Since(t0).Seconds())
		}
		if err == nil {
			return
		}
		c.w.B = c.w.B[:mark]
		var ce *cruzdb.ConflictError
		if errors.As(err, &ce) && !ce.TooOld && c.watching(ce.Key) {
			c.s.metrics.watchAborts.Inc()
			c.w.NullArray()
			return
		}
		if errors.Is(err, cruzdb.ErrConflict) {
			if attempt < c.s.cfg.MaxConflictRetries {
				c.s.metrics.retries.Inc()
				continue
			}
			c.w.Err("ERR transaction conflict: gave up after " + itoa(c.s.cfg.MaxConflictRetries) + " retries: " + err.Error())
			return
		}
		c.w.Err(errText(err))
		return
	}
}

// watchedChanged reports whether a watched key was written since its WATCH,
// as seen by tx. In a writable tx the watched keys join the read set.
func (c *conn) watchedChanged(tx *cruzdb.Txn) (bool, error) {
	for _, w := range c.watches {
		pos, err := lastWrite(tx, w.key)
		if err != nil {
			return false, err
		}
		if pos != w.pos {
			return true, nil
		}
	}
	return false, nil
}
