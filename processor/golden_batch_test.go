package processor

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
)

// goldenBatchDeltas is the SHA-256 of every decision and every node of
// every delta (all the fields an afterimage stores, and the node's own
// address) of batchWorkload, as the code made them before set22's work on
// the apply of large intentions. flusher's TestAfterimageBytesUnchanged
// covers intentions of up to a dozen writes; this covers cruzd's combined
// transactions of a hundred and more sorted writes (the delta's record of
// the cut's numbers then moves from its list to its map), inserts and
// rebalancing among them, tombstones dropped in the same deltas, and cuts.
const goldenBatchDeltas = "e824f8cc3c4e33121a01ae7ffc6d1459bc7f146b634205843ba4f9f1ca9a3faa"

// batchWorkload applies a fixed history of large intentions to a State,
// feeding each decision and each delta node's fields to sum.
func batchWorkload(t *testing.T, sum func(b []byte)) {
	t.Helper()
	hdr := *entry.NewHeader(40, 256, 1<<20)
	st := NewState(hdr, cowtree.New(nil), 0)
	r := rand.New(rand.NewPCG(22, 2026))
	var buf []byte
	for pos := uint64(1); pos <= 120; pos++ {
		if pos%17 == 0 {
			d, err := st.Cut(pos)
			if err != nil {
				t.Fatal(err)
			}
			sum(fmt.Appendf(nil, "cut %d %d", pos, d.ImageNodes))
			continue
		}
		in := &intention.Intention{Snapshot: pos - 1, Token: pos}
		picked := map[int]bool{}
		for n := 1 + r.IntN(200); len(picked) < n; {
			picked[r.IntN(4000)] = true
		}
		for _, k := range slices.Sorted(maps.Keys(picked)) {
			key := fmt.Appendf(nil, "kkey:%012d", k)
			if r.IntN(10) == 0 {
				in.Ops = append(in.Ops, intention.Op{Kind: intention.OpDelete, Key: key})
				continue
			}
			in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: key, Value: fmt.Appendf(nil, "v%d.%d", pos, k)})
		}
		if r.IntN(5) == 0 { // a read-write transaction: some conflict
			in.Snapshot = pos - 1 - min(pos-1, uint64(r.IntN(8)))
			in.Reads = [][]byte{fmt.Appendf(nil, "kkey:%012d", r.IntN(4000))}
		}
		dec, d, err := st.Apply(pos, in)
		if err != nil {
			t.Fatal(err)
		}
		sum(fmt.Appendf(nil, "decision %d %v", pos, dec.Outcome))
		if d == nil {
			continue
		}
		for _, n := range d.Nodes {
			iv, ok := n.ImageValue()
			buf = fmt.Appendf(buf[:0], "%q %q %d %v %d %v %v %d %d %d %v %v", n.Key(), n.Value(), n.Pos(), n.Tombstone(),
				n.Height(), n.Left().Addr(), n.Right().Addr(), n.Left().Count(), n.Right().Count(), iv, ok, n.Addr())
			buf = binary.BigEndian.AppendUint64(buf, n.MaxPos())
			buf = binary.BigEndian.AppendUint64(buf, n.MinTomb())
			sum(buf)
		}
		if err := d.Tree.Check(); err != nil {
			t.Fatalf("position %d: %v", pos, err)
		}
	}
}

// TestBatchDeltasUnchanged checks the deltas of large intentions against
// their digest from before: the same log makes the same nodes, byte for
// byte, whatever the apply's own bookkeeping.
func TestBatchDeltasUnchanged(t *testing.T) {
	h := sha256.New()
	nodes := 0
	batchWorkload(t, func(b []byte) {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
		h.Write(b)
		nodes++
	})
	if nodes < 10000 {
		t.Fatalf("the workload fed only %d records", nodes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != goldenBatchDeltas {
		t.Fatalf("delta digest %s, want %s: the deltas changed", got, goldenBatchDeltas)
	}
}
