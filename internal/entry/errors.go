package entry

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cruzlog/cruzdb/log"
)

// CorruptError is the error for an entry that cannot be trusted. It wraps
// ErrCorrupt (errors.Is(err, ErrCorrupt)) and, when there is one, the
// decoder's error that revealed the corruption (for example one wrapping
// intention.ErrMalformed). Its text names the position:
//
//	cruzdb: log position 17: corrupt log entry: checksum mismatch (...)
type CorruptError struct {
	Pos    uint64 // log position of the entry
	Reason string // what is wrong, when Err does not say it
	Err    error  // the underlying decode error, or nil
}

func (e *CorruptError) Error() string {
	s := fmt.Sprintf("cruzdb: log position %d: corrupt log entry", e.Pos)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		// An entry error already says "cruzdb: " once.
		s += ": " + strings.TrimPrefix(e.Err.Error(), "cruzdb: ")
	}
	return s
}

// Unwrap returns ErrCorrupt, log.ErrCorrupt (a corrupt entry is corrupt
// storage to whoever tests for the log's sentinel) and the underlying
// error, if any.
func (e *CorruptError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrCorrupt, log.ErrCorrupt}
	}
	return []error{ErrCorrupt, log.ErrCorrupt, e.Err}
}

// Corrupt returns a *CorruptError for the entry at pos whose payload failed
// to decode with err (for example an error wrapping intention.ErrMalformed or
// afterimage.ErrMalformed). A nil err gives a nil error.
func Corrupt(pos uint64, err error) error {
	if err == nil {
		return nil
	}
	return &CorruptError{Pos: pos, Err: err}
}

func corruptf(pos uint64, format string, args ...any) error {
	return &CorruptError{Pos: pos, Reason: fmt.Sprintf(format, args...)}
}

// ErrWrongType is returned by the Decode*Entry functions for an intact entry
// of another type than the one asked for. It is not ErrCorrupt: whether an
// unexpected type is corruption depends on where it was found.
var ErrWrongType = errors.New("cruzdb: unexpected log entry type")
