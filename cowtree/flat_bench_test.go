package cowtree

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// flatFan is the fan-out of flat's nodes.
const flatFan = 16

// flat is a persistent B+tree with path copying whose keys live inside the
// node as 16-byte prefixes (keyHead; the benchmark's keys are 16 bytes,
// so a prefix is the whole key): a search step reads one node's contiguous
// key array, not one allocation per key as wide does, and a copy is one
// allocation. Values stay out of line. BenchmarkApplyFlat measures whether
// this layout, not the node width, is what a fast meld needs here.
type flat struct {
	n    int
	keys [flatFan + 1]keyHead
	kids [flatFan + 1]*flat  // inner only
	vals [flatFan + 1][]byte // leaf only
	leaf bool
}

// search returns the first index whose key is >= kp.
func (f *flat) search(kp keyHead) (int, bool) {
	lo, hi := 0, f.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		k := f.keys[m]
		if k.hi < kp.hi || (k.hi == kp.hi && k.lo < kp.lo) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < f.n && f.keys[lo] == kp
}

func flatPut(f *flat, kp keyHead, value []byte) (*flat, *flat) {
	m := new(flat)
	*m = *f
	i, found := m.search(kp)
	if m.leaf {
		if found {
			m.vals[i] = value
			return m, nil
		}
		copy(m.keys[i+1:m.n+1], m.keys[i:m.n])
		copy(m.vals[i+1:m.n+1], m.vals[i:m.n])
		m.keys[i], m.vals[i] = kp, value
		m.n++
	} else {
		if !found && i > 0 {
			i--
		}
		kid, split := flatPut(m.kids[i], kp, value)
		m.kids[i], m.keys[i] = kid, kid.keys[0]
		if split == nil {
			return m, nil
		}
		copy(m.keys[i+2:m.n+1], m.keys[i+1:m.n])
		copy(m.kids[i+2:m.n+1], m.kids[i+1:m.n])
		m.keys[i+1], m.kids[i+1] = split.keys[0], split
		m.n++
	}
	if m.n <= flatFan {
		return m, nil
	}
	h := m.n / 2
	r := &flat{leaf: m.leaf, n: m.n - h}
	copy(r.keys[:], m.keys[h:m.n])
	copy(r.kids[:], m.kids[h:m.n])
	copy(r.vals[:], m.vals[h:m.n])
	clear(m.kids[h:])
	clear(m.vals[h:])
	m.n = h
	return m, r
}

func flatInsert(root *flat, key, value []byte) *flat {
	if root == nil {
		root = &flat{leaf: true}
	}
	m, split := flatPut(root, prefix(key).keyHead, value)
	if split == nil {
		return m
	}
	r := &flat{n: 2}
	r.keys[0], r.kids[0] = m.keys[0], m
	r.keys[1], r.kids[1] = split.keys[0], split
	return r
}

func (f *flat) get(key []byte) []byte {
	kp := prefix(key).keyHead
	for {
		i, found := f.search(kp)
		if f.leaf {
			if found {
				return f.vals[i]
			}
			return nil
		}
		if !found {
			if i == 0 {
				return nil
			}
			i--
		}
		f = f.kids[i]
	}
}

// BenchmarkApplyFlat is BenchmarkApply's workload (1M keys, deltas of 2 and
// 8 random writes, keys and values copied in) on flat.
func BenchmarkApplyFlat(b *testing.B) {
	val := make([]byte, 100)
	var root *flat
	for i := range 1 << 20 {
		root = flatInsert(root, key16(uint64(i)), bytes.Clone(val))
	}
	for _, i := range []uint64{0, 12345, 1<<20 - 1} {
		if root.get(key16(i)) == nil {
			b.Fatalf("key %d missing", i)
		}
	}
	if root.get(key16(1<<20)) != nil {
		b.Fatal("a key never written is there")
	}
	for _, w := range []int{2, 8} {
		b.Run(fmt.Sprintf("fan=%d/writes=%d", flatFan, w), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			t := root
			b.ReportAllocs()
			for b.Loop() {
				for range w {
					t = flatInsert(t, key16(r.Uint64N(1<<21)), bytes.Clone(val))
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deltas/s")
		})
	}
}
