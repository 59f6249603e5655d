package etcdlog

import (
	"bytes"
	"testing"
)

// FuzzDecodeValue: decoding any entry value never panics, and a decoded
// value encodes back to the same bytes.
func FuzzDecodeValue(f *testing.F) {
	f.Add([]byte{kindData})
	f.Add([]byte("dhello"))
	f.Add([]byte{kindJunk})
	f.Add(encodeManifest(manifest{id: "0123456789abcdef0123456789abcdef", size: 3 << 20, chunkSize: 1 << 20}))
	f.Add([]byte("c0123456789abcdef0123456789abcdef\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeValue(b)
		if err != nil {
			return
		}
		var again []byte
		switch v.kind {
		case kindData:
			again = append([]byte{kindData}, v.data...)
		case kindJunk:
			again = []byte{kindJunk}
		case kindChunked:
			if v.man.chunks() < 2 || v.man.size > 16<<20 {
				t.Fatalf("manifest %+v accepted", v.man)
			}
			again = encodeManifest(v.man)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("%q decodes to %+v, which encodes to %q", b, v, again)
		}
	})
}

// FuzzDecodeAhead: the ahead list decodes without panicking, ascending, and
// round-trips.
func FuzzDecodeAhead(f *testing.F) {
	f.Add("")
	f.Add(encodeAhead([]uint64{2, 1 << 40}))
	f.Add("0000000000000002,0000000000000001")
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := decodeAhead(s)
		if err != nil {
			return
		}
		for i := 1; i < len(ps); i++ {
			if ps[i] <= ps[i-1] {
				t.Fatalf("%q decodes to %v, not ascending", s, ps)
			}
		}
		if again := encodeAhead(ps); again != s && !(len(ps) == 0 && s == "") {
			// Hex case may differ; decoding again must agree.
			qs, err := decodeAhead(again)
			if err != nil || len(qs) != len(ps) {
				t.Fatalf("%q -> %v -> %q -> %v, %v", s, ps, again, qs, err)
			}
		}
	})
}
