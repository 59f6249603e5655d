package flusher

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/processor"
)

// referenceImage is the image writer as it was before imageScratch: each
// node of the walk kept as an afterimage.Node, a chunk encoded from them.
func referenceImage(t *testing.T, d *processor.Delta) [][]byte {
	t.Helper()
	var (
		chunks [][]byte
		batch  []afterimage.Node
		first  uint64
		size   int
	)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		dst, start := entry.Begin(nil, 2*10+afterimage.MaxHeaderSize+afterimage.OffsetsSize(len(batch))+size)
		dst = entry.BeginChunk(dst, first)
		payload := len(dst)
		dst = afterimage.AppendHeader(dst, d.Pos, d.Pos, len(batch))
		starts := make([]uint32, len(batch))
		for i := range batch {
			starts[i] = uint32(len(dst) - payload)
			dst = batch[i].AppendTo(dst)
		}
		dst = afterimage.AppendOffsets(dst, payload, starts)
		chunks = append(chunks, entry.Seal(dst, start, entry.TypeCheckpoint))
		first += uint64(len(batch))
		batch, size = nil, 0
	}
	err := d.Tree.Walk(func(n *cowtree.Node, num uint32) error {
		var v []byte
		if !n.Tombstone() {
			v = n.Value()
		}
		nd := afterimage.Node{Key: n.Key(), Value: v, Pos: n.Pos(), Tombstone: n.Tombstone(), MaxPos: n.MaxPos(),
			MinTomb: n.MinTomb(), Height: uint8(n.Height()), LeftCount: n.Left().Count(), RightCount: n.Right().Count()}
		sz := nd.MaxEncodedSize()
		if len(batch) > 0 && size+sz > chunkTarget {
			flush()
		}
		if nd.RightCount > 0 {
			nd.Right = imagePtr(d.Pos, num-1, first)
		}
		if nd.LeftCount > 0 {
			nd.Left = imagePtr(d.Pos, num-1-nd.RightCount, first)
		}
		batch = append(batch, nd)
		size += sz
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	flush()
	return chunks
}

// TestImageScratchBytes: the image writer that encodes nodes as the walk
// meets them, with buffers kept from one image to the next, writes the
// bytes of the reference writer (afterimage.Node per node, a chunk encoded
// from them) for trees of no node, one node, one chunk and several chunks,
// with tombstones, and for a second cut whose tree holds nodes of the first.
func TestImageScratchBytes(t *testing.T) {
	r := newRig(t, Options{}, nil)
	st := processor.NewState(testHeader, cowtree.New(r.f.Loader()), 0)
	rng := rand.New(rand.NewPCG(3, 4))
	var w imageScratch // one for every image: reuse is part of the test
	pos := uint64(0)
	check := func(what string) {
		t.Helper()
		pos++
		d, err := st.Cut(pos)
		if err != nil {
			t.Fatal(err)
		}
		want := referenceImage(t, d)
		var got [][]byte
		if err := w.write(d, func(c []byte, _ uint64) error { got = append(got, bytes.Clone(c)); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d chunks, reference %d", what, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: chunk %d differs from the reference (%d vs %d bytes)", what, i, len(got[i]), len(want[i]))
			}
		}
		var viaFunc int
		if err := WriteImage(d, func(c []byte, _ uint64) error {
			if !bytes.Equal(c, want[viaFunc]) {
				t.Fatalf("%s: WriteImage chunk %d differs from the reference", what, viaFunc)
			}
			viaFunc++
			return nil
		}); err != nil || viaFunc != len(want) {
			t.Fatalf("%s: WriteImage: %d chunks, %v", what, viaFunc, err)
		}
		t.Logf("%s: %d chunks", what, len(got))
	}
	apply := func(keys int, valSize int, deletes bool) {
		ops := make([]intention.Op, 0, keys)
		seen := map[string]bool{}
		for range keys {
			k := fmt.Sprintf("k%06d", rng.IntN(20000))
			if seen[k] {
				continue
			}
			seen[k] = true
			if deletes && rng.IntN(4) == 0 {
				ops = append(ops, delOp(k))
			} else {
				ops = append(ops, putOp(k, strings.Repeat("v", 1+rng.IntN(valSize))))
			}
		}
		slices.SortFunc(ops, func(a, b intention.Op) int { return bytes.Compare(a.Key, b.Key) })
		pos++
		mustApply(t, st, pos, &intention.Intention{Snapshot: pos - 1, Ops: ops})
	}
	check("empty tree")
	apply(1, 10, false)
	check("one node")
	apply(200, 100, true)
	check("one chunk")
	for range 10 {
		apply(200, 5000, true)
	}
	check("several chunks")
	apply(150, 3000, true)
	check("second cut over the first")
}
