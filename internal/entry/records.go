package entry

import (
	"fmt"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/intention"
)

// EncodeHeader returns the complete log entry (envelope and payload) of h.
func EncodeHeader(h *Header) []byte {
	return AppendHeader(nil, h)
}

// AppendHeader appends the complete log entry of h to dst.
func AppendHeader(dst []byte, h *Header) []byte {
	dst, start := begin(dst, 1+5+9+5+5)
	dst = h.AppendPayload(dst)
	return seal(dst, start, TypeHeader)
}

// AppendIntention appends the complete log entry of in to dst, encoding the
// payload in place (one allocation at most, none if dst has room).
func AppendIntention(dst []byte, in *intention.Intention) []byte {
	dst, start := begin(dst, in.EncodedSize())
	dst = in.AppendPayload(dst)
	return seal(dst, start, TypeIntention)
}

// AppendAfterimage appends the complete log entry of a to dst, encoding the
// payload in place (one allocation at most, none if dst has room).
func AppendAfterimage(dst []byte, a *afterimage.Afterimage) []byte {
	dst, start := begin(dst, a.EncodedSize())
	dst = a.AppendPayload(dst)
	return seal(dst, start, TypeAfterimage)
}

// decodeAs checks the envelope and that the entry is of type want.
func decodeAs(pos uint64, data []byte, want Type) ([]byte, error) {
	t, payload, err := Decode(pos, data)
	if err != nil {
		return nil, err
	}
	if t != want {
		return nil, fmt.Errorf("%w: log position %d holds %s, want %s", ErrWrongType, pos, t, want)
	}
	return payload, nil
}

// DecodeHeaderEntry decodes and validates the header entry at pos. Errors
// wrap ErrCorrupt (as a *CorruptError naming pos), or ErrWrongType for an
// intact entry of another type. The result does not alias data.
func DecodeHeaderEntry(pos uint64, data []byte) (*Header, error) {
	payload, err := decodeAs(pos, data, TypeHeader)
	if err != nil {
		return nil, err
	}
	h, err := decodeHeader(payload)
	if err != nil {
		return nil, Corrupt(pos, err)
	}
	return h, nil
}

// DecodeIntentionEntry decodes the intention entry at pos (structure only;
// see intention.Intention.Validate). The result aliases data
// (intention.DecodeNoCopy): the caller must own data, as it owns what
// log.Read returns, and must not modify it afterwards. Errors wrap ErrCorrupt
// (as a *CorruptError naming pos, wrapping intention.ErrMalformed when the
// payload does not decode), or ErrWrongType for an intact entry of another
// type.
func DecodeIntentionEntry(pos uint64, data []byte) (*intention.Intention, error) {
	payload, err := decodeAs(pos, data, TypeIntention)
	if err != nil {
		return nil, err
	}
	in, err := intention.DecodeNoCopy(payload)
	if err != nil {
		return nil, Corrupt(pos, err)
	}
	return in, nil
}

// DecodeAfterimageEntry decodes and validates the afterimage entry at pos.
// The result aliases data (afterimage.DecodeNoCopy): the caller must own
// data and must not modify it afterwards. Errors wrap ErrCorrupt (as a
// *CorruptError naming pos, wrapping afterimage.ErrMalformed when the payload
// does not decode), or ErrWrongType for an intact entry of another type.
func DecodeAfterimageEntry(pos uint64, data []byte) (*afterimage.Afterimage, error) {
	payload, err := decodeAs(pos, data, TypeAfterimage)
	if err != nil {
		return nil, err
	}
	a, err := afterimage.DecodeNoCopy(payload)
	if err != nil {
		return nil, Corrupt(pos, err)
	}
	return a, nil
}
