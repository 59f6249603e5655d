package entry

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/intention"
)

// FuzzDecode checks that Decode never panics, that whatever it refuses is
// corruption naming the position, and that whatever it accepts re-encodes to
// exactly the input (the envelope has one encoding). The payload is then
// decoded by its type: headers must round-trip, and intention and
// afterimage payloads must decode or be corruption wrapping their package's
// sentinel. Seeds are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(EncodeHeader(NewHeader(100, 1024, 4096)))
	f.Add(Encode(nil, TypeIntention, []byte{0x95, 0, 0, 0x90, 0x90, 0x90}))
	f.Fuzz(func(t *testing.T, data []byte) {
		const pos = 77
		typ, payload, err := Decode(pos, data)
		if err != nil {
			var ce *CorruptError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Pos != pos {
				t.Fatalf("error %v is not a corruption at %d", err, pos)
			}
			return
		}
		if !bytes.Equal(Encode(nil, typ, payload), data) {
			t.Fatalf("re-encoding differs")
		}
		switch typ {
		case TypeHeader:
			h, err := DecodeHeaderEntry(pos, data)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("header error %v is not corruption", err)
				}
				return
			}
			if err := h.Validate(); err != nil {
				t.Fatalf("decoded header does not validate: %v", err)
			}
			h2, err := DecodeHeader(h.MarshalPayload())
			if err != nil || *h2 != *h {
				t.Fatalf("header round trip: %+v, %v", h2, err)
			}
		case TypeIntention:
			_, err := DecodeIntentionEntry(pos, data)
			if err != nil && !(errors.Is(err, ErrCorrupt) && errors.Is(err, intention.ErrMalformed)) {
				t.Fatalf("intention error %v", err)
			}
		case TypeAfterimage:
			a, err := DecodeAfterimageEntry(pos, data)
			if err != nil {
				if !(errors.Is(err, ErrCorrupt) && errors.Is(err, afterimage.ErrMalformed)) {
					t.Fatalf("afterimage error %v", err)
				}
				return
			}
			a2, err := DecodeAfterimageEntry(pos, AppendAfterimage(nil, a))
			if err != nil || !reflect.DeepEqual(a2, a) {
				t.Fatalf("afterimage round trip: %v", err)
			}
		}
	})
}
