// Package log defines the shared log that is cruzdb's only durable state.
//
// The contract follows CORFU and ZLog. Every backend (log/memlog, log/boltlog,
// or one of your own) must honour it, and log/logtest checks that it does.
//
// # Positions
//
// Positions are dense, starting at 0. The first Append to an empty log returns
// 0; Tail returns the next position to be assigned. A position below the tail
// that holds neither data nor junk is a hole: an appender took it and has not
// (yet) written it, because it is slow or because it died.
//
// # Operations
//
//   - Append takes the next position and writes data there. If that position
//     was filled meanwhile (Fill may target positions at or beyond the tail),
//     Append skips it and takes another. Append returns only once the data is
//     durable, as durable as the backend promises to be.
//   - Read returns the data at a position, as a copy the caller owns, or an
//     error wrapping ErrNotWritten (a hole, or at/after the tail), ErrFilled
//     (junk) or ErrTrimmed.
//   - Fill turns an unwritten position into junk forever, so that a slow writer
//     can never land there. It is idempotent on junk and on trimmed positions,
//     returns an error wrapping ErrWritten where data is, and is allowed at or
//     beyond the tail.
//   - Trim(p) makes every position below p read ErrTrimmed; they can never be
//     written again. A lower trim than one already done is a no-op.
//   - Tail returns the next position to be assigned.
//
// # Write-once
//
// A position that holds data never changes, and junk never becomes data. Data
// passed to Append is not retained by the log after Append returns; slices
// returned by Read belong to the caller.
//
// # Errors
//
// Errors wrap the sentinel errors below (test with errors.Is) and name the
// position they concern. A cancelled or expired context makes a call return
// the context's error (wrapped). After Close, every call returns an error
// wrapping ErrClosed. Entries may be up to MaxEntrySize bytes; larger ones are
// refused with ErrTooLarge. Zero-length entries are valid data, distinct from
// junk and from holes.
package log

import (
	"context"
	"errors"
)

// Position is the index of an entry in the log.
type Position uint64

// MaxEntrySize is the largest entry every backend must accept (16 MiB).
// Backends refuse larger entries with an error wrapping ErrTooLarge.
const MaxEntrySize = 16 << 20

// Sentinel errors. Backends wrap them with the position concerned.
var (
	// ErrNotWritten: the position is a hole or at/after the tail.
	ErrNotWritten = errors.New("log: position not written")
	// ErrWritten: the position already holds data.
	ErrWritten = errors.New("log: position already written")
	// ErrFilled: the position was filled with junk.
	ErrFilled = errors.New("log: position filled")
	// ErrTrimmed: the position was trimmed.
	ErrTrimmed = errors.New("log: position trimmed")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("log: closed")
	// ErrTooLarge: the entry is larger than the backend accepts.
	ErrTooLarge = errors.New("log: entry too large")
)

// ErrCorrupt: a backend found its storage corrupt (a record that fails its
// checksum, an index that does not match its segment). The error names the
// file, and the position where one is known. A corrupt entry is reported,
// never skipped, filled over or returned as data.
var ErrCorrupt = errors.New("log: storage corrupt")

// BatchAppender is implemented by logs that can append several entries as
// one unit of work (for boltlog: one transaction and one fsync), so that
// entries that would otherwise wait for each other's commits share one.
// AppendBatch returns the entries' positions, ascending in the order given;
// the positions need not be contiguous. On an error each entry may or may not
// have been written, as with Append. data is not retained after it returns.
type BatchAppender interface {
	AppendBatch(ctx context.Context, data [][]byte) ([]Position, error)
}

// RangeReader is implemented by logs that can read part of an entry without
// copying the rest of it (for boltlog: only the parts of a large entry that
// hold the range). ReadRange returns a copy of bytes [off, off+n) of the
// entry at pos, cut short where the entry ends (empty when off is at or past
// its end), and the entry's length. Its errors are Read's; a negative off or
// n is an error too. A caller that reads part of an entry cannot check the
// entry's envelope checksum, and must check what it reads some other way.
type RangeReader interface {
	ReadRange(ctx context.Context, pos Position, off, n int) ([]byte, int, error)
}

// TailWaiter is implemented by logs that can tell a reader when the tail
// moves, so that it need not poll Tail (against a network log, a round trip
// each time). WaitTail returns once the log's tail is beyond after, with a
// tail it saw then (greater than after, never greater than the log's tail);
// at once if it already is. Positions below the returned tail have been
// assigned, though one may still be a hole. The notice may arrive some time
// after the tail moved (a watch's delay), but WaitTail must not keep waiting
// once the tail has passed after. When ctx ends first it returns an error
// wrapping ctx's error; after Close, one wrapping ErrClosed.
type TailWaiter interface {
	WaitTail(ctx context.Context, after Position) (Position, error)
}

// TailNotifier is implemented by logs that can call a function when their
// tail moves, without a goroutine waiting for it (log/seglog). A reader that
// must not be woken by every append (the processor, while committing
// goroutines apply their own intentions) arms one only while it needs it.
type TailNotifier interface {
	// NotifyTail arranges for f to be called once: with a tail beyond after
	// (as WaitTail would return it) once the log's tail is beyond after, or
	// with an error wrapping ErrClosed once the log is closed. If either
	// holds already, f is called before NotifyTail returns; otherwise on
	// the goroutine that moves the tail or closes the log, possibly with
	// the log's locks held, so f must not block or call the log. stop
	// cancels the call: true if f will not be called, false if it was or
	// is being called.
	NotifyTail(after Position, f func(Position, error)) (stop func() bool)
}

// OrderNotifier is implemented by a log that orders appends itself and can
// say what it ordered before it is durable (log/seglog, whose committer
// assigns a group's positions and then writes and syncs it). A reader that
// replays the log may then do the work of those entries while the log
// syncs them, as long as it shows nobody their effects before they are
// durable (cruzdb applies intentions early and publishes their decisions
// after the log's fdatasync, as Pebble applies a batch to its memtable
// while the WAL syncs and makes it visible after).
type OrderNotifier interface {
	// NotifyOrder makes w the log's one OrderWatcher (replacing any other)
	// until stop is called; stop returns once no call to w is under way.
	NotifyOrder(w OrderWatcher) (stop func())
}

// OrderWatcher is told by an OrderNotifier what it ordered and what became
// durable. Both are called on the log's committing goroutine, in position
// order, never two at once, and must not block or call the log.
type OrderWatcher interface {
	// Ordered: data[i] will be the entry at position first+i, every one of
	// the positions is the next after those reported before (or the first
	// reported), and none is durable yet. The entries are lost if the log
	// fails before they are durable; the log then fails every later call,
	// and Durable is never called for them. data and its slices are the
	// log's only during the call: copy what is kept.
	Ordered(first Position, data [][]byte)
	// Durable: every position below tail is durable, and Reads of them
	// succeed. Called before the appenders of those positions return. The
	// log makes what it ordered durable in order: once an append of it has
	// returned, every position ordered before it is durable too (so a
	// watcher replaced by another may learn it from its own appends).
	Durable(tail Position)
}

// CheckedReader is implemented by logs that check what they read: the bytes
// Read and ReadRange return were checked against a checksum stored with
// their entry (when the entry was first read from storage, or they never
// left memory since it was appended), and corruption found is reported as
// an error wrapping ErrCorrupt instead of returned. A reader of part of an
// entry from a log whose ChecksReads is true may rely on that check in
// place of the entry's envelope checksum.
type CheckedReader interface {
	ChecksReads() bool
}

// Log is a shared, write-once, totally ordered log. Implementations are safe
// for concurrent use by multiple goroutines.
type Log interface {
	// Append writes data at the next free position and returns it.
	Append(ctx context.Context, data []byte) (Position, error)
	// Read returns a copy of the data at pos.
	Read(ctx context.Context, pos Position) ([]byte, error)
	// Fill marks an unwritten position as junk.
	Fill(ctx context.Context, pos Position) error
	// Trim reclaims every position below pos.
	Trim(ctx context.Context, pos Position) error
	// Tail returns the next position to be assigned.
	Tail(ctx context.Context) (Position, error)
	// Close releases the log. Later calls return ErrClosed.
	Close() error
}
