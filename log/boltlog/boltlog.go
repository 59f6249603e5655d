package boltlog

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cruzlog/cruzdb/internal/groupcommit"
	"github.com/cruzlog/cruzdb/log"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Log is a shared log stored in one bbolt file. It implements log.Log and is
// safe for concurrent use. See the package documentation for its model.
type Log struct {
	db   *bolt.DB
	path string
	opts Options
	part int // partSize of the file's pages

	// version is the file's format version; only the token holder (and
	// Open) touch it.
	version uint32

	// tail and trim are the committed values; only the token holder (and Open)
	// store them.
	tail   atomic.Uint64
	trim   atomic.Uint64
	closed atomic.Bool

	q groupcommit.Queue // requests not yet taken into a group; the sticky write failure

	// token is held by whoever commits groups, the committer goroutine or
	// a requester committing inline; it has a value when free. Close takes
	// it for good.
	token         chan struct{}
	wake          chan struct{} // cap 1: the queue may be non-empty
	stop          chan struct{} // closed by Close
	committerDone chan struct{}

	// Token-owned scratch, reused across groups.
	group []*groupcommit.Request
	arena []byte

	reclaimKick chan struct{} // cap 1
	reclaimStop chan struct{}
	reclaimDone chan struct{}
}

var (
	_ log.Log         = (*Log)(nil)
	_ log.RangeReader = (*Log)(nil)
)

// orBackground tolerates a nil context, as context.Background.
func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// Append writes data at the next free position and returns that position once
// the entry is durable. Zero-length entries are allowed: they are data,
// distinct from junk and from holes. Entries larger than log.MaxEntrySize are
// refused with an error wrapping log.ErrTooLarge, and nothing is written.
func (l *Log) Append(ctx context.Context, data []byte) (log.Position, error) {
	ctx = orBackground(ctx)
	if err := groupcommit.CheckAppends(ctx, "boltlog", data); err != nil {
		return 0, err
	}
	r := groupcommit.Get(groupcommit.Append)
	r.Data = data
	if err := l.submit(r); err != nil {
		groupcommit.Put(r)
		return 0, fmt.Errorf("boltlog: append: %w", err)
	}
	if err := r.Wait(ctx); err != nil {
		return 0, fmt.Errorf("boltlog: append: %w", err) // withdrawn: not pooled
	}
	pos, err := r.Pos, r.Err
	groupcommit.Put(r)
	return pos, err
}

// AppendBatch appends the entries in order, in one group commit (one bbolt
// transaction, one fsync) unless Options.MaxGroupBytes splits them, and
// returns their positions, ascending. It implements log.BatchAppender. On an
// error each entry may or may not have been written, as with Append.
func (l *Log) AppendBatch(ctx context.Context, data [][]byte) ([]log.Position, error) {
	ctx = orBackground(ctx)
	if err := groupcommit.CheckAppends(ctx, "boltlog", data...); err != nil {
		return nil, err
	}
	rs := make([]*groupcommit.Request, len(data))
	for i, d := range data {
		rs[i] = groupcommit.Get(groupcommit.Append)
		rs[i].Data = d
	}
	if err := l.submitAll(rs...); err != nil {
		for _, r := range rs {
			groupcommit.Put(r)
		}
		return nil, fmt.Errorf("boltlog: append: %w", err)
	}
	return groupcommit.WaitAll(ctx, "boltlog", rs, groupcommit.Put)
}

// Fill makes pos junk forever. See log.Log.
func (l *Log) Fill(ctx context.Context, pos log.Position) error {
	return l.do(ctx, groupcommit.Fill, pos, "fill")
}

// Trim makes every position below pos read log.ErrTrimmed. The trim point is
// durable when Trim returns; the space of trimmed entries is reclaimed in the
// background, in batches of Options.ReclaimBatch (bbolt reuses freed pages;
// the file does not shrink).
func (l *Log) Trim(ctx context.Context, pos log.Position) error {
	return l.do(ctx, groupcommit.Trim, pos, "trim")
}

func (l *Log) do(ctx context.Context, op groupcommit.Op, pos log.Position, name string) error {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltlog: %s position %d: %w", name, pos, err)
	}
	r := groupcommit.Get(op)
	r.Pos = pos
	if err := l.submit(r); err != nil {
		groupcommit.Put(r)
		return fmt.Errorf("boltlog: %s position %d: %w", name, pos, err)
	}
	if err := r.Wait(ctx); err != nil {
		return fmt.Errorf("boltlog: %s position %d: %w", name, pos, err)
	}
	err := r.Err
	groupcommit.Put(r)
	return err
}

// Read returns a copy of the entry at pos. It runs in a bbolt read
// transaction, concurrently with commits.
func (l *Log) Read(ctx context.Context, pos log.Position) ([]byte, error) {
	var out []byte
	err := l.view(ctx, pos, func(b *bolt.Bucket, v []byte) (err error) {
		if v[0] == tagData {
			out = make([]byte, len(v)-1)
			copy(out, v[1:])
			return nil
		}
		out, _, err = l.readPartsRange(b, uint64(pos), v, 0, log.MaxEntrySize)
		return err
	})
	return out, err
}

// view runs fn on the value of the data entry at pos, in a read
// transaction, or returns the error that reading pos gives: not written,
// junk, trimmed, closed, corrupt.
func (l *Log) view(ctx context.Context, pos log.Position, fn func(b *bolt.Bucket, v []byte) error) error {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltlog: read position %d: %w", pos, err)
	}
	if l.closed.Load() {
		return fmt.Errorf("boltlog: read position %d: %w", pos, log.ErrClosed)
	}
	tx, err := l.db.Begin(false)
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			err = log.ErrClosed
		}
		return fmt.Errorf("boltlog: read position %d: %w", pos, err)
	}
	defer func() { _ = tx.Rollback() }()
	b := tx.Bucket(bucketEntries)
	var kb [8]byte
	v := b.Get(posKey(kb[:0], uint64(pos)))
	// The trim point is loaded after the read transaction began: the
	// reclaimer deletes an entry only after the trim point covering it was
	// published, so a missing entry below the trim point reads as trimmed.
	if uint64(pos) < l.trim.Load() {
		return fmt.Errorf("boltlog: read position %d: %w", pos, log.ErrTrimmed)
	}
	switch {
	case v == nil:
		return fmt.Errorf("boltlog: read position %d: %w", pos, log.ErrNotWritten)
	case len(v) == 0:
		return fmt.Errorf("boltlog: read position %d: corrupt entry (empty value)", pos)
	case v[0] == tagData, v[0] == tagParts:
		return fn(b, v)
	case v[0] == tagJunk && len(v) == 1:
		return fmt.Errorf("boltlog: read position %d: %w", pos, log.ErrFilled)
	}
	return fmt.Errorf("boltlog: read position %d: corrupt entry (tag %#x, %d bytes)", pos, v[0], len(v))
}

// Tail returns the next position to be assigned. Positions filled at or
// beyond it are skipped by Append, but do not move it.
func (l *Log) Tail(ctx context.Context) (log.Position, error) {
	ctx = orBackground(ctx)
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("boltlog: tail: %w", err)
	}
	if l.closed.Load() {
		return 0, fmt.Errorf("boltlog: tail: %w", log.ErrClosed)
	}
	return log.Position(l.tail.Load()), nil
}

// Close waits for the group being committed, fails the requests still queued
// with log.ErrClosed, stops the reclaimer, waits for reads in progress and
// closes the file. Later calls, Close included, return log.ErrClosed.
func (l *Log) Close() error {
	l.closed.Store(true) // already true on a second Close
	if !l.q.Shut("boltlog") {
		return fmt.Errorf("boltlog: close %s: %w", l.path, log.ErrClosed)
	}
	<-l.token // wait for the group being committed; no other group starts
	close(l.stop)
	<-l.committerDone
	close(l.reclaimStop)
	<-l.reclaimDone
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("boltlog: close %s: %w", l.path, err)
	}
	return nil
}
