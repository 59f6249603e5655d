package cowtree

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func key16(i uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, i*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint64(k[8:], i)
	return k
}

func bigTree(b *testing.B, n int) Tree {
	var tr Tree
	d := tr.Begin(1)
	val := make([]byte, 100)
	for i := range n {
		d.Put(key16(uint64(i)), val)
	}
	tr, _, err := d.Finish()
	if err != nil {
		b.Fatal(err)
	}
	return tr
}

// BenchmarkApply measures one delta of w writes (16 B keys, 100 B values) into a
// tree of 1M keys: the processor's apply cost per intention.
func BenchmarkApply(b *testing.B) {
	for _, w := range []int{2, 8} {
		b.Run(map[int]string{2: "writes=2", 8: "writes=8"}[w], func(b *testing.B) {
			tr := bigTree(b, 1<<20)
			r := rand.New(rand.NewPCG(1, 2))
			val := make([]byte, 100)
			pos := uint64(2)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d := tr.Begin(pos)
				for range w {
					d.Put(key16(r.Uint64N(1<<21)), val)
				}
				tr, _, _ = d.Finish()
				pos++
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	tr := bigTree(b, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tr.Get(key16(r.Uint64N(1 << 20)))
	}
}

// BenchmarkDepth reports the average and maximum depth of a key in a tree of
// 1M random keys: path copying copies one node per level, so depth is the
// cost of a write.
func BenchmarkDepth(b *testing.B) {
	tr := bigTree(b, 1<<20)
	var sum, maxd, n int
	var walk func(nd *Node, d int)
	walk = func(nd *Node, d int) {
		if nd == nil {
			return
		}
		sum += d
		n++
		maxd = max(maxd, d)
		walk(nd.left.Node(), d+1)
		walk(nd.right.Node(), d+1)
	}
	for range b.N {
		sum, maxd, n = 0, 0, 0
		walk(tr.root.Node(), 1)
	}
	b.ReportMetric(float64(sum)/float64(n), "avg-depth")
	b.ReportMetric(float64(maxd), "max-depth")
}
