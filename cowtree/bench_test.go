package cowtree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
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

// BenchmarkApplyAfterCut is BenchmarkApply (2 writes) on a tree just cut
// (Tree.Cut), and on the same tree uncut: what relocating by numbers costs
// the deltas after a checkpoint, while most of the tree is the cut's.
func BenchmarkApplyAfterCut(b *testing.B) {
	for _, cut := range []bool{false, true} {
		b.Run(map[bool]string{false: "uncut", true: "cut"}[cut], func(b *testing.B) {
			tr := bigTree(b, 1<<20)
			pos := uint64(2)
			if cut {
				var err error
				if tr, err = tr.Cut(pos); err != nil {
					b.Fatal(err)
				}
			}
			pos++
			r := rand.New(rand.NewPCG(1, 2))
			val := make([]byte, 100)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d := tr.Begin(pos)
				for range 2 {
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

// wide is a persistent B+tree with path copying: leaves hold up to fan keys
// and values, inner nodes up to fan children and each child's lowest key.
// Like textbook it keeps no summaries, addresses or cache state, and copies
// every node on the path for every write. BenchmarkApplyWide runs it on
// BenchmarkApply's workload: what a wide-node tree would cost on the machine
// the benchmarks run on, against textbook's floor for binary trees.
type wide struct {
	keys [][]byte // leaf: its keys; inner: each child's lowest key
	vals [][]byte // leaf only
	kids []*wide  // inner only
}

// wideCopy returns a copy of n with room for one more entry.
func wideCopy(n *wide) *wide {
	m := &wide{}
	k := len(n.keys)
	if n.kids == nil {
		kv := make([][]byte, 2*(k+1))
		m.keys, m.vals = kv[:k:k+1], kv[k+1:k+1+k:2*(k+1)]
		copy(m.keys, n.keys)
		copy(m.vals, n.vals)
		return m
	}
	m.keys = append(make([][]byte, 0, k+1), n.keys...)
	m.kids = append(make([]*wide, 0, k+1), n.kids...)
	return m
}

// widePut returns n with key set to value, and the new right sibling if
// the node split.
func widePut(n *wide, fan int, key, value []byte) (*wide, *wide) {
	m := wideCopy(n)
	i, found := slices.BinarySearchFunc(m.keys, key, bytes.Compare)
	if m.kids == nil {
		if found {
			m.vals[i] = value
			return m, nil
		}
		m.keys = slices.Insert(m.keys, i, key)
		m.vals = slices.Insert(m.vals, i, value)
	} else {
		if !found && i > 0 {
			i-- // the child whose range holds key
		}
		kid, split := widePut(m.kids[i], fan, key, value)
		m.kids[i] = kid
		m.keys[i] = kid.keys[0]
		if split == nil {
			return m, nil
		}
		m.keys = slices.Insert(m.keys, i+1, split.keys[0])
		m.kids = slices.Insert(m.kids, i+1, split)
	}
	if len(m.keys) <= fan {
		return m, nil
	}
	h := len(m.keys) / 2
	r := &wide{keys: slices.Clone(m.keys[h:])}
	m.keys = m.keys[:h:h]
	if m.kids == nil {
		r.vals = slices.Clone(m.vals[h:])
		m.vals = m.vals[:h:h]
	} else {
		r.kids = slices.Clone(m.kids[h:])
		m.kids = m.kids[:h:h]
	}
	return m, r
}

func wideInsert(root *wide, fan int, key, value []byte) *wide {
	m, split := widePut(root, fan, key, value)
	if split == nil {
		return m
	}
	return &wide{keys: [][]byte{m.keys[0], split.keys[0]}, kids: []*wide{m, split}}
}

func (n *wide) get(key []byte) []byte {
	for {
		i, found := slices.BinarySearchFunc(n.keys, key, bytes.Compare)
		if n.kids == nil {
			if found {
				return n.vals[i]
			}
			return nil
		}
		if !found {
			if i == 0 {
				return nil
			}
			i--
		}
		n = n.kids[i]
	}
}

// BenchmarkApplyWide is BenchmarkApply's workload (1M keys, deltas of 2 and
// 8 random writes, keys and values copied in) on wide with 8 to 64 entries
// a node.
func BenchmarkApplyWide(b *testing.B) {
	val := make([]byte, 100)
	for _, fan := range []int{8, 16, 32, 64} {
		root := &wide{}
		for i := range 1 << 20 {
			root = wideInsert(root, fan, key16(uint64(i)), bytes.Clone(val))
		}
		for _, i := range []uint64{0, 12345, 1<<20 - 1} {
			if root.get(key16(i)) == nil {
				b.Fatalf("fan %d: key %d missing", fan, i)
			}
		}
		if root.get(key16(1<<20)) != nil {
			b.Fatalf("fan %d: a key never written is there", fan)
		}
		for _, w := range []int{2, 8} {
			b.Run(fmt.Sprintf("fan=%d/writes=%d", fan, w), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				t := root
				b.ReportAllocs()
				for b.Loop() {
					for range w {
						t = wideInsert(t, fan, key16(r.Uint64N(1<<21)), bytes.Clone(val))
					}
				}
			})
		}
	}
}
