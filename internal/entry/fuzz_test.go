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

// FuzzEntryPayload wraps arbitrary payloads of every type in a valid
// envelope, so that the payload decoders behind the envelope's checksum are
// fuzzed too: Decode*Entry must never panic, and must either decode or
// report corruption naming the position. Seeds are in
// testdata/fuzz/FuzzEntryPayload.
func FuzzEntryPayload(f *testing.F) {
	f.Add(uint8(TypeHeader), NewHeader(100, 1024, 4096).MarshalPayload())
	f.Add(uint8(TypeIntention), []byte{0x95, 0, 0, 0x90, 0x90, 0x91, 0x93, 1, 0xc4, 1, 'k', 0xc0})
	f.Add(uint8(TypeAfterimage), []byte{0x92, 5, 0x91, 0x99, 0xc4, 1, 'k', 0xc0, 1, 0xc2, 1, 0xc0, 1, 0xc0, 0xc0})
	f.Fuzz(func(t *testing.T, typ uint8, payload []byte) {
		const pos = 5
		data := Encode(nil, Type(typ), payload)
		gotT, gotP, err := Decode(pos, data)
		if !Type(typ).Known() {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unknown type %d: %v", typ, err)
			}
			return
		}
		if err != nil || gotT != Type(typ) || !bytes.Equal(gotP, payload) {
			t.Fatalf("valid envelope: %v", err)
		}
		check := func(err error, sentinel error) {
			t.Helper()
			if err == nil {
				return
			}
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Pos != pos || !errors.Is(err, sentinel) {
				t.Fatalf("error %v", err)
			}
		}
		h, err := DecodeHeaderEntry(pos, data)
		if Type(typ) == TypeHeader {
			check(err, ErrCorrupt)
			if err == nil {
				if err := h.Validate(); err != nil {
					t.Fatalf("decoded header does not validate: %v", err)
				}
				if h2, err := DecodeHeader(h.MarshalPayload()); err != nil || *h2 != *h {
					t.Fatalf("header round trip: %v", err)
				}
			}
		} else if !errors.Is(err, ErrWrongType) {
			t.Fatalf("header from type %d: %v", typ, err)
		}
		in, err := DecodeIntentionEntry(pos, data)
		if Type(typ) == TypeIntention {
			check(err, intention.ErrMalformed)
			if err == nil {
				in2, err := DecodeIntentionEntry(pos, AppendIntention(nil, in))
				if err != nil || !reflect.DeepEqual(in2, in) {
					t.Fatalf("intention round trip: %v", err)
				}
			}
		}
		a, err := DecodeAfterimageEntry(pos, data)
		if Type(typ) == TypeAfterimage {
			check(err, afterimage.ErrMalformed)
			if err == nil {
				a2, err := DecodeAfterimageEntry(pos, AppendAfterimage(nil, a))
				if err != nil || !reflect.DeepEqual(a2, a) {
					t.Fatalf("afterimage round trip: %v", err)
				}
			}
		}
	})
}
