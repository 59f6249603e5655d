package entry

import (
	"errors"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

// An envelope that fails its checksum is corruption to both sentinels:
// cruzdb.ErrCorrupt (this package's) and the log's storage sentinel.
func TestCorruptErrorIsLogCorrupt(t *testing.T) {
	b := Encode(nil, TypeIntention, []byte("payload"))
	b[len(b)-1] ^= 0xff
	_, _, err := Decode(9, b)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, log.ErrCorrupt) {
		t.Fatalf("Decode of a flipped byte = %v; want both ErrCorrupt and log.ErrCorrupt", err)
	}
	if errors.Is(&CorruptError{Pos: 1}, log.ErrNotWritten) {
		t.Fatal("CorruptError matches an unrelated sentinel")
	}
}
