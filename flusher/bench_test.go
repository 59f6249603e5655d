package flusher

import (
	"context"
	"fmt"
	"testing"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// BenchmarkLoad is the cost of reading back one evicted node: through a
// physical pointer (one read and decode of the afterimage), through an
// intention pointer found in the index (the same, after a lookup), and
// through an intention pointer the index does not know (a forward scan
// from the intention to its afterimage, 40 entries of other intentions
// away). 1,000 afterimages of 30 nodes rotate, more than the pager's cache
// of decoded afterimages, so every load reads the log.
func BenchmarkLoad(b *testing.B) {
	const n, gap = 1000, 40
	ctx := context.Background()
	l := memlog.New(nil)
	l.Append(ctx, entry.EncodeHeader(entry.NewHeader(1<<20, 1<<14, 8<<20)))
	intents := make([]uint64, n)
	afters := make([]uint64, n)
	val := make([]byte, 100)
	for i := range n {
		in := &intention.Intention{Snapshot: 1, Ops: []intention.Op{{Kind: intention.OpPut, Key: []byte("k"), Value: val}}}
		p, _ := l.Append(ctx, entry.AppendIntention(nil, in))
		intents[i] = uint64(p)
		for range gap { // other intentions between it and its afterimage
			l.Append(ctx, entry.AppendIntention(nil, in))
		}
		ai := &afterimage.Afterimage{Intention: uint64(p), Base: uint64(p)}
		for j := range 30 {
			ai.Nodes = append(ai.Nodes, afterimage.Node{Key: fmt.Appendf(nil, "key%04d", j), Value: val, Pos: uint64(p), MaxPos: uint64(p), MinTomb: afterimage.NoTombstone, Height: 1})
		}
		a, _ := l.Append(ctx, entry.AppendAfterimage(nil, ai))
		afters[i] = uint64(a)
	}
	for _, c := range []struct {
		name    string
		addr    func(i int) cowtree.Addr
		indexed bool
	}{
		{"physical", func(i int) cowtree.Addr { return cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: afters[i], Off: 7} }, false},
		{"intention-indexed", func(i int) cowtree.Addr { return cowtree.Addr{Kind: cowtree.AddrIntention, Pos: intents[i], Off: 7} }, true},
		{"intention-scan", func(i int) cowtree.Addr { return cowtree.Addr{Kind: cowtree.AddrIntention, Pos: intents[i], Off: 7} }, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			idx := newIndex(1 << 20)
			if c.indexed {
				for i := range n {
					idx.put(intents[i], afters[i])
				}
			}
			p := newPager(l, idx, 0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if !c.indexed && c.name == "intention-scan" && i%n == 0 {
					p.idx = newIndex(1 << 20) // forget what earlier scans learned
				}
				if _, err := p.LoadNode(c.addr(i % n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
