package entry

import (
	"errors"
	"testing"
)

// PeekType reads the type from the first bytes of an entry without its
// checksum, and refuses what Decode would refuse for the frame alone.
func TestPeekType(t *testing.T) {
	data := Encode(nil, TypeAfterimage, []byte("payload"))
	if typ, err := PeekType(9, data[:FrameSize]); err != nil || typ != TypeAfterimage {
		t.Fatalf("PeekType = %v, %v", typ, err)
	}
	damaged := append([]byte(nil), data...)
	damaged[len(damaged)-1] ^= 1 // the payload: PeekType cannot see it
	if _, err := PeekType(9, damaged); err != nil {
		t.Fatalf("PeekType of a damaged payload: %v", err)
	}
	for name, frame := range map[string][]byte{
		"short":   data[:FrameSize-1],
		"magic":   append([]byte{0, 0}, data[2:FrameSize]...),
		"version": {Magic0, Magic1, Version + 1, byte(TypeAfterimage), 0, 0, 0, 0},
		"type":    {Magic0, Magic1, Version, 99, 0, 0, 0, 0},
	} {
		if _, err := PeekType(9, frame); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: PeekType = %v, want ErrCorrupt", name, err)
		}
	}
}
