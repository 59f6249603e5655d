package wire

import "testing"

// ArrayLenOfPrefix reads any array header, however few of its elements
// follow, and refuses what is no array header.
func TestArrayLenOfPrefix(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want int
		ok   bool
	}{
		{[]byte{0x93}, 3, true},
		{[]byte{codeArray16, 0x07, 0xd0}, 2000, true},
		{[]byte{codeArray32, 0, 1, 0, 0, 0xc0}, 65536, true},
		{[]byte{codeArray16, 0x07}, 0, false},
		{[]byte{codeArray32, 0, 1}, 0, false},
		{[]byte{codeNil}, 0, false},
		{nil, 0, false},
	} {
		r := NewReader(c.b)
		n, err := r.ArrayLenOfPrefix()
		if (err == nil) != c.ok || n != c.want {
			t.Fatalf("% x: %d, %v; want %d, ok %t", c.b, n, err, c.want, c.ok)
		}
	}
}
