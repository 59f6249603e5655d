package cowtree

import (
	"bytes"
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

// textbook is the smallest persistent AVL tree: key, value, two children and
// a height, a fresh copy of every node on the path for every write (no
// summaries, no addresses, no sharing within a delta). BenchmarkApplyTextbook
// runs it on BenchmarkApply's workload, as the floor for any path-copying
// binary tree on the machine the benchmarks run on.
type textbook struct {
	key, value  []byte
	left, right *textbook
	height      int8
}

func tbHeight(n *textbook) int8 {
	if n == nil {
		return 0
	}
	return n.height
}

func (n *textbook) fix() *textbook {
	n.height = max(tbHeight(n.left), tbHeight(n.right)) + 1
	return n
}

func tbRotateRight(n *textbook) *textbook {
	l, m := *n.left, *n
	m.left = l.right
	l.right = m.fix()
	return l.fix()
}

func tbRotateLeft(n *textbook) *textbook {
	r, m := *n.right, *n
	m.right = r.left
	r.left = m.fix()
	return r.fix()
}

func tbBalance(n *textbook) *textbook {
	switch bf := tbHeight(n.fix().left) - tbHeight(n.right); {
	case bf > 1:
		if tbHeight(n.left.left) < tbHeight(n.left.right) {
			n.left = tbRotateLeft(n.left)
		}
		return tbRotateRight(n)
	case bf < -1:
		if tbHeight(n.right.right) < tbHeight(n.right.left) {
			n.right = tbRotateRight(n.right)
		}
		return tbRotateLeft(n)
	}
	return n
}

func tbPut(n *textbook, key, value []byte) *textbook {
	if n == nil {
		return &textbook{key: key, value: value, height: 1}
	}
	m := *n
	switch c := bytes.Compare(key, n.key); {
	case c == 0:
		m.value = value
		return &m
	case c < 0:
		m.left = tbPut(n.left, key, value)
	default:
		m.right = tbPut(n.right, key, value)
	}
	return tbBalance(&m)
}

func (n *textbook) get(key []byte) []byte {
	for n != nil {
		switch c := bytes.Compare(key, n.key); {
		case c == 0:
			return n.value
		case c < 0:
			n = n.left
		default:
			n = n.right
		}
	}
	return nil
}

// BenchmarkApplyTextbook is BenchmarkApply's workload (1M keys, deltas of 2
// and 8 random writes, keys and values copied in) on the textbook tree.
func BenchmarkApplyTextbook(b *testing.B) {
	val := make([]byte, 100)
	var root *textbook
	for i := range 1 << 20 {
		root = tbPut(root, key16(uint64(i)), bytes.Clone(val))
	}
	if root.get(key16(12345)) == nil {
		b.Fatal("key missing")
	}
	for _, w := range []int{2, 8} {
		b.Run(map[int]string{2: "writes=2", 8: "writes=8"}[w], func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			t := root
			b.ReportAllocs()
			for b.Loop() {
				for range w {
					t = tbPut(t, key16(r.Uint64N(1<<21)), bytes.Clone(val))
				}
			}
		})
	}
}
