package afterimage

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics, that whatever it refuses is
// ErrMalformed, and that whatever it accepts validates, re-encodes to a
// payload that decodes to an equal afterimage, and is a fixed point of
// encoding. DecodeNode must agree with Decode. Seeds are in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(typical(3).AppendPayload(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if _, ncErr := DecodeNoCopy(data); ncErr == nil {
				t.Fatalf("DecodeNoCopy accepts what Decode refuses")
			}
			// DecodeNode may succeed on a prefix; it must not panic.
			for off := range uint32(4) {
				DecodeNode(data, off)
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("decoded afterimage does not validate: %v", err)
		}
		nc, err := DecodeNoCopy(data)
		if err != nil || !reflect.DeepEqual(nc, a) {
			t.Fatalf("DecodeNoCopy differs (err %v)", err)
		}
		for i := range a.Nodes {
			nd, err := DecodeNode(data, uint32(i))
			if err != nil || !reflect.DeepEqual(nd, a.Nodes[i]) {
				t.Fatalf("DecodeNode(%d) differs (err %v)", i, err)
			}
		}
		_ = a.PointerCounts()
		enc := a.AppendPayload(nil)
		if len(enc) != a.EncodedSize() {
			t.Fatalf("EncodedSize %d, encoded %d", a.EncodedSize(), len(enc))
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, a) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", again, a)
		}
		if enc2 := again.AppendPayload(nil); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not a fixed point")
		}
	})
}
