package cruzdb

import (
	"errors"
	"fmt"

	"github.com/cruzlog/cruzdb/internal/entry"
)

// Errors returned by cruzdb. Test with errors.Is: returned errors wrap them
// with context.
var (
	// ErrNotFound: the key has no value in the transaction's snapshot.
	ErrNotFound = errors.New("cruzdb: key not found")
	// ErrConflict: the transaction aborted because something it read was
	// written after its snapshot (see *ConflictError), or its snapshot was
	// older than the conflict window.
	ErrConflict = errors.New("cruzdb: transaction conflict")
	// ErrTxnClosed: the transaction was already committed or rolled back.
	ErrTxnClosed = errors.New("cruzdb: transaction closed")
	// ErrReadOnly: a write in a read-only transaction.
	ErrReadOnly = errors.New("cruzdb: transaction is read-only")
	// ErrClosed: the database is closed.
	ErrClosed = errors.New("cruzdb: database closed")
	// ErrCorrupt: a log entry failed its checksum or does not decode. The
	// error names the position. cruzdb never skips or fills over it.
	ErrCorrupt = entry.ErrCorrupt
	// ErrEmptyKey: keys must be at least one byte long.
	ErrEmptyKey = errors.New("cruzdb: empty key")
	// ErrKeyTooLarge: the key is longer than the database's MaxKeySize.
	ErrKeyTooLarge = errors.New("cruzdb: key too large")
	// ErrValueTooLarge: the value is longer than the database's MaxValueSize.
	ErrValueTooLarge = errors.New("cruzdb: value too large")
	// ErrTxnTooLarge: the transaction's intention does not fit in one log
	// entry.
	ErrTxnTooLarge = errors.New("cruzdb: transaction too large")
	// ErrInvalidOptions: Open was given options it cannot use.
	ErrInvalidOptions = errors.New("cruzdb: invalid options")
	// ErrRejected: the processor refused the intention as invalid (it broke
	// the database header's limits). Clients that check their input first
	// never see it.
	ErrRejected = errors.New("cruzdb: intention rejected")
	// ErrCommitUnknown: appending the intention failed in a way that does not
	// say whether it reached the log; the transaction may or may not commit.
	ErrCommitUnknown = errors.New("cruzdb: commit outcome unknown")
	// ErrLeakedTxn: Close found transactions that were never committed or
	// rolled back.
	ErrLeakedTxn = errors.New("cruzdb: transactions left open at close")
)

// ConflictError describes a conflict abort. It matches ErrConflict.
type ConflictError struct {
	// Key that collided (nil when the snapshot was too old).
	Key []byte
	// Snapshot is the position the transaction read; Pos is its intention's
	// position; WrittenAt is where the colliding write was committed.
	Snapshot, Pos, WrittenAt uint64
	TooOld                   bool
}

func (e *ConflictError) Error() string {
	if e.TooOld {
		return fmt.Sprintf("cruzdb: transaction conflict: snapshot %d too old for intention at %d (outside the conflict window)", e.Snapshot, e.Pos)
	}
	return fmt.Sprintf("cruzdb: transaction conflict: key %q written at %d, after snapshot %d (intention at %d)", e.Key, e.WrittenAt, e.Snapshot, e.Pos)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
