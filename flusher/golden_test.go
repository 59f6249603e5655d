package flusher

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/processor"
)

// goldenAfterimages is the SHA-256 of every decision and afterimage entry
// of goldenWorkload, as the code wrote them before the write path's CPU
// work of issue 20 (apply20). The afterimage bytes are the log's format:
// a change of this digest is a change of what every node writes, which must
// be versioned (old logs must still replay), never a side effect of making
// the encoder or the tree faster.
const goldenAfterimages = "16657de2dab7522374943b614814e7864afc60225e72eae34c25869c6d517777"

// goldenWorkload replays a fixed history through the processor's core and
// encodes every committed delta's afterimage the way the flusher does
// (AppendEntry), feeding each to sum. The history mixes what changes the
// bytes: keys shorter than, exactly and longer than the nodes' 16-byte key
// prefix (long ones sharing their first 16 bytes, short ones differing only
// by trailing zero bytes), overwrites, deletes (tombstones, dropped past a
// small conflict window), range deletes, values above InlineValueMax and
// empty ones, intentions of one to a dozen writes, checkpoint cuts (image
// values and relocated pointers after them), and both physical and
// intention pointers; read-write intentions commit, conflict or are too
// old.
func goldenWorkload(t *testing.T, sum func(b []byte)) {
	t.Helper()
	hdr := *entry.NewHeader(48, 256, 1<<20)
	st := processor.NewState(hdr, cowtree.New(nil), 0)
	r := rand.New(rand.NewPCG(20, 2026))
	key := func() []byte {
		i := r.IntN(300)
		switch r.IntN(5) {
		case 0:
			return fmt.Appendf(nil, "k%d", i) // short
		case 1:
			return fmt.Appendf(nil, "key:%012d", i) // exactly 16 bytes
		case 2:
			return fmt.Appendf(nil, "user:00000000000/%06d/x", i) // long, shared 16-byte prefix
		case 3:
			k := fmt.Appendf(nil, "z%d", i%7)
			return append(k, make([]byte, i%4)...) // trailing zero bytes
		}
		return binary.BigEndian.AppendUint64(nil, uint64(i)*0x9E3779B97F4A7C15)
	}
	value := func() []byte {
		switch r.IntN(20) {
		case 0:
			return make([]byte, InlineValueMax+1+r.IntN(100))
		case 1:
			return []byte{}
		}
		v := make([]byte, r.IntN(120))
		for i := range v {
			v[i] = byte(r.Uint32())
		}
		return v
	}
	// Physical pointers for every third intention, deterministically.
	phys := func(p uint64) (uint64, bool) { return p + 100000, p%3 == 0 }
	var buf []byte
	for pos := uint64(1); pos <= 700; pos++ {
		if pos%131 == 0 {
			d, err := st.Cut(pos)
			if err != nil {
				t.Fatal(err)
			}
			sum(fmt.Appendf(nil, "cut %d %d", pos, d.ImageNodes))
			continue
		}
		in := &intention.Intention{Snapshot: pos - 1, Token: pos}
		if r.IntN(4) == 0 { // a read-write transaction: some conflict, some too old
			in.Snapshot = pos - 1 - min(pos-1, uint64(r.IntN(60)))
			in.Reads = [][]byte{key(), key()}
		}
		for range 1 + r.IntN(12) {
			switch c := r.IntN(20); {
			case c < 14:
				in.Ops = append(in.Ops, intention.Op{Kind: intention.OpPut, Key: key(), Value: value()})
			case c < 19:
				in.Ops = append(in.Ops, intention.Op{Kind: intention.OpDelete, Key: key()})
			default:
				lo := fmt.Appendf(nil, "k%d", r.IntN(300))
				in.Ops = append(in.Ops, intention.Op{Kind: intention.OpDeleteRange, Key: lo, Value: append(lo, '5')})
			}
		}
		dec, d, err := st.Apply(pos, in)
		if err != nil {
			t.Fatal(err)
		}
		sum(fmt.Appendf(nil, "decision %d %v", pos, dec.Outcome))
		if d == nil {
			continue
		}
		var counts any
		switch pos % 4 {
		case 0:
			buf, counts = AppendEntry(buf[:0], d, d.Pos, nil) // canonical
		case 1:
			buf, counts = AppendEntry(buf[:0], d, d.Pos-1, phys)
		default:
			buf, counts = AppendEntry(nil, d, d.Pos, phys)
		}
		sum(buf)
		sum(fmt.Appendf(nil, "%+v", counts))
	}
}

// TestAfterimageBytesUnchanged checks the afterimages of a fixed history
// against their digest from before the write path's CPU work: byte for
// byte the same log.
func TestAfterimageBytesUnchanged(t *testing.T) {
	h := sha256.New()
	entries := 0
	goldenWorkload(t, func(b []byte) {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
		h.Write(b)
		entries++
	})
	got := hex.EncodeToString(h.Sum(nil))
	if entries < 1000 {
		t.Fatalf("the workload fed only %d records", entries)
	}
	if got != goldenAfterimages {
		t.Fatalf("afterimage digest %s, want %s: the afterimage bytes changed", got, goldenAfterimages)
	}
}
