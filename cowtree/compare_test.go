package cowtree

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestCompareMatchesBytes checks the node comparison, which orders keys by
// their 16-byte prefixes and then by length or by their tails, against
// bytes.Compare, on keys built to tie on the prefix: lengths 1 to 40 over
// an alphabet of 0, 1 and 0xff, so that many keys differ only by trailing
// zero bytes, by their length around 16, or past byte 16.
func TestCompareMatchesBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte{0, 0, 1, 0xff}
	keys := make([][]byte, 0, 600)
	for range 600 {
		k := make([]byte, 1+r.IntN(40))
		// Half the keys share one 16-byte start; every key is built
		// mostly from zeros.
		for i := range k {
			if i < 16 && len(keys)%2 == 0 {
				k[i] = byte(i % 3)
				continue
			}
			k[i] = alphabet[r.IntN(len(alphabet))]
		}
		keys = append(keys, k)
	}
	keys = append(keys, []byte{0}, []byte{0, 0}, make([]byte, 16), make([]byte, 17), []byte("key:000000000001"), []byte("key:0000000000010"))
	nodes := make([]*Node, len(keys))
	for i, k := range keys {
		nodes[i] = &Node{}
		nodes[i].setKV(joinKV(k, []byte("v")), len(k))
	}
	checked := 0
	for _, a := range keys {
		kp := prefix(a)
		for j, n := range nodes {
			want := bytes.Compare(a, keys[j])
			if got := n.compare(kp, a); got != want {
				t.Fatalf("compare(%x, %x) = %d, want %d", a, keys[j], got, want)
			}
			checked++
		}
	}
	if checked != len(keys)*len(keys) {
		t.Fatalf("checked %d pairs", checked)
	}
}
