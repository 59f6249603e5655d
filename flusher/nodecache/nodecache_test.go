package nodecache

import (
	"math"
	"sync"
	"testing"

	"github.com/cruzlog/cruzdb/cowtree"
)

func TestFIFODropsOldest(t *testing.T) {
	x := NewFIFO[uint64](3)
	for i := uint64(1); i <= 5; i++ {
		x.Put(i, 100+i)
	}
	if x.Len() != 3 {
		t.Fatalf("len %d", x.Len())
	}
	for i := uint64(1); i <= 5; i++ {
		a, ok := x.Get(i)
		if want := i >= 3; ok != want || (ok && a != 100+i) {
			t.Fatalf("get(%d) = %d %v", i, a, ok)
		}
	}
	// The first mapping of a key stays: a later put is ignored and does
	// not refresh its age.
	x.Put(3, 999)
	if a, _ := x.Get(3); a != 103 {
		t.Fatalf("put over an entry changed it to %d", a)
	}
	x.Put(6, 106)
	if _, ok := x.Get(3); ok {
		t.Fatal("3 is the oldest and should have been dropped")
	}
	// Long runs keep the bookkeeping bounded and the newest entries.
	y := NewFIFO[uint64](10)
	for i := uint64(1); i <= 50000; i++ {
		y.Put(i, i)
	}
	if y.Len() != 10 || len(y.order)-y.head != 10 || len(y.order) > 10+2*1024+10 {
		t.Fatalf("len %d, order %d head %d", y.Len(), len(y.order), y.head)
	}
	for i := uint64(49991); i <= 50000; i++ {
		if _, ok := y.Get(i); !ok {
			t.Fatalf("%d missing", i)
		}
	}
}

// The index keeps the most recent intentions (one per slot), keeps the first
// afterimage recorded for an intention, never answers for an intention it
// does not hold, and takes what does not pack into a word too.
func TestIndex(t *testing.T) {
	x := NewIndex(5) // 8 slots
	if len(x.slots) != 8 {
		t.Fatalf("%d slots for a limit of 5", len(x.slots))
	}
	if n := len(NewIndex(1 << 40).slots); n != 1<<maxIndexBits {
		t.Fatalf("%d slots for a limit of 1<<40, want the cap %d", n, 1<<maxIndexBits)
	}
	for i := uint64(1); i <= 20; i++ {
		x.Put(i, i+3)
	}
	if x.Len() != 8 {
		t.Fatalf("len %d, want 8", x.Len())
	}
	for i := uint64(0); i <= 30; i++ {
		a, ok := x.Get(i)
		if want := i >= 13 && i <= 20; ok != want || (ok && a != i+3) {
			t.Fatalf("get(%d) = %d %v, want %v", i, a, ok, want)
		}
	}
	x.Put(15, 99) // a duplicate: the first stays
	if a, _ := x.Get(15); a != 18 {
		t.Fatalf("a later put changed 15 to %d", a)
	}
	x.Put(23, 24) // same slot as 15: evicts it
	if _, ok := x.Get(15); ok {
		t.Fatal("15 still answered after 23 took its slot")
	}
	if a, ok := x.Get(23); !ok || a != 24 {
		t.Fatalf("get(23) = %d %v", a, ok)
	}
	// Far afterimages and huge positions do not pack: kept aside.
	for _, e := range [][2]uint64{{7, 7 + 1<<32}, {1 << 60, 1<<60 + 1}, {math.MaxUint64 - 1, math.MaxUint64}} {
		x.Put(e[0], e[1])
		if a, ok := x.Get(e[0]); !ok || a != e[1] {
			t.Fatalf("get(%d) = %d %v, want %d", e[0], a, ok, e[1])
		}
	}
	if _, ok := x.Get(1<<60 + 8); ok {
		t.Fatal("an absent huge position answered")
	}
	// The first afterimage stays whichever of the two stores holds it.
	x.Put(7, 8) // 7 is kept aside with a far afterimage
	if a, _ := x.Get(7); a != 7+1<<32 {
		t.Fatalf("get(7) = %d after a later put, want the first, %d", a, uint64(7+1<<32))
	}
	x.Put(9, 10)
	x.Put(9, 9+1<<33) // does not pack: must not shadow the first
	if a, _ := x.Get(9); a != 10 {
		t.Fatalf("get(9) = %d, want 10", a)
	}
	if x.Len() != 11 { // 8 slots (9 took 17's) and 3 aside
		t.Fatalf("len %d, want 11", x.Len())
	}
}

// Concurrent puts and gets never pair an intention with another's
// afterimage (run with -race).
func TestIndexConcurrent(t *testing.T) {
	x := NewIndex(64)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); i < 20000; i++ {
				in := i*4 + uint64(w)
				x.Put(in, in*3+1)
				for k := uint64(0); k < 30 && k*7 < in; k++ {
					j := in - k*7
					if a, ok := x.Get(j); ok && a != j*3+1 {
						t.Errorf("get(%d) = %d, want %d", j, a, j*3+1)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// A node's state moves Uncounted -> Counted -> Replaced (-> Counted again
// by recount only); each transition is taken by one call alone.
func TestStateTransitions(t *testing.T) {
	n := cowtree.NewLoaded(cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: 5}, cowtree.NodeFields{Key: []byte("k"), Value: []byte("v"), Height: 1, MinTomb: cowtree.NoTombstone})
	if s := StateOf(n); s != Uncounted || s.String() != "uncounted" {
		t.Fatalf("a new node is %v", s)
	}
	if recount(n) || StateOf(n) != Uncounted {
		t.Fatal("recount of a node never counted")
	}
	if !markCounted(n) || markCounted(n) || !isCounted(n) {
		t.Fatalf("markCounted twice: state %v", StateOf(n))
	}
	if !markReplaced(n) || markReplaced(n) || !isReplaced(n) || isCounted(n) {
		t.Fatalf("markReplaced twice: state %v", StateOf(n))
	}
	if markCounted(n) {
		t.Fatal("a replaced node was counted by markCounted")
	}
	if !recount(n) || recount(n) || StateOf(n) != Counted {
		t.Fatalf("recount twice: state %v", StateOf(n))
	}
	if s := State(7).String(); s != "state(7)" {
		t.Fatalf("State(7) = %q", s)
	}
}
