// Package entry frames every cruzdb log entry: a format version, an entry
// type, a CRC-32C of the payload, and the payload itself. A bad checksum, an
// unknown version or type, or a payload that does not decode is corruption
// (ErrCorrupt) naming the position; it is never treated as junk, because nodes
// would then disagree about the log.
package entry

import "errors"

// Type is the kind of a log entry.
type Type uint8

const (
	TypeHeader     Type = 1
	TypeIntention  Type = 2
	TypeAfterimage Type = 3
	TypeCheckpoint Type = 4 // a cut, an image chunk or a marker (checkpoint.go)
)

// Version is the envelope format version written by this code.
const Version = 1

// ErrCorrupt marks a log entry that cannot be trusted.
var ErrCorrupt = errors.New("cruzdb: corrupt log entry")

// Header is the database header at position 0: the format version and every
// parameter that changes a commit decision. Nodes take these from the header,
// never from their own options, so every node decides alike.
type Header struct {
	FormatVersion uint32
	// ConflictWindow: an intention at p whose snapshot s has p-s > window
	// aborts as too old; tombstones older than the window are dropped.
	ConflictWindow uint64
	// MaxKeySize and MaxValueSize bound what an intention may write; larger
	// ones make the intention abort (the client refuses them first).
	MaxKeySize   uint32
	MaxValueSize uint32
}
