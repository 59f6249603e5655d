package testutil

import (
	"math"
	"math/rand/v2"
)

// RandBytes returns nil (if allowNil), empty, or random bytes of a length
// that exercises every msgpack bin width now and then: mostly 1 to 40
// bytes, sometimes 256 to 555 (bin16) or over 65,535 (bin32).
func RandBytes(r *rand.Rand, allowNil bool) []byte {
	switch x := r.IntN(100); {
	case x < 5 && allowNil:
		return nil
	case x < 10:
		return []byte{}
	case x < 13:
		return RandFill(r, 256+r.IntN(300))
	case x == 13:
		return RandFill(r, 65536+r.IntN(100))
	default:
		return RandFill(r, 1+r.IntN(40))
	}
}

// RandFill returns n random bytes.
func RandFill(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// RandUint returns integers of every msgpack width, and the largest ones.
func RandUint(r *rand.Rand) uint64 {
	switch r.IntN(6) {
	case 0:
		return uint64(r.IntN(128))
	case 1:
		return uint64(r.IntN(256))
	case 2:
		return uint64(r.IntN(65536))
	case 3:
		return uint64(r.Uint32())
	case 4:
		return math.MaxUint64 - uint64(r.IntN(3))
	}
	return r.Uint64()
}
