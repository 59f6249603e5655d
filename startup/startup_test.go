package startup_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/startup"
)

var header = entry.NewHeader(1000, 1024, 1<<20)

// builder writes a log by hand.
type builder struct {
	t *testing.T
	l *memlog.Log
}

func newBuilder(t *testing.T) *builder {
	t.Helper()
	b := &builder{t: t, l: memlog.New(nil)}
	b.data(entry.EncodeHeader(header))
	return b
}

func (b *builder) data(d []byte) uint64 {
	b.t.Helper()
	p, err := b.l.Append(context.Background(), d)
	if err != nil {
		b.t.Fatal(err)
	}
	return uint64(p)
}

// in appends an intention and returns its position.
func (b *builder) in() uint64 {
	b.t.Helper()
	return b.data(entry.AppendIntention(nil, &intention.Intention{Snapshot: 0, Token: 1,
		Ops: []intention.Op{{Kind: intention.OpPut, Key: []byte("k"), Value: []byte("v")}}}))
}

// ins appends n intentions and returns the last position.
func (b *builder) ins(n int) uint64 {
	b.t.Helper()
	var p uint64
	for range n {
		p = b.in()
	}
	return p
}

// chain returns an afterimage of n nodes, each the left child of the next.
func chain(in, base uint64, n int) *afterimage.Afterimage {
	a := &afterimage.Afterimage{Intention: in, Base: base}
	for i := range n {
		nd := afterimage.Node{Key: []byte{byte('a' + i)}, Value: []byte("v"), Pos: in, MaxPos: in,
			MinTomb: afterimage.NoTombstone, Height: uint8(i + 1)}
		if i > 0 {
			nd.Left = afterimage.SelfPtr(uint32(i - 1))
		}
		a.Nodes = append(a.Nodes, nd)
	}
	if err := a.Validate(); err != nil {
		panic(err)
	}
	return a
}

// ai appends an afterimage of n nodes for intention in, with base.
func (b *builder) ai(in, base uint64, n int) uint64 {
	b.t.Helper()
	return b.data(entry.AppendAfterimage(nil, chain(in, base, n)))
}

// hole takes a position whose writer dies, and returns it.
func (b *builder) hole() uint64 {
	b.t.Helper()
	b.l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend {
			return memlog.Fault{Drop: true}
		}
		return memlog.Fault{}
	})
	defer b.l.SetInject(nil)
	if _, err := b.l.Append(context.Background(), []byte("lost")); err == nil {
		b.t.Fatal("dropped append succeeded")
	}
	tail, _ := b.l.Tail(context.Background())
	return uint64(tail) - 1
}

func (b *builder) fill() uint64 {
	b.t.Helper()
	tail, _ := b.l.Tail(context.Background())
	if err := b.l.Fill(context.Background(), tail); err != nil {
		b.t.Fatal(err)
	}
	// The fill beyond the tail becomes junk when the sequencer passes it;
	// the next append will skip it.
	return uint64(tail)
}

func (b *builder) tail() uint64 {
	tail, _ := b.l.Tail(context.Background())
	return uint64(tail)
}

func find(t *testing.T, l log.Log) startup.SafePoint {
	t.Helper()
	sp, err := startup.Find(context.Background(), l, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func root(pos uint64, nodes int) cowtree.Addr {
	return cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: pos, Off: uint32(nodes - 1)}
}

// expect checks the safe point's choice.
func expect(t *testing.T, sp startup.SafePoint, in, at uint64, r cowtree.Addr) {
	t.Helper()
	if sp.Intention != in || sp.Afterimage != at || sp.Root != r {
		t.Fatalf("safe point %d/%d root %v, want %d/%d root %v", sp.Intention, sp.Afterimage, sp.Root, in, at, r)
	}
}

func readErr(t *testing.T, l log.Log, p uint64) error {
	t.Helper()
	_, err := l.Read(context.Background(), log.Position(p))
	return err
}

func TestEmptyLog(t *testing.T) {
	sp := find(t, memlog.New(nil))
	if sp != (startup.SafePoint{}) {
		t.Fatalf("log without header: %+v", sp)
	}
	b := newBuilder(t)
	sp = find(t, b.l)
	expect(t, sp, 0, 0, cowtree.Addr{})
	if sp.Tail != 1 || sp.Reads != 0 || sp.Fills != 0 {
		t.Fatalf("header only: %+v", sp)
	}
}

func TestIntentionsWithoutAfterimage(t *testing.T) {
	b := newBuilder(t)
	b.ins(5)
	sp := find(t, b.l)
	expect(t, sp, 0, 0, cowtree.Addr{})
	if sp.Tail != 6 || sp.Reads != 5 {
		t.Fatalf("tail %d reads %d, want 6 and 5 (the whole log above the header)", sp.Tail, sp.Reads)
	}
}

func TestOneAfterimage(t *testing.T) {
	b := newBuilder(t)
	b.in()
	i2 := b.in()
	a := b.ai(i2, i2, 3)
	b.ins(2)
	sp := find(t, b.l)
	expect(t, sp, i2, a, root(a, 3))
	if sp.Tail != 6 || sp.Fills != 0 {
		t.Fatalf("%+v", sp)
	}
	// Positions 5, 4, 3 (the afterimage) and the intention at 2: nothing
	// below the safe point's intention is read.
	if sp.Reads != 4 {
		t.Fatalf("reads %d, want 4", sp.Reads)
	}
}

func TestEmptyTreeAfterimage(t *testing.T) {
	// An afterimage with no nodes: the intention deleted the last key and
	// the tombstone was dropped. The safe point holds, with an empty root.
	b := newBuilder(t)
	i1 := b.in()
	a := b.ai(i1, i1, 0)
	expect(t, find(t, b.l), i1, a, cowtree.Addr{})
}

func TestDuplicatesKeepOldest(t *testing.T) {
	t.Run("adjacent", func(t *testing.T) {
		b := newBuilder(t)
		i1 := b.in()
		first := b.ai(i1, i1, 1)
		b.ai(i1, i1, 4)
		b.ai(i1, i1, 2)
		expect(t, find(t, b.l), i1, first, root(first, 1))
	})
	t.Run("interleaved", func(t *testing.T) {
		b := newBuilder(t)
		i1, i2 := b.in(), b.in()
		b.ai(i1, i1, 1)
		a2 := b.ai(i2, i2, 2)
		b.in()
		b.ai(i2, i2, 5)
		b.ai(i1, i1, 3)
		expect(t, find(t, b.l), i2, a2, root(a2, 2))
	})
	t.Run("newest intention wins over newest afterimage", func(t *testing.T) {
		b := newBuilder(t)
		i1, i2 := b.in(), b.in()
		a2 := b.ai(i2, i2, 2)
		b.ai(i1, i1, 1) // late afterimage of an older intention
		expect(t, find(t, b.l), i2, a2, root(a2, 2))
	})
}

func TestFillsHolesAboveSafePoint(t *testing.T) {
	b := newBuilder(t)
	below := b.hole() // below the safe point: none of startup's business
	i2 := b.in()
	between := b.hole() // between the intention and its afterimage
	a := b.ai(i2, i2, 2)
	h1 := b.hole()
	b.in()
	h2 := b.hole()
	b.in()
	sp := find(t, b.l)
	expect(t, sp, i2, a, root(a, 2))
	if sp.Fills != 3 {
		t.Fatalf("fills %d, want 3", sp.Fills)
	}
	for _, p := range []uint64{between, h1, h2} {
		if err := readErr(t, b.l, p); !errors.Is(err, log.ErrFilled) {
			t.Fatalf("position %d after startup: %v, want filled", p, err)
		}
	}
	if err := readErr(t, b.l, below); !errors.Is(err, log.ErrNotWritten) {
		t.Fatalf("hole below the safe point: %v, want left alone", err)
	}
	// Without any afterimage every hole is filled, down to position 1.
	b2 := newBuilder(t)
	b2.hole()
	b2.in()
	b2.hole()
	sp = find(t, b2.l)
	expect(t, sp, 0, 0, cowtree.Addr{})
	if sp.Fills != 2 {
		t.Fatalf("fills %d, want 2", sp.Fills)
	}
}

// landingLog lets a held append land just before startup fills its
// position, as a slow writer racing the fill would.
type landingLog struct {
	*memlog.Log
	at     uint64
	gate   *memlog.Gate
	landed <-chan uint64
	fills  int
}

func (l *landingLog) Fill(ctx context.Context, p log.Position) error {
	l.fills++
	if uint64(p) == l.at && l.gate != nil {
		l.gate.Release()
		<-l.landed
		l.gate = nil
	}
	return l.Log.Fill(ctx, p)
}

// TestFillLosesToLateWrite: a hole that receives an earlier duplicate while
// startup tries to fill it is read, and the earlier duplicate is chosen.
func TestFillLosesToLateWrite(t *testing.T) {
	b := newBuilder(t)
	i1 := b.in()
	gate := memlog.NewGate()
	defer gate.Release()
	b.l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && c.Attempt == 0 {
			return memlog.Fault{Hold: gate}
		}
		return memlog.Fault{}
	})
	landed := make(chan uint64, 1)
	go func() {
		p, err := b.l.Append(context.Background(), entry.AppendAfterimage(nil, chain(i1, i1, 1)))
		if err != nil {
			t.Error(err)
		}
		landed <- uint64(p)
	}()
	<-gate.Held()
	b.l.SetInject(nil)
	late := b.tail() - 1
	dup := b.ai(i1, i1, 3)
	ll := &landingLog{Log: b.l, at: late, gate: gate, landed: landed}
	sp := find(t, ll)
	expect(t, sp, i1, late, root(late, 1))
	if sp.Fills != 0 || ll.fills != 1 {
		t.Fatalf("fills counted %d, attempted %d", sp.Fills, ll.fills)
	}
	if dup <= late {
		t.Fatal("test setup: the duplicate is not after the held write")
	}
}

func TestBaseBeforeIntention(t *testing.T) {
	t.Run("resume from the base", func(t *testing.T) {
		b := newBuilder(t)
		i1 := b.in()
		b.fill() // junk between the base and its afterimage is skipped
		b.in()
		a1 := b.ai(i1, i1, 3) // the base's active afterimage
		b.ai(i1, i1, 5)       // a later duplicate, ignored
		i5 := b.in()
		b.ai(i5, i1, 2) // written while something between 1 and 5 was unconfirmed
		b.in()
		sp := find(t, b.l)
		expect(t, sp, i1, a1, root(a1, 3))
		if sp.Tail != b.tail() {
			t.Fatalf("tail %d", sp.Tail)
		}
	})
	t.Run("base found by the forward scan", func(t *testing.T) {
		// The base's afterimage lies below the intention the scan stopped
		// at, so only the forward scan from the base can find it.
		b := newBuilder(t)
		i1 := b.in()
		b.ins(3)
		a1 := b.ai(i1, i1, 4)
		i7 := b.in()
		b.ai(i7, i1, 1)
		expect(t, find(t, b.l), i1, a1, root(a1, 4))
	})
	t.Run("base with empty tree", func(t *testing.T) {
		b := newBuilder(t)
		i1 := b.in()
		a1 := b.ai(i1, i1, 0)
		i3 := b.in()
		b.ai(i3, i1, 2)
		expect(t, find(t, b.l), i1, a1, cowtree.Addr{})
	})
	t.Run("base 0 means replay from the start", func(t *testing.T) {
		b := newBuilder(t)
		b.in()
		i2 := b.in()
		b.ai(i2, 0, 2)
		h := b.hole()
		sp := find(t, b.l)
		expect(t, sp, 0, 0, cowtree.Addr{})
		if sp.Tail != b.tail() || sp.Fills != 1 {
			t.Fatalf("%+v", sp)
		}
		if err := readErr(t, b.l, h); !errors.Is(err, log.ErrFilled) {
			t.Fatalf("hole above the afterimage: %v", err)
		}
	})
	t.Run("base without an afterimage", func(t *testing.T) {
		b := newBuilder(t)
		i1 := b.in()
		i2 := b.in()
		b.ai(i2, i1, 2)
		_, err := startup.Find(context.Background(), b.l, nil)
		if !errors.Is(err, entry.ErrCorrupt) {
			t.Fatalf("err %v, want corruption", err)
		}
	})
	t.Run("hole before the base's afterimage", func(t *testing.T) {
		// The scan reads down to the base, filling holes on the way as it
		// does above: nothing can land there any more.
		b := newBuilder(t)
		i1 := b.in()
		h := b.hole()
		a1 := b.ai(i1, i1, 1)
		i4 := b.in()
		b.ai(i4, i1, 1)
		sp := find(t, b.l)
		expect(t, sp, i1, a1, root(a1, 1))
		if sp.Fills != 1 {
			t.Fatalf("%+v", sp)
		}
		if err := readErr(t, b.l, h); !errors.Is(err, log.ErrFilled) {
			t.Fatalf("hole below the base's afterimage: %v", err)
		}
	})
}

func TestCorruptEntryStops(t *testing.T) {
	good := entry.AppendIntention(nil, &intention.Intention{Ops: []intention.Op{{Kind: intention.OpPut, Key: []byte("k")}}})
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	cases := map[string][]byte{
		"checksum":           flipped,
		"not an entry":       []byte("junk written by someone else"),
		"afterimage payload": entry.Encode(nil, entry.TypeAfterimage, []byte{0x93, 1, 1, 0x91, 0xc0}),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			b := newBuilder(t)
			i1 := b.in()
			b.ai(i1, i1, 1)
			b.in()
			p := b.data(bad)
			h := b.hole()
			b.in()
			_, err := startup.Find(context.Background(), b.l, nil)
			var ce *entry.CorruptError
			if !errors.Is(err, entry.ErrCorrupt) || !errors.As(err, &ce) || ce.Pos != p {
				t.Fatalf("err %v, want corruption at %d", err, p)
			}
			if data, rerr := b.l.Read(context.Background(), log.Position(p)); rerr != nil || !bytes.Equal(data, bad) {
				t.Fatalf("the corrupt entry was filled over or changed: %v", rerr)
			}
			// The scan filled the hole it met above the corrupt entry.
			if err := readErr(t, b.l, h); !errors.Is(err, log.ErrFilled) {
				t.Fatalf("hole above: %v", err)
			}
		})
	}
	t.Run("afterimage of a later position", func(t *testing.T) {
		b := newBuilder(t)
		b.in()
		b.data(entry.AppendAfterimage(nil, chain(5, 5, 1))) // at 2, names 5
		_, err := startup.Find(context.Background(), b.l, nil)
		if !errors.Is(err, entry.ErrCorrupt) || !strings.Contains(err.Error(), "intention 5") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("afterimage of a non-intention", func(t *testing.T) {
		b := newBuilder(t)
		b.in()
		a := b.ai(1, 1, 1)
		b.ai(a, a, 1) // names the afterimage at 2
		_, err := startup.Find(context.Background(), b.l, nil)
		if !errors.Is(err, entry.ErrCorrupt) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("below the safe point is not read", func(t *testing.T) {
		b := newBuilder(t)
		b.data([]byte("corrupt but old"))
		i2 := b.in()
		a := b.ai(i2, i2, 1)
		expect(t, find(t, b.l), i2, a, root(a, 1))
	})
}

func TestTrimmed(t *testing.T) {
	ctx := context.Background()
	t.Run("above every afterimage", func(t *testing.T) {
		b := newBuilder(t)
		i1 := b.in()
		b.ai(i1, i1, 1)
		b.ins(3)
		if err := b.l.Trim(ctx, 4); err != nil {
			t.Fatal(err)
		}
		_, err := startup.Find(ctx, b.l, nil)
		if !errors.Is(err, startup.ErrNoSafePoint) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("between the intention and its afterimage", func(t *testing.T) {
		b := newBuilder(t)
		i1 := b.in()
		b.ins(2)
		b.ai(i1, i1, 1)
		if err := b.l.Trim(ctx, 3); err != nil {
			t.Fatal(err)
		}
		_, err := startup.Find(ctx, b.l, nil)
		if !errors.Is(err, startup.ErrNoSafePoint) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("only below the safe point", func(t *testing.T) {
		b := newBuilder(t)
		b.ins(3)
		i4 := b.in()
		a := b.ai(i4, i4, 2)
		if err := b.l.Trim(ctx, 3); err != nil {
			t.Fatal(err)
		}
		expect(t, find(t, b.l), i4, a, root(a, 2))
	})
}

func TestFillErrorReported(t *testing.T) {
	b := newBuilder(t)
	b.in()
	b.hole()
	errFill := errors.New("fill refused")
	b.l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpFill {
			return memlog.Fault{Err: errFill}
		}
		return memlog.Fault{}
	})
	_, err := startup.Find(context.Background(), b.l, nil)
	if !errors.Is(err, errFill) || errors.Is(err, entry.ErrCorrupt) {
		t.Fatalf("err %v", err)
	}
}

// buildHistory writes n intentions with an afterimage every 50 (each a few
// positions after its intention), then a recent afterimage of the last
// intention and a few more intentions and a hole. With lagged, the recent
// afterimage's base is the intention of the last periodic afterimage.
func buildHistory(t *testing.T, n int, lagged bool) *builder {
	b := newBuilder(t)
	var ins []uint64
	var periodic uint64
	for i := range n {
		ins = append(ins, b.in())
		if i%50 == 10 {
			periodic = ins[i-5]
			b.ai(periodic, periodic, 3)
		}
	}
	last := ins[len(ins)-1]
	base := last
	if lagged {
		base = periodic
	}
	b.ai(last, base, 3)
	b.in()
	b.hole()
	b.in()
	return b
}

// TestReadsIndependentOfHistory: the scan costs the same on a log of 1K
// intentions as on one of 20K that end alike.
func TestReadsIndependentOfHistory(t *testing.T) {
	for _, lag := range []bool{false, true} {
		var reads []uint64
		for _, n := range []int{1000, 20000} {
			b := buildHistory(t, n, lag)
			if n > 1000 && b.tail() < uint64(n) {
				t.Fatal("short log")
			}
			before := b.l.Stats().Reads
			sp := find(t, b.l)
			if sp.Intention == 0 {
				t.Fatalf("n=%d: no safe point", n)
			}
			if lag && sp.Intention == b.tail()-5 || !lag && sp.Intention != b.tail()-5 {
				t.Fatalf("n=%d lagged %v: safe point %d, tail %d", n, lag, sp.Intention, b.tail())
			}
			if got := b.l.Stats().Reads - before; got != sp.Reads {
				t.Fatalf("n=%d: SafePoint.Reads %d, the log saw %d", n, sp.Reads, got)
			}
			reads = append(reads, sp.Reads)
		}
		t.Logf("lagged %v: reads %v", lag, reads)
		if reads[0] != reads[1] {
			t.Fatalf("lagged %v: reads grow with history: %v", lag, reads)
		}
		if reads[0] > 100 {
			t.Fatalf("lagged %v: %d reads for a short tail", lag, reads[0])
		}
	}
}

// TestNewestProvenTreeWins: the safe point is the newest tree any scanned
// afterimage proves, not only the newest afterimage's own Base — a seal
// written at a clean shutdown (a duplicate with itself as Base) moves it to
// the newest intention.
func TestNewestProvenTreeWins(t *testing.T) {
	b := newBuilder(t)
	i1, i2, i3 := b.in(), b.in(), b.in()
	a1 := b.ai(i1, i1, 2) // complete
	b.ai(i3, i1, 3)       // written while i2 was in flight
	b.ai(i2, i1, 2)
	sp := find(t, b.l)
	expect(t, sp, i1, a1, root(a1, 2))

	seal := b.ai(i3, i3, 3) // the shutdown seal: a duplicate of i3, complete
	sp = find(t, b.l)
	if sp.Intention != i3 {
		t.Fatalf("safe point %d, want the sealed intention %d", sp.Intention, i3)
	}
	// The root comes from i3's active afterimage (the first after it), an
	// equal copy of the seal's nodes.
	if sp.Afterimage == seal || sp.Root.Off != 2 {
		t.Fatalf("safe point %+v: want i3's active afterimage, before the seal at %d", sp, seal)
	}
}

// TestTrimmedAfterimagesBasedBelowCut: after a trim at a checkpoint's cut,
// the only afterimage above the marker proves just the empty tree (Base 0:
// an earlier delta was unconfirmed when it was written). Replay from the
// start is impossible; the scan must go on past that afterimage's
// intention to the marker and resume from the checkpoint.
func TestTrimmedAfterimagesBasedBelowCut(t *testing.T) {
	ctx := context.Background()
	for _, trim := range []bool{false, true} {
		b := newBuilder(t)
		b.in()
		cut := b.data(entry.AppendCut(nil, 7, header))
		marker := b.data(entry.AppendMarker(nil, &entry.Marker{Cut: cut}))
		i := b.in()
		b.ai(i, 0, 1)
		b.ins(2)
		if !trim {
			// Nothing trimmed: replaying from the start is right.
			expect(t, find(t, b.l), 0, 0, cowtree.Addr{})
			continue
		}
		if err := b.l.Trim(ctx, log.Position(cut)); err != nil {
			t.Fatal(err)
		}
		sp := find(t, b.l)
		expect(t, sp, cut, marker, cowtree.Addr{})
		if sp.Marker == nil || sp.Marker.Cut != cut {
			t.Fatalf("safe point %+v: want the checkpoint at %d", sp, cut)
		}
	}
}
