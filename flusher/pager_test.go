package flusher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/flusher/nodecache"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/cruzlog/cruzdb/processor"
)

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
	p := nodecache.NewCache(pl.l, nodecache.NewIndex(16), waitLong)
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
	if pl.l.Stats().Reads != reads || p.Hits() != 1 {
		t.Fatalf("second node of a decoded afterimage read the log (%d reads, %d hits)", pl.l.Stats().Reads-reads, p.Hits())
	}
	// The whole tree through the pager, value in intention included.
	tree := cowtree.FromRoot(pl.rootAddr, p)
	if got := treeDump(t, tree); got != "a=va b=vb c=vc d=vd big="+pl.bigFinal+" " {
		t.Fatalf("tree %.80q", got)
	}
	if p.Scans() != 1 {
		t.Fatalf("%d forward scans, want 1 (for intention %d)", p.Scans(), pl.i1)
	}
}

func TestPagerLoadIntentionPointer(t *testing.T) {
	pl := newPagerLog(t)
	t.Run("index hit", func(t *testing.T) {
		idx := nodecache.NewIndex(16)
		idx.Put(pl.i1, pl.a1)
		p := nodecache.NewCache(pl.l, idx, waitLong)
		reads := pl.l.Stats().Reads
		n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: pl.i1, Off: 0})
		if err != nil {
			t.Fatal(err)
		}
		if string(n.Key()) != "a" || n.Addr() != (cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: pl.a1, Off: 0}) {
			t.Fatalf("%q at %v", n.Key(), n.Addr())
		}
		if p.Scans() != 0 || pl.l.Stats().Reads-reads != 1 {
			t.Fatalf("index hit scanned (%d scans, %d reads)", p.Scans(), pl.l.Stats().Reads-reads)
		}
	})
	t.Run("index miss scans forward", func(t *testing.T) {
		idx := nodecache.NewIndex(16)
		p := nodecache.NewCache(pl.l, idx, waitLong)
		n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: pl.i3, Off: 2})
		if err != nil {
			t.Fatal(err)
		}
		if string(n.Key()) != "d" || n.Addr().Pos != pl.a3 {
			t.Fatalf("%q at %v", n.Key(), n.Addr())
		}
		if a, ok := idx.Get(pl.i3); !ok || a != pl.a3 || p.Scans() != 1 {
			t.Fatalf("scan did not index: %d %v, %d scans", a, ok, p.Scans())
		}
		// Now an index hit.
		if _, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: pl.i3, Off: 0}); err != nil || p.Scans() != 1 {
			t.Fatalf("second load: %v, %d scans", err, p.Scans())
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
	p := nodecache.NewCache(l, nodecache.NewIndex(16), waitLong)
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
	p := nodecache.NewCache(l, nodecache.NewIndex(16), timeout)
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
	var held atomic.Int64 // the position the held append took: the hole
	l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend && c.Attempt == 0 {
			held.Store(int64(c.Pos))
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
	hole := log.Position(held.Load())
	var holeReads atomic.Int64
	l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpRead && c.Pos == hole {
			holeReads.Add(1)
		}
		return memlog.Fault{}
	})
	appendAfterimage(t, l, &afterimage.Afterimage{Intention: i1, Base: i1, Nodes: []afterimage.Node{leaf("late", "1", i1)}})
	p := nodecache.NewCache(l, nodecache.NewIndex(16), time.Hour)
	done := make(chan error, 1)
	var n *cowtree.Node
	go func() {
		var err error
		n, err = p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: i1, Off: 0})
		done <- err
	}()
	// Read the hole, found it empty, and read it again: the scan waits
	// on it rather than passing it.
	blocked(t, "LoadNode across a hole", done, func() bool { return holeReads.Load() >= 2 })
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
	var tailReads atomic.Int64
	l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpRead && c.Pos == log.Position(i1+1) {
			tailReads.Add(1)
		}
		return memlog.Fault{}
	})
	p := nodecache.NewCache(l, nodecache.NewIndex(16), 10*time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: i1, Off: 0})
		done <- err
	}()
	// Read the tail, found nothing, read it again: the scan waits there.
	blocked(t, "LoadNode before the afterimage exists", done, func() bool { return tailReads.Load() >= 2 })
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
	p := nodecache.NewCache(pl.l, nodecache.NewIndex(16), waitLong)
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
	p := nodecache.NewCache(pl.l, nodecache.NewIndex(16), waitLong)
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
	p = nodecache.NewCache(l, nodecache.NewIndex(16), waitLong)
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
	p     *nodecache.Cache
	st    *processor.State
	model map[string]string
	all   []*cowtree.Node
}

func newEvictRig(t *testing.T, commits int, seed uint64) *evictRig {
	t.Helper()
	r := &evictRig{t: t, l: newLog(t, nil), model: map[string]string{}}
	r.p = nodecache.NewCache(r.l, nodecache.NewIndex(1<<16), waitLong)
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
	r.p.Clock().Uncount(d.Replaced) // as Produced does
	ai, _ := Serialize(d, d.Pos, r.p.Physical)
	at := appendAfterimage(r.t, r.l, ai)
	r.p.Index().Put(d.Pos, at)
	r.p.Clock().Add(d.Nodes) // as Saw does
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
	if got, want := r.p.Clock().Bytes(), residentBytes(r.st.Tree()); got != want {
		r.t.Fatalf("pager counts %d bytes, the latest version holds %d in memory", got, want)
	}
	if got, want := r.p.Clock().Counted(), int64(len(residentNodes(r.st.Tree()))); got != want {
		r.t.Fatalf("pager counts %d nodes, the latest version holds %d in memory", got, want)
	}
}

// evictChecked runs one clock pass and checks what it unlinked: never the
// root, never a node whose children are still in memory.
func (r *evictRig) evictChecked(budget int64) {
	r.t.Helper()
	tree := r.st.Tree()
	before := residentNodes(tree)
	r.p.Clock().Evict(budget, tree)
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
	total := r.p.Clock().Bytes()
	budget := total / 10
	for i := 0; i < 20 && r.p.Clock().Bytes() > budget; i++ {
		r.evictChecked(budget)
	}
	if got := r.p.Clock().Bytes(); got > budget {
		t.Fatalf("cached %d bytes after repeated eviction, budget %d (of %d)", got, budget, total)
	}
	if r.p.Clock().Evictions() == 0 {
		t.Fatal("nothing evicted")
	}
	resident := len(residentNodes(r.st.Tree()))
	t.Logf("%d bytes in %d nodes; budget %d; %d evictions; %d nodes resident", total, len(r.all), budget, r.p.Clock().Evictions(), resident)
	// Reading everything back loads the evicted nodes through the log.
	misses := r.p.Misses()
	r.check()
	r.checkAccounting()
	if r.p.Misses() == misses {
		t.Fatal("no node was loaded back")
	}
	// Loaded nodes join the clock and are evicted again.
	if r.p.Clock().Bytes() <= budget {
		t.Fatalf("loads did not count: %d", r.p.Clock().Bytes())
	}
	for i := 0; i < 20 && r.p.Clock().Bytes() > budget; i++ {
		r.evictChecked(budget)
	}
	if got := r.p.Clock().Bytes(); got > budget {
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
	r.p.Clock().WaitSweep()
	r.checkAccounting()
	counted := r.p.Clock().Counted()
	ring, hand := r.p.Clock().Ring()
	if bound := 2*counted + nodecache.RingSlack + 64; int64(len(ring)) > bound {
		t.Fatalf("ring holds %d nodes for %d counted (bound %d)", len(ring), counted, bound)
	}
	var replaced int
	for _, n := range r.all {
		if nodecache.StateOf(n) == nodecache.Replaced {
			replaced++
		}
	}
	if replaced < 10*nodecache.RingSlack {
		t.Fatalf("only %d nodes replaced: the test does not exercise the sweep", replaced)
	}
	if hand > len(ring) {
		t.Fatalf("hand %d beyond the ring (%d)", hand, len(ring))
	}
	t.Logf("%d nodes made, %d replaced; ring %d, counted %d", len(r.all), replaced, len(ring), counted)
	// The clock still works over the swept ring.
	budget := r.p.Clock().Bytes() / 4
	for i := 0; i < 20 && r.p.Clock().Bytes() > budget; i++ {
		r.evictChecked(budget)
	}
	if got := r.p.Clock().Bytes(); got > budget {
		t.Fatalf("cached %d after eviction, budget %d", got, budget)
	}
	r.check()
}

func TestClockEvictionUnderBudgetDoesNothing(t *testing.T) {
	r := newEvictRig(t, 50, 2)
	before := len(residentNodes(r.st.Tree()))
	r.evictChecked(r.p.Clock().Bytes())
	if r.p.Clock().Evictions() != 0 || len(residentNodes(r.st.Tree())) != before {
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
		ring, _ := r.p.Clock().Ring()
		for _, n := range ring {
			n.TakeTouched()
		}
		if touch != "" {
			if _, _, err := func() ([]byte, bool, error) { tr := r.st.Tree(); return tr.Get([]byte(touch)) }(); err != nil {
				t.Fatal(err)
			}
		}
		before := residentNodes(r.st.Tree())
		r.p.Clock().Evict(r.p.Clock().Bytes()-1, r.st.Tree())
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
	p := nodecache.NewCache(l, nodecache.NewIndex(16), time.Second)
	p.SetEntryCacheBytes(10 << 10) // room for a few of them
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
			if total, limit := p.EntryCache().Weight(); total > limit {
				t.Fatalf("entry cache holds %d bytes in %d entries, limit %d", total, p.EntryCache().Len(), limit)
			}
			if err := p.EntryCache().Check(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.EntryCache().Check(); err != nil { // the weight of an entry is its MaxSize
		t.Fatal(err)
	}
	if n := p.EntryCache().Len(); n < 2 || n >= len(afters)/2 {
		t.Fatalf("entry cache keeps %d of %d afterimages within 10 KiB", n, len(afters))
	}
	if h := p.Hits(); h < 80 { // the second load of each afterimage
		t.Fatalf("%d cache hits, want at least one per afterimage per round", h)
	}
}

// Concurrent loads of different nodes of the same afterimages share its
// node index safely (run with -race) and read the right nodes.
func TestPagerConcurrentLoadsOfOneAfterimage(t *testing.T) {
	l := newLog(t, nil)
	afters := appendLeafAfterimages(t, l, 4, 200, "k%d-%03d", "v")
	p := nodecache.NewCache(l, nodecache.NewIndex(16), time.Second)
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
// under nodecache.RangedMin is read whole and cached.
func TestPagerRangedLoad(t *testing.T) {
	l := newLog(t, nil)
	in := appendIntention(t, l, &intention.Intention{Ops: []intention.Op{putOp("k", "v")}})
	ai := &afterimage.Afterimage{Intention: in, Base: in}
	for i := range 400 {
		ai.Nodes = append(ai.Nodes, leaf(fmt.Sprintf("key%04d", i), strings.Repeat(string(rune('a'+i%26)), 100), in))
	}
	data := entry.AppendAfterimage(nil, ai)
	if len(data) < nodecache.RangedMin {
		t.Fatalf("afterimage of %d bytes: not above nodecache.RangedMin", len(data))
	}
	pos := appendData(t, l, data)
	bad := bytes.Clone(data)
	bad[bytes.Index(bad, []byte("key0007"))+12] ^= 0xff // in node 7's value
	badPos := appendData(t, l, bad)

	check := func(p *nodecache.Cache, at uint64, off uint32) {
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
	p := nodecache.NewCache(l, nodecache.NewIndex(16), waitLong)
	reads := l.Stats().Reads
	for _, off := range []uint32{0, 7, 399} {
		check(p, pos, off)
	}
	if got := p.Ranged(); got != 3 {
		t.Fatalf("%d nodes read by range, want 3", got)
	}
	// The first load reads the first nodecache.RangedMin bytes (and learns the size)
	// and the offsets table (400 nodes: kept), and finds node 0 in those
	// first bytes; the later loads read just their node.
	if got := l.Stats().Reads - reads; got != 2+1+1 {
		t.Fatalf("%d log reads for 3 ranged loads, want 4", got)
	}
	if _, ok := p.EntryCache().Get(pos); ok {
		t.Fatal("a ranged load cached the entry")
	}
	if _, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: badPos, Off: 7}); !errors.Is(err, entry.ErrCorrupt) || !strings.Contains(err.Error(), strconv.FormatUint(badPos, 10)) {
		t.Fatalf("damaged node by range: %v, want ErrCorrupt naming %d", err, badPos)
	}
	check(p, badPos, 8)

	// An afterimage of more nodes than nodecache.MaxCachedTable: its head is kept,
	// not its table, so each load reads the node's offsets entries and the
	// node (unless it lies in the first bytes).
	big := &afterimage.Afterimage{Intention: in, Base: in}
	for i := range nodecache.MaxCachedTable + 100 {
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
	if known, table := p.KnowsHead(bigPos); !known || table {
		t.Fatalf("head of the big afterimage kept %t, with a table %t", known, table)
	}

	whole := nodecache.NewCache(wholeReads{l}, nodecache.NewIndex(16), waitLong)
	check(whole, pos, 7)
	if _, err := whole.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: badPos, Off: 8}); !errors.Is(err, entry.ErrCorrupt) {
		t.Fatalf("intact node of a damaged entry, read whole: %v, want ErrCorrupt", err)
	}
	if whole.Ranged() != 0 {
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
	ranged := p.Ranged()
	check(p, oldPos, 123)
	if p.Ranged() != ranged {
		t.Fatal("an afterimage without node offsets was read by range")
	}
	if _, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: damagedOldPos, Off: 1}); !errors.Is(err, entry.ErrCorrupt) {
		t.Fatalf("damaged afterimage without offsets: %v, want ErrCorrupt", err)
	}

	small := &afterimage.Afterimage{Intention: in, Base: in, Nodes: ai.Nodes[:10]}
	smallPos := appendData(t, l, entry.AppendAfterimage(nil, small))
	ranged = p.Ranged()
	check(p, smallPos, 3)
	if p.Ranged() != ranged {
		t.Fatal("a small afterimage was read by range")
	}
	if _, ok := p.EntryCache().Get(smallPos); !ok {
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
	r.p.Clock().Uncount([]*cowtree.Node{n}) // as the clock does for what it evicts
	// The delta is handed over and confirmed, as Produced and Saw do.
	r.p.Clock().Uncount(d.Replaced)
	ai, _ := Serialize(d, d.Pos, r.p.Physical)
	r.p.Index().Put(d.Pos, appendAfterimage(t, r.l, ai))
	r.p.Clock().Add(d.Nodes)
	if !residentNodes(r.st.Tree())[n] || nodecache.StateOf(n) != nodecache.Replaced {
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
	if r.p.Clock().Recounted() == 0 {
		t.Fatal("no node was counted again")
	}
	r.check()
	r.checkAccounting()
}
