package intention

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics, that whatever it refuses is
// ErrMalformed, and that whatever it accepts re-encodes to a payload that
// decodes to an equal intention and is a fixed point of encoding. Seeds are
// in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(typical(2).AppendPayload(nil))
	f.Add((&Intention{Ranges: []Range{{Hi: []byte{}}, {Lo: []byte("a")}}, Ops: []Op{{Kind: OpDelete, Key: []byte("k")}}}).AppendPayload(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := Decode(data)
		nc, ncErr := DecodeNoCopy(data)
		if (err == nil) != (ncErr == nil) {
			t.Fatalf("Decode err %v, DecodeNoCopy err %v", err, ncErr)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !reflect.DeepEqual(in, nc) {
			t.Fatalf("Decode and DecodeNoCopy differ")
		}
		_ = in.Validate(16, 16) // must not panic either
		enc := in.AppendPayload(nil)
		if len(enc) != in.EncodedSize() {
			t.Fatalf("EncodedSize %d, encoded %d", in.EncodedSize(), len(enc))
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, in) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", again, in)
		}
		if enc2 := again.AppendPayload(nil); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not a fixed point")
		}
	})
}
