package main

import (
	"errors"
	"time"

	"github.com/cruzlog/cruzdb"
)

// Group commit across connections.
//
// Every writing batch of point commands (a pipeline's run of SET, INCR,
// HSET, ...) is committed through the combiner: a connection hands its batch
// to a combiner worker and waits; a free worker takes every batch waiting,
// takes their keys' locks (shared for blind writes, which read nothing,
// exclusive for the rest, see keyLocks), runs them one after the other in one
// transaction, commits once (one intention) and wakes their connections.
// With many clients this turns N concurrent intentions into a few, which is
// what the log and the processor pay for; on one hot key (HSET of one hash
// from 50 clients) it turns N serialized commits into one. Each command's
// effect still happens between its arrival and its reply, in each
// connection's order, and sees the effects of the batches run before it in
// the transaction, so clients see exactly what running them one after the
// other would give. A conflict (a write by another node, or by a range
// command that takes no key locks) re-runs the whole group.
type combiner struct {
	s    *server
	reqs chan *batchReq
	stop chan struct{}
	done chan struct{}
}

type batchReq struct {
	c     *conn
	batch [][][]byte
	specs []*cmdSpec
	mark  int        // c.w length before this batch's replies
	done  chan error // nil: replies are in c.w; else reply this error to all
}

const (
	// Commits in flight at once: two let one batch run while another's
	// intention is being appended, and fewer, larger combined transactions
	// share more of their path copies than more, smaller ones (measured
	// against other worker counts: bench/journal/2026-12-06-cruzd.md).
	combineWorkers  = 2
	combineMaxBatch = 256     // connection batches per transaction
	combineMaxBytes = 4 << 20 // argument bytes per transaction
)

func newCombiner(s *server) *combiner {
	cb := &combiner{s: s, reqs: make(chan *batchReq, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	finished := make(chan struct{}, combineWorkers)
	for range combineWorkers {
		go func() {
			cb.worker()
			finished <- struct{}{}
		}()
	}
	go func() {
		for range combineWorkers {
			<-finished
		}
		close(cb.done)
	}()
	return cb
}

// close stops the workers once no connection can submit any more.
func (cb *combiner) close() {
	close(cb.stop)
	<-cb.done
}

// run commits the batch through the combiner, writing its replies to c.w.
// The request is the connection's own (c.breq, its channel made once): a
// connection has one batch in the combiner at a time, and a worker does
// not touch a request after its done.
func (cb *combiner) run(c *conn, batch [][][]byte, specs []*cmdSpec) {
	r := &c.breq
	if r.done == nil {
		r.done = make(chan error, 1)
	}
	r.c, r.batch, r.specs, r.mark = c, batch, specs, len(c.w.B)
	cb.reqs <- r
	err := <-r.done
	r.batch, r.specs = nil, nil // the connection reuses them
	if err != nil {
		c.w.B = c.w.B[:r.mark]
		c.errorAll(len(batch), err)
	}
}

func (cb *combiner) worker() {
	var group []*batchReq
	var locks []lockReq
	for {
		var first *batchReq
		select {
		case first = <-cb.reqs:
		case <-cb.stop:
			return
		}
		group = append(group[:0], first)
		size := batchBytes(first.batch)
	gather:
		for len(group) < combineMaxBatch && size < combineMaxBytes {
			select {
			case r := <-cb.reqs:
				group = append(group, r)
				size += batchBytes(r.batch)
			default:
				break gather
			}
		}
		locks = locks[:0]
		for _, r := range group {
			for k, args := range r.batch {
				locks = r.specs[k].appendLocks(cb.s.locks, locks, args)
			}
		}
		held := cb.s.locks.acquire(locks)
		err := cb.commit(group)
		cb.s.locks.release(held)
		if errors.Is(err, cruzdb.ErrTxnTooLarge) && len(group) > 1 {
			// Together they do not fit in one intention: one at a time.
			for _, r := range group {
				r.c.w.B = r.c.w.B[:r.mark]
				r.done <- cb.commit([]*batchReq{r})
			}
			continue
		}
		for _, r := range group {
			r.done <- err
		}
	}
}

// commit runs the group's commands in one transaction and commits it,
// re-running it on a conflict up to --max-conflict-retries times.
func (cb *combiner) commit(group []*batchReq) error {
	cmds := 0 // about the keys it writes: most commands write one
	for _, r := range group {
		cmds += len(r.batch)
	}
	for attempt := 0; ; attempt++ {
		tx, err := cb.s.db.Begin(cb.s.ctx, true)
		if err != nil {
			return err
		}
		tx.ReserveWrites(cmds)
		for _, r := range group {
			for k, args := range r.batch {
				r.specs[k].run(r.c, tx, args)
			}
		}
		if hook := cb.s.beforeBatchCommit.Load(); hook != nil {
			(*hook)()
		}
		t0 := time.Now()
		err = tx.Commit()
		cb.s.metrics.commitDuration.Observe(time.Since(t0).Seconds())
		if errors.Is(err, cruzdb.ErrConflict) && attempt >= cb.s.cfg.MaxConflictRetries {
			return errors.New("transaction conflict: gave up after " + itoa(cb.s.cfg.MaxConflictRetries) + " retries: " + err.Error())
		}
		if err == nil || !errors.Is(err, cruzdb.ErrConflict) {
			return err
		}
		cb.s.metrics.retries.Inc()
		for _, r := range group {
			r.c.w.B = r.c.w.B[:r.mark]
		}
	}
}

func batchBytes(batch [][][]byte) int {
	n := 0
	for _, args := range batch {
		for _, a := range args {
			n += len(a)
		}
	}
	return n
}
