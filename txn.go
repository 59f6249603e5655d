package cruzdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/flusher"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/processor"
)

// Txn is a transaction on an immutable snapshot of the database. Reads see
// the snapshot plus the transaction's own writes. A writable transaction
// records what it reads; Commit appends an intention to the log and waits
// for the processor's decision. A Txn is not safe for concurrent use.
type Txn struct {
	db       *DB
	ctx      context.Context
	id       uint64
	writable bool
	snap     *version
	started  time.Time
	closed   bool
	err      error

	writes map[string]pending // by value: one allocation fewer a write
	reads  map[string]struct{}
	ranges []intention.Range
	pos    log.Position // the intention's position, once appended
	// rangeDels are OpDeleteRange ops, applied before the point writes
	// (DB.DeleteRange, deleterange.go).
	rangeDels []intention.Op
}

type pending struct {
	value []byte
	del   bool
}

// Begin starts a transaction on the latest replayed state. The context
// bounds the transaction's Commit. Every transaction must end with Commit or
// Rollback.
func (db *DB) Begin(ctx context.Context, writable bool) (*Txn, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil, ErrClosed
	}
	select {
	case <-db.runner.Done():
		return nil, db.replayErr()
	default:
	}
	db.nextTxnID++
	tx := &Txn{db: db, ctx: ctx, id: db.nextTxnID, writable: writable, snap: db.cur.Load(), started: time.Now()}
	if writable {
		tx.writes = map[string]pending{}
		tx.reads = map[string]struct{}{}
	}
	db.open[tx.id] = tx
	return tx, nil
}

// View runs fn in a read-only transaction on the latest state. If a read
// met a position another node trimmed from the log before this DB's replay
// caught up (an error wrapping log.ErrTrimmed, returned by fn or left in
// Txn.Err), View waits for replay to pass the log's tail and runs fn again
// on the newer state, a few times at most, as Update does: so fn should be
// safe to run more than once. A transaction from Begin keeps its snapshot
// instead, and its reads fail with that error.
func (db *DB) View(ctx context.Context, fn func(*Txn) error) error {
	stale := 0
	for {
		tx, err := db.Begin(ctx, false)
		if err != nil {
			return err
		}
		if err = fn(tx); err == nil {
			err = tx.Err()
		}
		tx.Rollback()
		if db.staleSnapshot(ctx, tx, err, &stale) {
			continue
		}
		return err
	}
}

// Update runs fn in a writable transaction and commits it. On a conflict it
// runs fn again on a newer snapshot, so fn must be safe to re-run: by
// default until ctx ends, waiting a little longer (with random jitter)
// before each retry after the first; Options.MaxConflictRetries can bound
// the retries. When it stops retrying it returns an error wrapping
// ErrConflict (and ctx's error if ctx ended). An error from fn rolls back
// and is returned as is, except one wrapping log.ErrTrimmed from a snapshot
// another node trimmed before this DB's replay caught up: fn then runs again
// on the newer state (a few times at most).
func (db *DB) Update(ctx context.Context, fn func(*Txn) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	stale := 0
	for retry := 0; ; retry++ {
		tx, err := db.Begin(ctx, true)
		if err != nil {
			return err
		}
		if err = fn(tx); err != nil {
			tx.Rollback()
			if db.staleSnapshot(ctx, tx, err, &stale) {
				retry--
				continue
			}
			return err
		}
		err = tx.Commit()
		if db.staleSnapshot(ctx, tx, err, &stale) {
			retry--
			continue
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if limit := db.opts.MaxConflictRetries; limit != 0 && retry >= max(limit, 0) {
			return fmt.Errorf("cruzdb: update gave up after %d retries: %w", retry, err)
		}
		if err := waitRetry(ctx, retry+1, err); err != nil {
			return err
		}
	}
}

// maxStaleRetries bounds the runs of View's and Update's fn again after
// their snapshot was trimmed.
const maxStaleRetries = 8

// staleSnapshot reports whether View or Update should run fn again because its
// snapshot's nodes were trimmed from the log (another node checkpointed and
// trimmed before this DB's replay caught up): it waits for replay to pass
// the tail (re-bootstrapping if need be), and says yes once the current
// state is newer than the snapshot that failed, at most maxStaleRetries
// times. Nothing was appended for the failed run: a commit that read a
// trimmed node fails before its intention is written.
func (db *DB) staleSnapshot(ctx context.Context, tx *Txn, err error, stale *int) bool {
	if err == nil || !errors.Is(err, log.ErrTrimmed) || tx.pos != 0 || *stale >= maxStaleRetries {
		return false
	}
	*stale++
	if db.Sync(ctx) != nil {
		return false
	}
	return db.cur.Load().pos > tx.snap.pos
}

// Position returns the log position of the transaction's intention once
// Commit has appended it (whatever the decision), else 0.
func (tx *Txn) Position() log.Position { return tx.pos }

// Snapshot returns the log position whose state the transaction reads.
func (tx *Txn) Snapshot() log.Position { return log.Position(tx.snap.pos) }

// Writable reports whether the transaction may write.
func (tx *Txn) Writable() bool { return tx.writable }

// Err returns the first error met while iterating (a failed node load), if
// any. Commit fails with it too.
func (tx *Txn) Err() error { return tx.err }

func (tx *Txn) checkOpen() error {
	if tx.closed {
		return ErrTxnClosed
	}
	return nil
}

func (tx *Txn) checkKey(key []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > int(tx.db.header.MaxKeySize) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(key), tx.db.header.MaxKeySize)
	}
	return nil
}

// Get returns a copy of key's value, or an error wrapping ErrNotFound.
func (tx *Txn) Get(key []byte) ([]byte, error) {
	if err := tx.checkOpen(); err != nil {
		return nil, err
	}
	if err := tx.checkKey(key); err != nil {
		return nil, err
	}
	if tx.writable {
		if p, ok := tx.writes[string(key)]; ok {
			if p.del {
				return nil, ErrNotFound
			}
			return bytes.Clone(p.value), nil
		}
		tx.reads[string(key)] = struct{}{}
	}
	v, ok, err := tx.snap.tree.Get(key)
	if err != nil {
		return nil, fmt.Errorf("cruzdb: get %q: %w", key, err)
	}
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

// LastWrite returns the position of the commit that last wrote key (a put
// or a delete) as seen by the transaction, or 0 if the snapshot holds no
// trace of it (never written, or deleted longer ago than the conflict
// window). A key the transaction wrote itself reports 0. In a writable
// transaction the key joins the read set, like Get. It lets a client
// implement optimistic "watch" semantics: remember LastWrite, and later
// compare.
func (tx *Txn) LastWrite(key []byte) (log.Position, error) {
	if err := tx.checkOpen(); err != nil {
		return 0, err
	}
	if err := tx.checkKey(key); err != nil {
		return 0, err
	}
	if tx.writable {
		if _, ok := tx.writes[string(key)]; ok {
			return 0, nil
		}
		tx.reads[string(key)] = struct{}{}
	}
	n, err := tx.snap.tree.Lookup(key)
	if err != nil {
		return 0, fmt.Errorf("cruzdb: last write of %q: %w", key, err)
	}
	if n == nil {
		return 0, nil
	}
	return log.Position(n.Pos()), nil
}

// Put sets key to value in the transaction. key and value are copied.
func (tx *Txn) Put(key, value []byte) error {
	if err := tx.checkWrite(key); err != nil {
		return err
	}
	if len(value) > int(tx.db.header.MaxValueSize) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(value), tx.db.header.MaxValueSize)
	}
	v := make([]byte, len(value))
	copy(v, value)
	tx.writes[string(key)] = pending{value: v}
	return nil
}

// Delete removes key in the transaction (deleting a missing key is fine).
func (tx *Txn) Delete(key []byte) error {
	if err := tx.checkWrite(key); err != nil {
		return err
	}
	tx.writes[string(key)] = pending{del: true}
	return nil
}

func (tx *Txn) checkWrite(key []byte) error {
	if err := tx.checkOpen(); err != nil {
		return err
	}
	if !tx.writable {
		return ErrReadOnly
	}
	return tx.checkKey(key)
}

// Range iterates the keys in [lo, hi) in ascending order with their values
// (nil lo or hi: unbounded), seeing the transaction's own writes. Keys and
// values are copies the caller may keep. In a writable transaction the part
// of the range actually iterated joins the read set: a write committed there
// after the snapshot aborts the transaction (no phantoms). An error stops the
// iteration; Err reports it.
func (tx *Txn) Range(lo, hi []byte) iter.Seq2[[]byte, []byte] {
	return tx.rangeOf(lo, hi, true, false)
}

// RangeReverse iterates the keys in [lo, hi) like Range, in descending
// order: from the last key below hi down to lo. Stopping early records only
// the part iterated, [last key yielded, hi), in the read set.
func (tx *Txn) RangeReverse(lo, hi []byte) iter.Seq2[[]byte, []byte] {
	return tx.rangeOf(lo, hi, true, true)
}

// Keys iterates the keys in [lo, hi) like Range, without copying values.
// It records the iterated range in the read set the same way.
func (tx *Txn) Keys(lo, hi []byte) iter.Seq[[]byte] { return tx.keysOf(lo, hi, false) }

// KeysReverse iterates the keys in [lo, hi) like RangeReverse, without
// copying values.
func (tx *Txn) KeysReverse(lo, hi []byte) iter.Seq[[]byte] { return tx.keysOf(lo, hi, true) }

func (tx *Txn) keysOf(lo, hi []byte, reverse bool) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for k := range tx.rangeOf(lo, hi, false, reverse) {
			if !yield(k) {
				return
			}
		}
	}
}

// rangeOf merges the snapshot's entries in [lo, hi) with the transaction's
// own writes there, in ascending order or, with reverse, descending.
func (tx *Txn) rangeOf(lo, hi []byte, values, reverse bool) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		if tx.closed {
			tx.setErr(ErrTxnClosed)
			return
		}
		var local []string
		if tx.writable {
			for k := range tx.writes {
				if (lo == nil || k >= string(lo)) && (hi == nil || k < string(hi)) {
					local = append(local, k)
				}
			}
			slices.Sort(local)
			if reverse {
				slices.Reverse(local)
			}
		}
		// inRange reports whether a snapshot key is still inside the range
		// on the side the iteration moves towards; before orders a before b
		// in iteration order.
		var it *cowtree.Iterator
		var inRange func(k []byte) bool
		var before func(a, b string) bool
		if reverse {
			it = tx.snap.tree.Descend(hi)
			inRange = func(k []byte) bool { return lo == nil || bytes.Compare(k, lo) >= 0 }
			before = func(a, b string) bool { return a > b }
		} else {
			it = tx.snap.tree.Ascend(lo)
			inRange = func(k []byte) bool { return hi == nil || bytes.Compare(k, hi) < 0 }
			before = func(a, b string) bool { return a < b }
		}
		has := it.Next()
		var last []byte
		stopped := false
		for !stopped {
			var k, v []byte
			switch {
			case has && inRange(it.Key()):
				k = it.Key()
				if len(local) > 0 && !before(string(k), local[0]) {
					lk := local[0]
					local = local[1:]
					if lk == string(k) {
						has = it.Next()
					}
					k = []byte(lk)
					if p := tx.writes[lk]; p.del {
						continue
					} else {
						v = p.value
					}
				} else {
					v = it.Value()
					has = it.Next()
				}
			case len(local) > 0:
				lk := local[0]
				local = local[1:]
				p := tx.writes[lk]
				if p.del {
					continue
				}
				k, v = []byte(lk), p.value
			default:
				if err := it.Err(); err != nil {
					tx.setErr(fmt.Errorf("cruzdb: range: %w", err))
				}
				stopped = true
				continue
			}
			last = k
			var vc []byte
			if values {
				vc = bytes.Clone(v)
			}
			if !yield(bytes.Clone(k), vc) {
				stopped = true
				if tx.writable && !tx.closed {
					// Only the part up to last was observed: [lo, last]
					// ascending, [last, hi) descending.
					r := intention.Range{Lo: bytes.Clone(lo), Hi: append(bytes.Clone(last), 0)}
					if reverse {
						r = intention.Range{Lo: bytes.Clone(last), Hi: bytes.Clone(hi)}
					}
					tx.ranges = append(tx.ranges, r)
				}
				return
			}
		}
		if tx.writable && !tx.closed {
			tx.ranges = append(tx.ranges, intention.Range{Lo: bytes.Clone(lo), Hi: bytes.Clone(hi)})
		}
	}
}

func (tx *Txn) setErr(err error) {
	if tx.err == nil {
		tx.err = err
	}
}

// Rollback ends the transaction without committing. It is idempotent and
// safe to defer.
func (tx *Txn) Rollback() error {
	if tx.closed {
		return nil
	}
	tx.close()
	return nil
}

func (tx *Txn) close() {
	tx.closed = true
	tx.db.mu.Lock()
	delete(tx.db.open, tx.id)
	tx.db.mu.Unlock()
	tx.db.txnClosed(tx.snap.pos)
}

// Commit ends the transaction. A read-only transaction, or one that wrote
// nothing, commits without touching the log. Otherwise Commit appends the
// intention and waits for the processor's decision: nil, an error wrapping
// ErrConflict (a *ConflictError naming the key and positions), or another
// error. If the context ends while waiting, the outcome is unknown.
func (tx *Txn) Commit() error {
	if tx.closed {
		return ErrTxnClosed
	}
	defer tx.close()
	if tx.err != nil {
		return tx.err
	}
	if !tx.writable || (len(tx.writes) == 0 && len(tx.rangeDels) == 0) {
		return nil
	}
	db := tx.db
	in := tx.intention()
	data := entry.AppendIntention(nil, in)
	if len(data) > log.MaxEntrySize {
		return fmt.Errorf("%w: %d bytes encoded, limit %d", ErrTxnTooLarge, len(data), log.MaxEntrySize)
	}
	if err := db.flusher.WaitRoom(tx.ctx); err != nil {
		if errors.Is(err, flusher.ErrStopped) {
			return ErrClosed
		}
		return fmt.Errorf("cruzdb: commit: waiting for the flusher: %w", err)
	}
	if err := db.checkpointRoom(tx.ctx); err != nil {
		return fmt.Errorf("cruzdb: commit: waiting for a checkpoint: %w", err)
	}
	defer db.lane.CommitBegins()()
	if db.opts.CheckpointSerial {
		// The sequential checkpoint: no commit overlaps one.
		db.ck.gate.RLock()
		defer db.ck.gate.RUnlock()
	}
	w := &commitWaiter{ch: make(chan processor.Decision, 1)}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return ErrClosed
	}
	for db.waiters[in.Token] != nil { // a token collision inside this DB
		in.Token = rand.Uint64()
		data = entry.AppendIntention(data[:0], in)
	}
	db.waiters[in.Token] = w
	db.mu.Unlock()

	db.runner.BeginLocal()
	pos, riders, err := db.lane.AppendIntentionHeld(tx.ctx, data)
	if err != nil {
		db.runner.EndLocal()
		db.mu.Lock()
		delete(db.waiters, in.Token)
		db.mu.Unlock()
		if errors.Is(err, log.ErrClosed) {
			return fmt.Errorf("cruzdb: commit: %w", ErrClosed)
		}
		return fmt.Errorf("cruzdb: commit: append intention: %w (%w)", err, ErrCommitUnknown)
	}
	w.pos.Store(uint64(pos))
	// What replay applied early up to the log's durable tail, which is past
	// pos: the log makes what it ordered durable in order (early.go).
	db.pub.raise(uint64(pos) + 1)
	db.showDurable()
	db.stats.appended.Add(1)
	tx.pos = pos
	// Decide on this goroutine if nobody else is applying: the decision is
	// then in w.ch without a wake-up of the processor and one of this
	// goroutine (processor.Runner.ApplyLocal).
	// The afterimages that rode with the intention are decoded from their
	// writers' bytes, not read back, and their writers released at once:
	// nothing of the bytes is needed after the decode. (Released after the
	// apply instead, the futex that wakes the idle core moved to the
	// flusher's signal in the apply; the time after the fdatasync was the
	// same: journal 2026-12-07-one22.md §3.)
	var buf [4]processor.Appended
	below := buf[:0]
	for i := range riders.Len() {
		p, d := riders.At(i)
		below = append(below, db.runner.DecodeAppended(uint64(p), d))
	}
	riders.Release()
	if !db.runner.ApplyLocalWith(tx.ctx, uint64(pos), data, below) {
		db.runner.Notify()
	}
	for {
		select {
		case d, ok := <-w.ch:
			if !ok {
				return fmt.Errorf("cruzdb: commit at position %d: %w (%w)", pos, db.waiterDroppedErr(), ErrCommitUnknown)
			}
			if d.Pos != uint64(pos) {
				// Another intention carried our token: keep waiting for ours.
				db.mu.Lock()
				db.waiters[in.Token] = w
				db.mu.Unlock()
				continue
			}
			return decisionErr(d)
		case <-tx.ctx.Done():
			db.mu.Lock()
			delete(db.waiters, in.Token)
			db.mu.Unlock()
			return fmt.Errorf("cruzdb: commit at position %d: %w (%w)", pos, tx.ctx.Err(), ErrCommitUnknown)
		case <-db.closing:
			return fmt.Errorf("cruzdb: commit at position %d: %w (%w)", pos, ErrClosed, ErrCommitUnknown)
		}
	}
}

func decisionErr(d processor.Decision) error {
	switch d.Outcome {
	case processor.Committed:
		return nil
	case processor.Conflict:
		return &ConflictError{Key: d.ConflictKey, Snapshot: d.Snapshot, Pos: d.Pos, WrittenAt: d.ConflictPos}
	case processor.TooOld:
		return &ConflictError{Snapshot: d.Snapshot, Pos: d.Pos, TooOld: true}
	default:
		return fmt.Errorf("%w at position %d: %s", ErrRejected, d.Pos, d.Reason)
	}
}

// intention builds the transaction's log record: reads and writes sorted by
// key, one op per key (the last write wins).
func (tx *Txn) intention() *intention.Intention {
	in := &intention.Intention{Snapshot: tx.snap.pos, Token: rand.Uint64()}
	keys := make([]string, 0, len(tx.writes))
	for k := range tx.writes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	in.Ops = make([]intention.Op, len(tx.rangeDels), len(tx.rangeDels)+len(keys))
	copy(in.Ops, tx.rangeDels)
	in.Ops = in.Ops[:len(tx.rangeDels)+len(keys)]
	for i, k := range keys {
		i += len(tx.rangeDels)
		p := tx.writes[k]
		if p.del {
			in.Ops[i] = intention.Op{Kind: intention.OpDelete, Key: []byte(k)}
		} else {
			in.Ops[i] = intention.Op{Kind: intention.OpPut, Key: []byte(k), Value: p.value}
		}
	}
	reads := make([]string, 0, len(tx.reads))
	for k := range tx.reads {
		reads = append(reads, k)
	}
	slices.Sort(reads)
	for _, k := range reads {
		in.Reads = append(in.Reads, []byte(k))
	}
	in.Ranges = tx.ranges
	return in
}
