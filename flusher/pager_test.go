package flusher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

func TestFIFODropsOldest(t *testing.T) {
	x := newFIFO[uint64](3)
	for i := uint64(1); i <= 5; i++ {
		x.put(i, 100+i)
	}
	if x.len() != 3 {
		t.Fatalf("len %d", x.len())
	}
	for i := uint64(1); i <= 5; i++ {
		a, ok := x.get(i)
		if want := i >= 3; ok != want || (ok && a != 100+i) {
			t.Fatalf("get(%d) = %d %v", i, a, ok)
		}
	}
	// The first mapping of a key stays: a later put is ignored and does
	// not refresh its age.
	x.put(3, 999)
	if a, _ := x.get(3); a != 103 {
		t.Fatalf("put over an entry changed it to %d", a)
	}
	x.put(6, 106)
	if _, ok := x.get(3); ok {
		t.Fatal("3 is the oldest and should have been dropped")
	}
	// Long runs keep the bookkeeping bounded and the newest entries.
	y := newFIFO[uint64](10)
	for i := uint64(1); i <= 50000; i++ {
		y.put(i, i)
	}
	if y.len() != 10 || len(y.order)-y.head != 10 || len(y.order) > 10+2*1024+10 {
		t.Fatalf("len %d, order %d head %d", y.len(), len(y.order), y.head)
	}
	for i := uint64(49991); i <= 50000; i++ {
		if _, ok := y.get(i); !ok {
			t.Fatalf("%d missing", i)
		}
	}
}

// The index keeps the most recent intentions (one per slot), keeps the first
// afterimage recorded for an intention, never answers for an intention it
// does not hold, and takes what does not pack into a word too.
func TestIndex(t *testing.T) {
	x := newIndex(5) // 8 slots
	if len(x.slots) != 8 {
		t.Fatalf("%d slots for a limit of 5", len(x.slots))
	}
	if n := len(newIndex(1 << 40).slots); n != 1<<maxIndexBits {
		t.Fatalf("%d slots for a limit of 1<<40, want the cap %d", n, 1<<maxIndexBits)
	}
	for i := uint64(1); i <= 20; i++ {
		x.put(i, i+3)
	}
	if x.len() != 8 {
		t.Fatalf("len %d, want 8", x.len())
	}
	for i := uint64(0); i <= 30; i++ {
		a, ok := x.get(i)
		if want := i >= 13 && i <= 20; ok != want || (ok && a != i+3) {
			t.Fatalf("get(%d) = %d %v, want %v", i, a, ok, want)
		}
	}
	x.put(15, 99) // a duplicate: the first stays
	if a, _ := x.get(15); a != 18 {
		t.Fatalf("a later put changed 15 to %d", a)
	}
	x.put(23, 24) // same slot as 15: evicts it
	if _, ok := x.get(15); ok {
		t.Fatal("15 still answered after 23 took its slot")
	}
	if a, ok := x.get(23); !ok || a != 24 {
		t.Fatalf("get(23) = %d %v", a, ok)
	}
	// Far afterimages and huge positions do not pack: kept aside.
	for _, e := range [][2]uint64{{7, 7 + 1<<32}, {1 << 60, 1<<60 + 1}, {math.MaxUint64 - 1, math.MaxUint64}} {
		x.put(e[0], e[1])
		if a, ok := x.get(e[0]); !ok || a != e[1] {
			t.Fatalf("get(%d) = %d %v, want %d", e[0], a, ok, e[1])
		}
	}
	if _, ok := x.get(1<<60 + 8); ok {
		t.Fatal("an absent huge position answered")
	}
	// The first afterimage stays whichever of the two stores holds it.
	x.put(7, 8) // 7 is kept aside with a far afterimage
	if a, _ := x.get(7); a != 7+1<<32 {
		t.Fatalf("get(7) = %d after a later put, want the first, %d", a, uint64(7+1<<32))
	}
	x.put(9, 10)
	x.put(9, 9+1<<33) // does not pack: must not shadow the first
	if a, _ := x.get(9); a != 10 {
		t.Fatalf("get(9) = %d, want 10", a)
	}
	if x.len() != 11 { // 8 slots (9 took 17's) and 3 aside
		t.Fatalf("len %d, want 11", x.len())
	}
}

// Concurrent puts and gets never pair an intention with another's
// afterimage (run with -race).
func TestIndexConcurrent(t *testing.T) {
	x := newIndex(64)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); i < 20000; i++ {
				in := i*4 + uint64(w)
				x.put(in, in*3+1)
				for k := uint64(0); k < 30 && k*7 < in; k++ {
					j := in - k*7
					if a, ok := x.get(j); ok && a != j*3+1 {
						t.Errorf("get(%d) = %d, want %d", j, a, j*3+1)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestFlusherIndexBounded(t *testing.T) {
	f, err := New(Options{Log: newLog(t, nil), IndexEntries: 2, Policy: PolicyOriginator}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	f.Known(1, 10)
	f.Known(2, 11)
	f.Known(3, 12)
	if _, ok := f.Index(1); ok {
		t.Fatal("oldest entry kept")
	}
	for in, at := range map[uint64]uint64{2: 11, 3: 12} {
		if a, ok := f.Index(in); !ok || a != at {
			t.Fatalf("Index(%d) = %d %v", in, a, ok)
		}
	}
	if s := f.Stats(); s.IndexEntries != 2 {
		t.Fatalf("IndexEntries %d", s.IndexEntries)
	}
}

// pagerLog is a log of hand-written entries for loading nodes:
//
//	1  intention: a=va, big=<2000 bytes>, big=<final>
//	2  afterimage of 1: leaves a (0), big (1, value in intention)
//	3  intention
//	4  afterimage of 3: c (0), b (1, left intention(1,0), right self(0)),
//	   root d (2, left self(1), right afterimage(2,1))
type pagerLog struct {
	l               *memlog.Log
	i1, a1, i3, a3  uint64
	bigFinal        string
	rootAddr, bAddr cowtree.Addr
}

func newPagerLog(t *testing.T) *pagerLog {
	t.Helper()
	pl := &pagerLog{l: newLog(t, nil), bigFinal: strings.Repeat("F", 2000)}
	pl.i1 = appendIntention(t, pl.l, &intention.Intention{Ops: []intention.Op{
		putOp("a", "va"), putOp("big", strings.Repeat("x", 2000)), putOp("big", pl.bigFinal),
	}})
	bigNode := afterimage.Node{Key: []byte("big"), Pos: pl.i1, MaxPos: pl.i1, MinTomb: afterimage.NoTombstone, Height: 1, ValueInIntention: true}
	pl.a1 = appendAfterimage(t, pl.l, &afterimage.Afterimage{Intention: pl.i1, Base: pl.i1, Nodes: []afterimage.Node{leaf("a", "va", pl.i1), bigNode}})
	pl.i3 = appendIntention(t, pl.l, &intention.Intention{Snapshot: 1, Ops: []intention.Op{putOp("b", "vb")}})
	b := leaf("b", "vb", pl.i3)
	b.Height, b.Left, b.Right = 2, afterimage.IntentionPtr(pl.i1, 0), afterimage.SelfPtr(0)
	b.LeftCount, b.RightCount = 1, 1
	d := leaf("d", "vd", pl.i3)
	d.Height, d.Left, d.Right = 3, afterimage.SelfPtr(1), afterimage.AfterimagePtr(pl.a1, 1)
	d.LeftCount, d.RightCount = 3, 1
	pl.a3 = appendAfterimage(t, pl.l, &afterimage.Afterimage{Intention: pl.i3, Base: pl.i3, Nodes: []afterimage.Node{leaf("c", "vc", pl.i3), b, d}})
	pl.rootAddr = cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: pl.a3, Off: 2}
	pl.bAddr = cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: pl.a3, Off: 1}
	return pl
}

func TestPagerLoadPhysical(t *testing.T) {
	pl := newPagerLog(t)
	p := newPager(pl.l, newIndex(16), waitLong)
	n, err := p.LoadNode(pl.bAddr)
	if err != nil {
		t.Fatal(err)
	}
	if string(n.Key()) != "b" || string(n.Value()) != "vb" || n.Pos() != pl.i3 || n.Height() != 2 || n.Addr() != pl.bAddr || n.Delta() != 0 {
		t.Fatalf("loaded %q=%q pos %d height %d addr %v", n.Key(), n.Value(), n.Pos(), n.Height(), n.Addr())
	}
	// Pointers become addresses: self -> this afterimage, intention stays.
	if l := n.Left().Addr(); l != (cowtree.Addr{Kind: cowtree.AddrIntention, Pos: pl.i1, Off: 0}) {
		t.Fatalf("left %v", l)
	}
	if r := n.Right().Addr(); r != (cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: pl.a3, Off: 0}) {
		t.Fatalf("right %v", r)
	}
	// A second node of the same afterimage is decoded from the cache.
	reads := pl.l.Stats().Reads
	if _, err := p.LoadNode(pl.rootAddr); err != nil {
		t.Fatal(err)
	}
	if pl.l.Stats().Reads != reads || p.hits.Load() != 1 {
		t.Fatalf("second node of a decoded afterimage read the log (%d reads, %d hits)", pl.l.Stats().Reads-reads, p.hits.Load())
	}
	// The whole tree through the pager, value in intention included.
	tree := cowtree.FromRoot(pl.rootAddr, p)
	if got := treeDump(t, tree); got != "a=va b=vb c=vc d=vd big="+pl.bigFinal+" " {
		t.Fatalf("tree %.80q", got)
	}
	if p.scans.Load() != 1 {
		t.Fatalf("%d forward scans, want 1 (for intention %d)", p.scans.Load(), pl.i1)
	}
}

func TestPagerLoadIntentionPointer(t *testing.T) {
	pl := newPagerLog(t)
	t.Run("index hit", func(t *testing.T) {
		idx := newIndex(16)
		idx.put(pl.i1, pl.a1)
		p := newPager(pl.l, idx, waitLong)
		reads := pl.l.Stats().Reads
		n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: pl.i1, Off: 0})
		if err != nil {
			t.Fatal(err)
		}
		if string(n.Key()) != "a" || n.Addr() != (cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: pl.a1, Off: 0}) {
			t.Fatalf("%q at %v", n.Key(), n.Addr())
		}
		if p.scans.Load() != 0 || pl.l.Stats().Reads-reads != 1 {
			t.Fatalf("index hit scanned (%d scans, %d reads)", p.scans.Load(), pl.l.Stats().Reads-reads)
		}
	})
	t.Run("index miss scans forward", func(t *testing.T) {
		idx := newIndex(16)
		p := newPager(pl.l, idx, waitLong)
		n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: pl.i3, Off: 2})
		if err != nil {
			t.Fatal(err)
		}
		if string(n.Key()) != "d" || n.Addr().Pos != pl.a3 {
			t.Fatalf("%q at %v", n.Key(), n.Addr())
		}
		if a, ok := idx.get(pl.i3); !ok || a != pl.a3 || p.scans.Load() != 1 {
			t.Fatalf("scan did not index: %d %v, %d scans", a, ok, p.scans.Load())
		}
		// Now an index hit.
		if _, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: pl.i3, Off: 0}); err != nil || p.scans.Load() != 1 {
			t.Fatalf("second load: %v, %d scans", err, p.scans.Load())
		}
	})
}

// TestPagerForwardScanChoosesActive: the scan skips other intentions'
// afterimages and junk, and takes the first afterimage of the intention.
func TestPagerForwardScanChoosesActive(t *testing.T) {
	l := newLog(t, nil)
	i1 := appendIntention(t, l, &intention.Intention{Ops: []intention.Op{putOp("a", "1")}})
	i2 := appendIntention(t, l, &intention.Intention{Ops: []intention.Op{putOp("b", "1")}})
	appendAfterimage(t, l, &afterimage.Afterimage{Intention: i2, Base: i2, Nodes: []afterimage.Node{leaf("b", "1", i2)}})
	tail, _ := l.Tail(context.Background())
	if err := l.Fill(context.Background(), tail); err != nil {
		t.Fatal(err)
	}
	active := appendAfterimage(t, l, &afterimage.Afterimage{Intention: i1, Base: i1, Nodes: []afterimage.Node{leaf("first", "1", i1)}})
	appendAfterimage(t, l, &afterimage.Afterimage{Intention: i1, Base: i1, Nodes: []afterimage.Node{leaf("dup", "1", i1)}})
	p := newPager(l, newIndex(16), waitLong)
	n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: i1, Off: 0})
	if err != nil {
		t.Fatal(err)
	}
	if string(n.Key()) != "first" || n.Addr().Pos != active {
		t.Fatalf("loaded %q from %v, want the active afterimage at %d", n.Key(), n.Addr(), active)
	}
}

func TestPagerForwardScanFillsHoleAfterTimeout(t *testing.T) {
	l := newLog(t, nil)
	i1 := appendIntention(t, l, &intention.Intention{Ops: []intention.Op{putOp("a", "1")}})
	h := hole(t, l)
	at := appendAfterimage(t, l, &afterimage.Afterimage{Intention: i1, Base: i1, Nodes: []afterimage.Node{leaf("a", "1", i1)}})
	const timeout = 100 * time.Millisecond
	p := newPager(l, newIndex(16), timeout)
	began := time.Now()
	n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: i1, Off: 0})
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); waited < timeout {
		t.Fatalf("hole filled after %v, before the timeout %v", waited, timeout)
	}
	if n.Addr().Pos != at {
		t.Fatalf("loaded from %v", n.Addr())
	}
	if _, err := l.Read(context.Background(), log.Position(h)); !errors.Is(err, log.ErrFilled) {
		t.Fatalf("hole after the scan: %v", err)
	}
}

// TestPagerForwardScanWaitsForSlowWriter: a hole that is written before the
// timeout is read, not filled; if it holds an earlier afterimage of the
// intention, that one is the active one.
func TestPagerForwardScanWaitsForSlowWriter(t *testing.T) {
	gate := memlog.NewGate()
	defer gate.Release()
	l := newLog(t, nil)
	i1 := appendIntention(t, l, &intention.Intention{Ops: []intention.Op{putOp("a", "1")}})
	l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && c.Attempt == 0 {
			return memlog.Fault{Hold: gate}
		}
		return memlog.Fault{}
	})
	landed := make(chan uint64, 1)
	go func() {
		p, err := l.Append(context.Background(), entry.AppendAfterimage(nil, &afterimage.Afterimage{Intention: i1, Base: i1, Nodes: []afterimage.Node{leaf("early", "1", i1)}}))
		if err != nil {
			t.Error(err)
		}
		landed <- uint64(p)
	}()
	<-gate.Held()
	l.SetInject(nil)
	appendAfterimage(t, l, &afterimage.Afterimage{Intention: i1, Base: i1, Nodes: []afterimage.Node{leaf("late", "1", i1)}})
	p := newPager(l, newIndex(16), time.Hour)
	done := make(chan error, 1)
	var n *cowtree.Node
	go func() {
		var err error
		n, err = p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: i1, Off: 0})
		done <- err
	}()
	blocked(t, "LoadNode across a hole", done, 100*time.Millisecond)
	gate.Release()
	at := <-landed
	if err := within(t, "LoadNode", done); err != nil {
		t.Fatal(err)
	}
	if string(n.Key()) != "early" || n.Addr().Pos != at {
		t.Fatalf("loaded %q from %v, want early at %d", n.Key(), n.Addr(), at)
	}
	if l.Stats().Fills != 0 {
		t.Fatal("the scan filled a hole before its timeout")
	}
}

// TestPagerForwardScanWaitsAtTail: an intention pointer whose afterimage is
// not yet appended resolves once it is.
func TestPagerForwardScanWaitsAtTail(t *testing.T) {
	l := newLog(t, nil)
	i1 := appendIntention(t, l, &intention.Intention{Ops: []intention.Op{putOp("a", "1")}})
	p := newPager(l, newIndex(16), 10*time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: i1, Off: 0})
		done <- err
	}()
	blocked(t, "LoadNode before the afterimage exists", done, 100*time.Millisecond)
	appendAfterimage(t, l, &afterimage.Afterimage{Intention: i1, Base: i1, Nodes: []afterimage.Node{leaf("a", "1", i1)}})
	if err := within(t, "LoadNode", done); err != nil {
		t.Fatal(err)
	}
	if l.Stats().Fills != 0 {
		t.Fatal("the scan filled at the tail")
	}
}

func TestPagerValueInIntention(t *testing.T) {
	pl := newPagerLog(t)
	p := newPager(pl.l, newIndex(16), waitLong)
	n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: pl.a1, Off: 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(n.Key()) != "big" || string(n.Value()) != pl.bigFinal {
		t.Fatalf("%q = %d bytes %.10q, want the intention's last put", n.Key(), len(n.Value()), n.Value())
	}
	// A node that says its value is in an intention without that put.
	bad := afterimage.Node{Key: []byte("nothere"), Pos: pl.i3, MaxPos: pl.i3, MinTomb: afterimage.NoTombstone, Height: 1, ValueInIntention: true}
	at := appendAfterimage(t, pl.l, &afterimage.Afterimage{Intention: pl.i3, Base: pl.i3, Nodes: []afterimage.Node{bad}})
	if _, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: at, Off: 0}); !errors.Is(err, entry.ErrCorrupt) {
		t.Fatalf("missing put: %v", err)
	}
}

func TestPagerLoadErrors(t *testing.T) {
	pl := newPagerLog(t)
	p := newPager(pl.l, newIndex(16), waitLong)
	for name, a := range map[string]cowtree.Addr{
		"offset past the nodes":      {Kind: cowtree.AddrAfterimage, Pos: pl.a3, Off: 3},
		"physical pointer to intent": {Kind: cowtree.AddrAfterimage, Pos: pl.i3, Off: 0},
	} {
		if _, err := p.LoadNode(a); !errors.Is(err, entry.ErrCorrupt) {
			t.Errorf("%s: %v, want corruption", name, err)
		}
	}
	if _, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: 999, Off: 0}); !errors.Is(err, log.ErrNotWritten) {
		t.Errorf("beyond the tail: %v", err)
	}
	// A corrupt entry met by a forward scan stops it.
	l := newLog(t, nil)
	i1 := appendIntention(t, l, &intention.Intention{Ops: []intention.Op{putOp("a", "1")}})
	bad := appendData(t, l, []byte("not an entry"))
	appendAfterimage(t, l, &afterimage.Afterimage{Intention: i1, Base: i1, Nodes: []afterimage.Node{leaf("a", "1", i1)}})
	p = newPager(l, newIndex(16), waitLong)
	_, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: i1, Off: 0})
	var ce *entry.CorruptError
	if !errors.As(err, &ce) || ce.Pos != bad {
		t.Fatalf("scan over a corrupt entry: %v", err)
	}
}

// --- Clock eviction ------------------------------------------------------------

// evictRig runs a processor state whose deltas are written canonically to a
// log and confirmed at once, feeding a pager like Saw does.
type evictRig struct {
	t     *testing.T
	l     *memlog.Log
	p     *pager
	st    *processor.State
	model map[string]string
	all   []*cowtree.Node
}

func newEvictRig(t *testing.T, commits int, seed uint64) *evictRig {
	t.Helper()
	r := &evictRig{t: t, l: newLog(t, nil), model: map[string]string{}}
	r.p = newPager(r.l, newIndex(1<<16), waitLong)
	r.st = processor.NewState(testHeader, cowtree.New(r.p), 0)
	rnd := rand.New(rand.NewPCG(seed, 5))
	for range commits {
		in := &intention.Intention{}
		for range 1 + rnd.IntN(4) {
			k := fmt.Sprintf("key%03d", rnd.IntN(300))
			in.Ops = append(in.Ops, putOp(k, fmt.Sprintf("%s-%d", k, rnd.IntN(1000))))
		}
		r.commit(in)
	}
	return r
}

// commit appends in, applies it, writes its afterimage and confirms it.
func (r *evictRig) commit(in *intention.Intention) {
	r.t.Helper()
	in.Snapshot = r.st.Pos()
	pos := appendIntention(r.t, r.l, in)
	for r.st.Pos()+1 < pos {
		r.st.Skip(r.st.Pos() + 1)
	}
	d := mustApply(r.t, r.st, pos, in)
	for _, op := range in.Ops {
		r.model[string(op.Key)] = string(op.Value)
	}
	r.p.replaced(d.Replaced) // as Produced does
	ai, _ := Serialize(d, d.Pos, r.p.physical)
	at := appendAfterimage(r.t, r.l, ai)
	r.p.idx.put(d.Pos, at)
	r.p.add(d.Nodes) // as Saw does
	r.all = append(r.all, d.Nodes...)
}

func (r *evictRig) check() {
	r.t.Helper()
	var b strings.Builder
	for _, k := range sortedKeys(r.model) {
		fmt.Fprintf(&b, "%s=%s ", k, r.model[k])
	}
	if got := treeDump(r.t, r.st.Tree()); got != b.String() {
		r.t.Fatalf("tree after eviction:\n%s\nwant\n%s", got, b.String())
	}
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// residentBytes is the memory of the latest version's nodes in memory.
func residentBytes(tr cowtree.Tree) int64 {
	var b int64
	for n := range residentNodes(tr) {
		b += n.Size()
	}
	return b
}

// checkAccounting checks that the pager counts exactly the latest version's
// nodes in memory (every delta being confirmed and no reader holding an
// older version).
func (r *evictRig) checkAccounting() {
	r.t.Helper()
	if got, want := r.p.bytes.Load(), residentBytes(r.st.Tree()); got != want {
		r.t.Fatalf("pager counts %d bytes, the latest version holds %d in memory", got, want)
	}
	if got, want := r.p.counted.Load(), int64(len(residentNodes(r.st.Tree()))); got != want {
		r.t.Fatalf("pager counts %d nodes, the latest version holds %d in memory", got, want)
	}
}

// evictChecked runs one clock pass and checks what it unlinked: never the
// root, never a node whose children are still in memory.
func (r *evictRig) evictChecked(budget int64) {
	r.t.Helper()
	tree := r.st.Tree()
	before := residentNodes(tree)
	r.p.evict(budget, tree)
	r.checkAccounting()
	after := residentNodes(tree)
	root := tree.Root().Node()
	if root == nil || !after[root] {
		r.t.Fatal("the root was evicted")
	}
	for n := range before {
		if after[n] {
			continue
		}
		if n.Left().Node() != nil || n.Right().Node() != nil {
			r.t.Fatalf("evicted %q with children in memory", n.Key())
		}
		// Its parent in this version is still there, pointing at its address.
	}
	for n := range after {
		if !before[n] {
			r.t.Fatalf("eviction made %q resident", n.Key())
		}
	}
}

func TestClockEvictionBudget(t *testing.T) {
	r := newEvictRig(t, 200, 1)
	r.checkAccounting()
	total := r.p.bytes.Load()
	budget := total / 10
	for i := 0; i < 20 && r.p.bytes.Load() > budget; i++ {
		r.evictChecked(budget)
	}
	if got := r.p.bytes.Load(); got > budget {
		t.Fatalf("cached %d bytes after repeated eviction, budget %d (of %d)", got, budget, total)
	}
	if r.p.evictions.Load() == 0 {
		t.Fatal("nothing evicted")
	}
	resident := len(residentNodes(r.st.Tree()))
	t.Logf("%d bytes in %d nodes; budget %d; %d evictions; %d nodes resident", total, len(r.all), budget, r.p.evictions.Load(), resident)
	// Reading everything back loads the evicted nodes through the log.
	misses := r.p.misses.Load()
	r.check()
	r.checkAccounting()
	if r.p.misses.Load() == misses {
		t.Fatal("no node was loaded back")
	}
	// Loaded nodes join the clock and are evicted again.
	if r.p.bytes.Load() <= budget {
		t.Fatalf("loads did not count: %d", r.p.bytes.Load())
	}
	for i := 0; i < 20 && r.p.bytes.Load() > budget; i++ {
		r.evictChecked(budget)
	}
	if got := r.p.bytes.Load(); got > budget {
		t.Fatalf("cached %d after reloading and evicting, budget %d", got, budget)
	}
	r.check()
	// Evicting down to nothing keeps only the root in memory, and the
	// tree still reads.
	for range 40 {
		r.evictChecked(0)
	}
	if n := len(residentNodes(r.st.Tree())); n != 1 {
		t.Fatalf("%d nodes resident after evicting everything", n)
	}
	r.check()
	// A new delta on top of the evicted tree loads its path and applies.
	r.commit(&intention.Intention{Ops: []intention.Op{putOp("key000", "fresh"), putOp("zzz", "new")}})
	r.checkAccounting()
	r.check()
	r.checkAccounting()
}

// With the working set under the budget the clock never turns, yet the
// nodes later deltas replaced must not stay in the ring: the ring would keep
// them in memory for good (an overwrite-heavy workload grew the heap by
// ~2 KB per write). Overwriting 300 keys 3,000 times replaces ~60,000 nodes.
func TestRingDropsReplacedNodesUnderBudget(t *testing.T) {
	r := newEvictRig(t, 3000, 4)
	r.p.sweeps.Wait()
	r.checkAccounting()
	counted := r.p.counted.Load()
	if bound := 2*counted + ringSlack + 64; int64(len(r.p.ring)) > bound {
		t.Fatalf("ring holds %d nodes for %d counted (bound %d)", len(r.p.ring), counted, bound)
	}
	var replaced int
	for _, n := range r.all {
		if n.IsReplaced() {
			replaced++
		}
	}
	if replaced < 10*ringSlack {
		t.Fatalf("only %d nodes replaced: the test does not exercise the sweep", replaced)
	}
	if r.p.hand > len(r.p.ring) {
		t.Fatalf("hand %d beyond the ring (%d)", r.p.hand, len(r.p.ring))
	}
	t.Logf("%d nodes made, %d replaced; ring %d, counted %d", len(r.all), replaced, len(r.p.ring), counted)
	// The clock still works over the swept ring.
	budget := r.p.bytes.Load() / 4
	for i := 0; i < 20 && r.p.bytes.Load() > budget; i++ {
		r.evictChecked(budget)
	}
	if got := r.p.bytes.Load(); got > budget {
		t.Fatalf("cached %d after eviction, budget %d", got, budget)
	}
	r.check()
}

func TestClockEvictionUnderBudgetDoesNothing(t *testing.T) {
	r := newEvictRig(t, 50, 2)
	before := len(residentNodes(r.st.Tree()))
	r.evictChecked(r.p.bytes.Load())
	if r.p.evictions.Load() != 0 || len(residentNodes(r.st.Tree())) != before {
		t.Fatal("evicted under budget")
	}
}

// TestClockSecondChance: a node read since the last pass is passed over.
func TestClockSecondChance(t *testing.T) {
	victim := func(touch string) (string, bool) {
		// One delta: every node is in the latest version, none stale.
		r := newEvictRig(t, 0, 3)
		in := &intention.Intention{}
		for i := range 100 {
			in.Ops = append(in.Ops, putOp(fmt.Sprintf("k%03d", i), "v"))
		}
		r.commit(in)
		// Clear the marks left by building the tree, as a pass would.
		for _, n := range r.p.ring {
			n.Touched()
		}
		if touch != "" {
			if _, _, err := func() ([]byte, bool, error) { tr := r.st.Tree(); return tr.Get([]byte(touch)) }(); err != nil {
				t.Fatal(err)
			}
		}
		before := residentNodes(r.st.Tree())
		r.p.evict(r.p.bytes.Load()-1, r.st.Tree())
		after := residentNodes(r.st.Tree())
		var gone []string
		for n := range before {
			if !after[n] {
				gone = append(gone, string(n.Key()))
			}
		}
		if len(gone) != 1 {
			t.Fatalf("evicted %v, want one node", gone)
		}
		var touchedResident bool
		for n := range after {
			if string(n.Key()) == touch {
				touchedResident = true
			}
		}
		return gone[0], touchedResident
	}
	first, _ := victim("")
	second, kept := victim(first)
	if second == first || !kept {
		t.Fatalf("touched %q was evicted again (second victim %q)", first, second)
	}
}

// The entry cache keeps recently read afterimages up to its byte budget
// (one at least), dropping the oldest read first; nodes load the same
// whether their afterimage is still cached or read again.
func TestPagerEntryCacheBounded(t *testing.T) {
	l := newLog(t, nil)
	afters := appendLeafAfterimages(t, l, 40, 20, "k%02d-%02d", strings.Repeat("v", 100))
	p := newPager(l, newIndex(16), time.Second)
	p.aiCache = newEntryCache(10 << 10) // room for a few of them
	for round := range 2 {
		for i, at := range afters {
			for _, off := range []uint32{19, 3} { // last first: a full parse, then a lookup
				n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: at, Off: off})
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("k%02d-%02d", i, off); string(n.Key()) != want {
					t.Fatalf("round %d: node %d of afterimage %d is %q, want %q", round, off, at, n.Key(), want)
				}
			}
			if c := p.aiCache; c.total > c.limit || len(c.m) != len(c.order)-c.head {
				t.Fatalf("entry cache holds %d bytes in %d entries (%d in order), limit %d", c.total, len(c.m), len(c.order)-c.head, c.limit)
			}
		}
	}
	var sum int64
	for _, x := range p.aiCache.m {
		sum += x.MaxSize()
	}
	if sum != p.aiCache.total {
		t.Fatalf("entry cache counts %d bytes, its entries weigh %d", p.aiCache.total, sum)
	}
	if n := len(p.aiCache.m); n < 2 || n >= len(afters)/2 {
		t.Fatalf("entry cache keeps %d of %d afterimages within 10 KiB", n, len(afters))
	}
	if h := p.hits.Load(); h < 80 { // the second load of each afterimage
		t.Fatalf("%d cache hits, want at least one per afterimage per round", h)
	}
}

// Concurrent loads of different nodes of the same afterimages share its
// node index safely (run with -race) and read the right nodes.
func TestPagerConcurrentLoadsOfOneAfterimage(t *testing.T) {
	l := newLog(t, nil)
	afters := appendLeafAfterimages(t, l, 4, 200, "k%d-%03d", "v")
	p := newPager(l, newIndex(16), time.Second)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 400 {
				i, off := (g+k)%4, uint32((k*37+g*11)%200)
				n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: afters[i], Off: off})
				if err != nil {
					t.Error(err)
					return
				}
				if want := fmt.Sprintf("k%d-%03d", i, off); string(n.Key()) != want {
					t.Errorf("got %q, want %q", n.Key(), want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// wholeReads hides a log's ReadRange, so the pager reads entries whole.
type wholeReads struct{ log.Log }

// A node of a large afterimage is read alone, in three small ranged reads,
// and checked against its own checksum: the same node a whole read gives,
// nothing cached. A damaged node is corrupt either way (its checksum, or
// the envelope's); its intact neighbours still load by range. An afterimage
// under rangedMin is read whole and cached.
func TestPagerRangedLoad(t *testing.T) {
	l := newLog(t, nil)
	in := appendIntention(t, l, &intention.Intention{Ops: []intention.Op{putOp("k", "v")}})
	ai := &afterimage.Afterimage{Intention: in, Base: in}
	for i := range 400 {
		ai.Nodes = append(ai.Nodes, leaf(fmt.Sprintf("key%04d", i), strings.Repeat(string(rune('a'+i%26)), 100), in))
	}
	data := entry.AppendAfterimage(nil, ai)
	if len(data) < rangedMin {
		t.Fatalf("afterimage of %d bytes: not above rangedMin", len(data))
	}
	pos := appendData(t, l, data)
	bad := bytes.Clone(data)
	bad[bytes.Index(bad, []byte("key0007"))+12] ^= 0xff // in node 7's value
	badPos := appendData(t, l, bad)

	check := func(p *pager, at uint64, off uint32) {
		t.Helper()
		n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: at, Off: off})
		if err != nil {
			t.Fatalf("node %d at %d: %v", off, at, err)
		}
		want := &ai.Nodes[off]
		if !bytes.Equal(n.Key(), want.Key) || !bytes.Equal(n.Value(), want.Value) {
			t.Fatalf("node %d at %d: %q=%.10q, want %q", off, at, n.Key(), n.Value(), want.Key)
		}
	}
	p := newPager(l, newIndex(16), waitLong)
	reads := l.Stats().Reads
	for _, off := range []uint32{0, 7, 399} {
		check(p, pos, off)
	}
	if got := p.ranged.Load(); got != 3 {
		t.Fatalf("%d nodes read by range, want 3", got)
	}
	// The first load reads the first rangedMin bytes (and learns the size)
	// and the offsets table (400 nodes: kept), and finds node 0 in those
	// first bytes; the later loads read just their node.
	if got := l.Stats().Reads - reads; got != 2+1+1 {
		t.Fatalf("%d log reads for 3 ranged loads, want 4", got)
	}
	if _, ok := p.aiCache.get(pos); ok {
		t.Fatal("a ranged load cached the entry")
	}
	if _, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: badPos, Off: 7}); !errors.Is(err, entry.ErrCorrupt) || !strings.Contains(err.Error(), strconv.FormatUint(badPos, 10)) {
		t.Fatalf("damaged node by range: %v, want ErrCorrupt naming %d", err, badPos)
	}
	check(p, badPos, 8)

	// An afterimage of more nodes than maxCachedTable: its head is kept,
	// not its table, so each load reads the node's offsets entries and the
	// node (unless it lies in the first bytes).
	big := &afterimage.Afterimage{Intention: in, Base: in}
	for i := range maxCachedTable + 100 {
		big.Nodes = append(big.Nodes, leaf(fmt.Sprintf("key%04d", i), strings.Repeat("v", 40), in))
	}
	bigData := entry.AppendAfterimage(nil, big)
	bigPos := appendData(t, l, bigData)
	reads = l.Stats().Reads
	for _, off := range []uint32{3, 500, 600} {
		n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: bigPos, Off: off})
		if err != nil || !bytes.Equal(n.Key(), big.Nodes[off].Key) {
			t.Fatalf("node %d of %d: %v", off, len(big.Nodes), err)
		}
	}
	if got := l.Stats().Reads - reads; got != 2+2+2 {
		t.Fatalf("%d log reads for 3 loads from an afterimage of %d nodes, want 6", got, len(big.Nodes))
	}
	if rh, ok := p.heads.get(bigPos); !ok || rh.table != nil {
		t.Fatalf("head of the big afterimage kept %t, with a table %t", ok, ok && rh.table != nil)
	}

	whole := newPager(wholeReads{l}, newIndex(16), waitLong)
	check(whole, pos, 7)
	if _, err := whole.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: badPos, Off: 8}); !errors.Is(err, entry.ErrCorrupt) {
		t.Fatalf("intact node of a damaged entry, read whole: %v, want ErrCorrupt", err)
	}
	if whole.ranged.Load() != 0 {
		t.Fatal("read by range through a log without ReadRange")
	}

	// A large afterimage written before the node offsets is read whole; a
	// damaged one is corrupt.
	payload := ai.AppendPayload(nil)
	old := append([]byte{0x93}, payload[1:len(payload)-afterimage.OffsetsSize(len(ai.Nodes))]...)
	oldPos := appendData(t, l, entry.Encode(nil, entry.TypeAfterimage, old))
	damagedOld := entry.Encode(nil, entry.TypeAfterimage, old)
	damagedOld[len(damagedOld)-3] ^= 0xff
	damagedOldPos := appendData(t, l, damagedOld)
	ranged := p.ranged.Load()
	check(p, oldPos, 123)
	if p.ranged.Load() != ranged {
		t.Fatal("an afterimage without node offsets was read by range")
	}
	if _, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: damagedOldPos, Off: 1}); !errors.Is(err, entry.ErrCorrupt) {
		t.Fatalf("damaged afterimage without offsets: %v, want ErrCorrupt", err)
	}

	small := &afterimage.Afterimage{Intention: in, Base: in, Nodes: ai.Nodes[:10]}
	smallPos := appendData(t, l, entry.AppendAfterimage(nil, small))
	ranged = p.ranged.Load()
	check(p, smallPos, 3)
	if p.ranged.Load() != ranged {
		t.Fatal("a small afterimage was read by range")
	}
	if _, ok := p.aiCache.get(smallPos); !ok {
		t.Fatal("a small afterimage read whole was not cached")
	}
}

// TestEvictionRacingADelta replays the race Tree.Evict allows: a delta
// copies n's parent while the clock unlinks n from the version the delta
// started from, so the latest version keeps n in memory although the pager
// stopped counting it. The clock must count such a node again when it
// finds it below the hand, and evict it: before it did, n stayed in memory
// uncounted for good and kept every ancestor from being evicted.
func TestEvictionRacingADelta(t *testing.T) {
	r := newEvictRig(t, 200, 3)
	old := r.st.Tree()
	// n: a node in memory with no children in memory, under a parent p.
	var n, p *cowtree.Node
	for m := range residentNodes(old) {
		for _, c := range []*cowtree.Node{m.Left().Node(), m.Right().Node()} {
			if c != nil && c.Left().Node() == nil && c.Right().Node() == nil && (n == nil || string(c.Key()) < string(n.Key())) {
				n, p = c, m
			}
		}
	}
	if n == nil {
		t.Fatal("no node to evict")
	}
	// The delta rewrites p's value: its copy of p points at n in memory.
	in := &intention.Intention{Snapshot: r.st.Pos(), Ops: []intention.Op{putOp(string(p.Key()), "racing")}}
	pos := appendIntention(t, r.l, in)
	for r.st.Pos()+1 < pos {
		r.st.Skip(r.st.Pos() + 1)
	}
	d := mustApply(t, r.st, pos, in)
	r.model[string(p.Key())] = "racing"
	// Meanwhile the clock evicts n from the version the delta started from.
	if evicted, stale := old.Evict(n); !evicted || stale {
		t.Fatalf("Evict(n) on the old version = %v, %v", evicted, stale)
	}
	if n.Replaced() {
		r.p.bytes.Add(-n.Size())
		r.p.counted.Add(-1)
	}
	// The delta is handed over and confirmed, as Produced and Saw do.
	r.p.replaced(d.Replaced)
	ai, _ := Serialize(d, d.Pos, r.p.physical)
	r.p.idx.put(d.Pos, appendAfterimage(t, r.l, ai))
	r.p.add(d.Nodes)
	if !residentNodes(r.st.Tree())[n] || !n.IsReplaced() {
		t.Fatal("the race did not leave n in memory, uncounted, in the latest version")
	}
	// Evicting everything the clock may leaves the root alone, with n gone
	// and the accounting exact.
	for range 20 {
		r.evictChecked(0)
	}
	if residentNodes(r.st.Tree())[n] {
		t.Fatalf("n (%q) is still in memory after the clock turned", n.Key())
	}
	if resident := len(residentNodes(r.st.Tree())); resident != 1 {
		t.Fatalf("%d nodes in memory after evicting to a budget of 0, want the root alone", resident)
	}
	if r.p.recounted.Load() == 0 {
		t.Fatal("no node was counted again")
	}
	r.check()
	r.checkAccounting()
}
