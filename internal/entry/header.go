package entry

import (
	"errors"
	"fmt"
	"math"

	"github.com/cruzlog/cruzdb/internal/wire"
)

// FormatVersion is the database format version this code writes and reads:
// the layout of every entry payload. Header.FormatVersion must equal it.
const FormatVersion uint32 = 1

// ErrInvalidHeader marks a header whose parameters are out of range (see
// Header.Validate).
var ErrInvalidHeader = errors.New("cruzdb: invalid header")

// NewHeader returns a header of the current FormatVersion with the given
// parameters. It does not validate them.
func NewHeader(conflictWindow uint64, maxKeySize, maxValueSize uint32) *Header {
	return &Header{
		FormatVersion:  FormatVersion,
		ConflictWindow: conflictWindow,
		MaxKeySize:     maxKeySize,
		MaxValueSize:   maxValueSize,
	}
}

// Validate checks that h is a header this code can run with: a known
// FormatVersion, a ConflictWindow of at least 1, and key and value size
// limits above 0. An error wraps ErrInvalidHeader.
func (h *Header) Validate() error {
	switch {
	case h.FormatVersion != FormatVersion:
		return fmt.Errorf("%w: unknown format version %d (this code knows %d)", ErrInvalidHeader, h.FormatVersion, FormatVersion)
	case h.ConflictWindow < 1:
		return fmt.Errorf("%w: conflict window %d, want at least 1", ErrInvalidHeader, h.ConflictWindow)
	case h.MaxKeySize == 0:
		return fmt.Errorf("%w: max key size 0", ErrInvalidHeader)
	case h.MaxValueSize == 0:
		return fmt.Errorf("%w: max value size 0", ErrInvalidHeader)
	}
	return nil
}

// The header payload is the msgpack array
//
//	[format_version uint, conflict_window uint, max_key_size uint, max_value_size uint]
const headerFields = 4

// MarshalPayload returns the msgpack payload of h (without envelope).
func (h *Header) MarshalPayload() []byte {
	return h.AppendPayload(make([]byte, 0, 1+5+9+5+5))
}

// AppendPayload appends the msgpack payload of h to dst.
func (h *Header) AppendPayload(dst []byte) []byte {
	dst = wire.AppendArrayLen(dst, headerFields)
	dst = wire.AppendUint(dst, uint64(h.FormatVersion))
	dst = wire.AppendUint(dst, h.ConflictWindow)
	dst = wire.AppendUint(dst, uint64(h.MaxKeySize))
	return wire.AppendUint(dst, uint64(h.MaxValueSize))
}

// DecodeHeader decodes and validates a header payload. A payload that does
// not decode is an error wrapping ErrCorrupt; a header that decodes but does
// not validate wraps both ErrCorrupt and ErrInvalidHeader. The position is
// the caller's to add (DecodeHeaderEntry does). It never panics.
func DecodeHeader(payload []byte) (*Header, error) {
	h, err := decodeHeader(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return h, nil
}

// decodeHeader is DecodeHeader without the ErrCorrupt wrapping.
func decodeHeader(payload []byte) (*Header, error) {
	r := wire.NewReader(payload)
	n, err := r.ArrayLen(1)
	if err != nil {
		return nil, badHeader(err)
	}
	if n != headerFields {
		return nil, badHeader(fmt.Errorf("%d fields, want %d", n, headerFields))
	}
	var h Header
	var v uint64
	if v, err = r.UintMax(math.MaxUint32); err != nil {
		return nil, badHeader(fmt.Errorf("format version: %w", err))
	}
	h.FormatVersion = uint32(v)
	if h.ConflictWindow, err = r.Uint(); err != nil {
		return nil, badHeader(fmt.Errorf("conflict window: %w", err))
	}
	if v, err = r.UintMax(math.MaxUint32); err != nil {
		return nil, badHeader(fmt.Errorf("max key size: %w", err))
	}
	h.MaxKeySize = uint32(v)
	if v, err = r.UintMax(math.MaxUint32); err != nil {
		return nil, badHeader(fmt.Errorf("max value size: %w", err))
	}
	h.MaxValueSize = uint32(v)
	if err := r.Finish(); err != nil {
		return nil, badHeader(err)
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return &h, nil
}

func badHeader(err error) error {
	return fmt.Errorf("malformed header: %w", err)
}
