// Package groupcommit is the request queue that boltlog and seglog put in
// front of their group commits. Writers queue requests (append, fill,
// trim) and wait for their outcome; a committer takes a group of the
// waiting requests, claims them, commits them in one write and one sync,
// and completes them. A writer whose context ends while its request is
// still queued withdraws it: the request is then never written. After a
// failed commit the queue refuses every write (the failure is sticky: the
// state of the storage is unknown, so a retry could acknowledge data that
// is not durable).
//
// Which waiting requests make a group, and how a group is written, are the
// backend's; so is who runs the committer.
package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cruzlog/cruzdb/log"
)

// Op is what a request does.
type Op uint8

const (
	Append Op = iota
	Fill
	Trim
)

// Request states: the committer claims a queued request, or its waiter
// withdraws it (context done) first; whoever wins the CAS owns the outcome.
const (
	stQueued int32 = iota
	stClaimed
	stWithdrawn
)

// Request is one write waiting for a group commit.
type Request struct {
	Op   Op
	Data []byte       // Append's entry
	Pos  log.Position // Fill's and Trim's target; Append's result
	Err  error        // the outcome's error, set by the committer
	// Write: the committer assigned the request a position (an append) or
	// wrote it (a fill).
	Write bool
	// Batch is the AppendBatch a request belongs to (0: none), and Passed
	// says the committer left it for a later group once; the backend's
	// grouping may use them.
	Batch  uint64
	Passed bool
	// Lazy marks an append that does not start a group commit of its own
	// before Due: it joins the next group started for another request (see
	// seglog's AppendLazy). Shared says, once it is committed, that its
	// group held a request that was not lazy.
	Lazy   bool
	Due    time.Time
	Shared bool

	state atomic.Int32
	done  chan struct{} // cap 1; signalled once the outcome is set
}

// NewRequest returns a queued request.
func NewRequest(op Op) *Request { return &Request{Op: op, done: make(chan struct{}, 1)} }

var pool = sync.Pool{New: func() any { return &Request{done: make(chan struct{}, 1)} }}

// Get returns a queued request from a pool; Put gives it back once its
// outcome was read. A withdrawn request must not be put back: the committer
// may still hold it.
func Get(op Op) *Request {
	r := pool.Get().(*Request)
	r.Op = op
	r.state.Store(stQueued)
	return r
}

// Put returns r to Get's pool.
func Put(r *Request) {
	r.Data, r.Err, r.Pos, r.Write, r.Batch, r.Passed = nil, nil, 0, false, 0, false
	r.Lazy, r.Due, r.Shared = false, time.Time{}, false
	pool.Put(r)
}

// Claim is the committer taking r into the group it commits: false if its
// waiter withdrew it first (the committer then drops it).
func (r *Request) Claim() bool { return r.state.CompareAndSwap(stQueued, stClaimed) }

// Complete signals that r's outcome (Pos, Err, Write) is set.
func (r *Request) Complete() { r.done <- struct{}{} }

// Finish completes r with err, unless it already has an error.
func (r *Request) Finish(err error) {
	if r.Err == nil {
		r.Err = err
	}
	r.Complete()
}

// Wait blocks until r has an outcome, or until ctx is done while r is still
// queued, in which case r is withdrawn (never written) and ctx's error is
// returned. A request already claimed is waited for: its group's commit
// decides its outcome.
func (r *Request) Wait(ctx context.Context) error {
	done := ctx.Done()
	if done == nil {
		<-r.done
		return nil
	}
	select {
	case <-r.done:
		return nil
	case <-done:
		if r.state.CompareAndSwap(stQueued, stWithdrawn) {
			return ctx.Err()
		}
		<-r.done
		return nil
	}
}

// OpError wraps err as the error of r, named as backend (e.g. "seglog")
// reports it: "<backend>: append at position 5: <err>".
func OpError(backend string, r *Request, err error) error {
	switch r.Op {
	case Append:
		if r.Write {
			return fmt.Errorf("%s: append at position %d: %w", backend, r.Pos, err)
		}
		return fmt.Errorf("%s: append: %w", backend, err)
	case Fill:
		return fmt.Errorf("%s: fill position %d: %w", backend, r.Pos, err)
	default:
		return fmt.Errorf("%s: trim position %d: %w", backend, r.Pos, err)
	}
}

// Queue holds the requests submitted and not yet taken into a group, and
// the log's sticky write failure. The zero Queue is ready to use.
type Queue struct {
	mu      sync.Mutex
	waiting []*Request
	shut    bool
	failed  error
}

// Add queues rs together, in order. It refuses them once Shut was called
// (log.ErrClosed) or a write failed (that failure).
func (q *Queue) Add(rs ...*Request) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shut {
		return log.ErrClosed
	}
	if q.failed != nil {
		return q.failed
	}
	q.waiting = append(q.waiting, rs...)
	return nil
}

// Take removes a group from the waiting requests: pick is given them (in
// arrival order, under the queue's lock; it must not keep the slice), puts
// the ones it chooses in a group of its own, and returns the rest, which may
// reuse the slice's storage. Take returns the sticky failure, if any, which
// the group then gets instead of being written.
func (q *Queue) Take(pick func(waiting []*Request) (rest []*Request)) (failed error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	rest := pick(q.waiting)
	clear(q.waiting[len(rest):])
	q.waiting = rest
	return q.failed
}

// Len is the number of waiting requests.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

// Fail records err as the write failure, unless one is recorded already,
// and returns the recorded one. From then on Add refuses every request.
func (q *Queue) Fail(err error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failed == nil {
		q.failed = err
	}
	return q.failed
}

// Failed returns the write failure, if any.
func (q *Queue) Failed() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failed
}

// IsShut reports whether Shut was called.
func (q *Queue) IsShut() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.shut
}

// Shut refuses every later request and fails the waiting ones that no
// committer claimed with log.ErrClosed, named as backend. It reports false
// if the queue was shut already.
func (q *Queue) Shut(backend string) bool {
	q.mu.Lock()
	if q.shut {
		q.mu.Unlock()
		return false
	}
	q.shut = true
	pending := q.waiting
	q.waiting = nil
	q.mu.Unlock()
	for _, r := range pending {
		if r.Claim() {
			r.Err = OpError(backend, r, log.ErrClosed)
			r.Complete()
		}
	}
	return true
}

// CheckAppends returns the error an append of data must fail with before
// it is queued: ctx already done, or an entry over log.MaxEntrySize.
func CheckAppends(ctx context.Context, backend string, data ...[]byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: append: %w", backend, err)
	}
	for _, d := range data {
		if len(d) > log.MaxEntrySize {
			return fmt.Errorf("%s: append of %d bytes (limit %d): %w", backend, len(d), log.MaxEntrySize, log.ErrTooLarge)
		}
	}
	return nil
}

// WaitAll waits for the outcome of rs, queued together, and returns their
// positions, or the first error: a withdrawal (named as backend's append)
// or a request's own. Requests with an outcome are given to release, if
// not nil (withdrawn ones are not: the committer may still hold them).
func WaitAll(ctx context.Context, backend string, rs []*Request, release func(*Request)) ([]log.Position, error) {
	pos := make([]log.Position, len(rs))
	var first error
	for i, r := range rs {
		if err := r.Wait(ctx); err != nil {
			if first == nil {
				first = fmt.Errorf("%s: append: %w", backend, err)
			}
			continue
		}
		pos[i] = r.Pos
		if r.Err != nil && first == nil {
			first = r.Err
		}
		if release != nil {
			release(r)
		}
	}
	if first != nil {
		return nil, first
	}
	return pos, nil
}
