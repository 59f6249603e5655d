package nodecache

import (
	"sync"
	"sync/atomic"

	"github.com/cruzlog/cruzdb/cowtree"
)

// Clock is the node cache's accounting and eviction: it counts the nodes of
// the latest version that are in memory and durable (their afterimage
// confirmed, or loaded from the log), keeps them on a clock ring, and evicts
// them from the tree when their bytes are over a budget. Each node's
// standing is its State.
type Clock struct {
	clockMu  sync.Mutex
	ring     []*cowtree.Node // counted nodes, and replaced ones not yet swept out
	hand     int
	sweeping bool           // a sweep holds the ring's older part (see sweep)
	sweeps   sync.WaitGroup // the sweep running, if any
	stopped  bool           // no new sweeps once set (under clockMu)
	bytes    atomic.Int64   // Size of the counted nodes
	// addedSince counts the nodes counted since the last evict call: the
	// clock's allowance for the next (see Evict).
	addedSince atomic.Int64
	counted    atomic.Int64 // how many nodes are counted

	evictions atomic.Uint64
	recounted atomic.Uint64 // replaced nodes found in the latest version (see Evict)
}

// NewClock returns an empty clock.
func NewClock() *Clock { return &Clock{} }

// Bytes is the Size of the counted nodes.
func (ck *Clock) Bytes() int64 { return ck.bytes.Load() }

// Counted is how many nodes are counted.
func (ck *Clock) Counted() int64 { return ck.counted.Load() }

// Evictions is how many nodes eviction unlinked.
func (ck *Clock) Evictions() uint64 { return ck.evictions.Load() }

// Recounted is how many replaced nodes eviction found in the latest version
// and counted again.
func (ck *Clock) Recounted() uint64 { return ck.recounted.Load() }

// Ring returns a copy of the clock ring and the hand's place in it, for
// tests and inspection.
func (ck *Clock) Ring() (ring []*cowtree.Node, hand int) {
	ck.clockMu.Lock()
	defer ck.clockMu.Unlock()
	return append([]*cowtree.Node(nil), ck.ring...), ck.hand
}

// WaitSweep waits for the sweep running, if any (for tests).
func (ck *Clock) WaitSweep() { ck.sweeps.Wait() }

// Add counts the nodes not counted yet, unless they left the latest
// version, and puts them on the clock: they are durable and confirmed (a
// delta's afterimage was confirmed, or a node was loaded from the log).
func (ck *Clock) Add(nodes []*cowtree.Node) {
	var b, c int64
	ck.clockMu.Lock()
	for _, n := range nodes {
		if markCounted(n) {
			b += n.Size()
			c++
			ck.ring = append(ck.ring, n)
		}
	}
	ck.bytes.Add(b)
	ck.addedSince.Add(c)
	if counted := ck.counted.Add(c); !ck.sweeping && !ck.stopped && int64(len(ck.ring)) > 2*counted+RingSlack {
		ck.sweeping = true
		old := ck.ring
		ck.ring = make([]*cowtree.Node, 0, RingSlack)
		ck.hand = 0
		ck.sweeps.Add(1)
		go ck.sweep(old)
	}
	ck.clockMu.Unlock()
}

// RingSlack is how many replaced nodes the ring may hold beyond as many as
// it counts before Add sweeps them out.
const RingSlack = 4096

// Stop waits for the running sweep and starts no more: Add may still be
// called (replay confirms checkpoint images on its own goroutine, which
// outlives the flusher's), and a WaitGroup must not gain work while it is
// waited on.
func (ck *Clock) Stop() {
	ck.clockMu.Lock()
	ck.stopped = true
	ck.clockMu.Unlock()
	ck.sweeps.Wait()
}

// sweep drops the replaced nodes from old, the ring as it was when Add
// found replaced nodes to be half of it, and puts what is left back in front
// of the nodes added meanwhile. The clock drops the replaced nodes it
// passes, but it only turns when the cache is over its budget: with a
// working set under the budget, every node a later delta replaced would stay
// in the ring, and in memory, for good. Sweeping when they are half the ring
// keeps it within twice the counted nodes plus RingSlack, at an amortized
// two looks per node added. The looks (one cache miss each: 27 ms for a ring
// of a million nodes) are taken on a goroutine of their own without clockMu,
// so neither replay, which adds nodes as their afterimages are confirmed,
// nor loads wait for them; while it runs, the clock turns over the newer
// nodes only.
func (ck *Clock) sweep(old []*cowtree.Node) {
	defer ck.sweeps.Done()
	kept := old[:0]
	for _, n := range old {
		if !isReplaced(n) {
			kept = append(kept, n)
		}
	}
	clear(old[len(kept):])
	ck.clockMu.Lock()
	ck.hand += len(kept) // on the same node of the newer part
	ck.ring = append(kept, ck.ring...)
	ck.sweeping = false
	ck.clockMu.Unlock()
}

// Uncount stops counting nodes that left the latest version (a delta
// copied or removed them): it marks them replaced.
func (ck *Clock) Uncount(nodes []*cowtree.Node) {
	var b, c int64
	for _, n := range nodes {
		if markReplaced(n) {
			b += n.Size()
			c++
		}
	}
	ck.bytes.Add(-b)
	ck.counted.Add(-c)
}

// evictSteps is the clock's allowance per evict call, on top of
// evictStepsPerNode for each node counted since the last call.
const (
	evictSteps        = 256
	evictStepsPerNode = 4
)

// Evict runs the clock until the clean nodes in memory fit in budget,
// unlinking them from tree, the latest version (see cowtree.Tree.Evict for
// why this may run beside the processor). The node under the hand, if not
// touched since the hand last passed, goes with the counted nodes in memory
// below it (cowtree.Tree.EvictSubtree), deepest first, until the budget is
// met. Each step searches the tree for its node, so a call takes at most
// evictSteps plus evictStepsPerNode for every node counted since the last
// call (and never more than two turns of the ring): the clock's work stays
// proportional to what joins the cache.
//
// Both limits exist because the clock once walked the whole ring twice a
// call while holding clockMu, and replay's loads waited for it (figures:
// bench/RESULTS.md, "Figures behind design choices"). A call that finds the
// clock busy returns at once: the other caller is doing the work, and the
// allowance carries over.
func (ck *Clock) Evict(budget int64, tree cowtree.Tree) {
	if ck.bytes.Load() <= budget {
		return
	}
	if !ck.clockMu.TryLock() {
		return
	}
	defer ck.clockMu.Unlock()
	ck.evictLocked(budget, tree)
}

// EvictNow is Evict that waits for the clock instead of leaving the work
// to the caller holding it.
func (ck *Clock) EvictNow(budget int64, tree cowtree.Tree) {
	if ck.bytes.Load() <= budget {
		return
	}
	ck.clockMu.Lock()
	defer ck.clockMu.Unlock()
	ck.evictLocked(budget, tree)
}

func (ck *Clock) evictLocked(budget int64, tree cowtree.Tree) {
	over := func() bool { return ck.bytes.Load() > budget }
	gone := func(m *cowtree.Node) {
		ck.evictions.Add(1)
		if markReplaced(m) {
			ck.bytes.Add(-m.Size())
			ck.counted.Add(-1)
		}
	}
	// Below the hand, a node is evicted if counted, or if replaced yet in
	// memory in the latest version (a delta made while an eviction ran kept
	// it): uncounted, such a node would stay in memory for good, and keep
	// every ancestor from being evicted.
	ok := func(m *cowtree.Node) bool {
		if isCounted(m) {
			return true
		}
		if recount(m) {
			ck.bytes.Add(m.Size())
			ck.counted.Add(1)
			ck.ring = append(ck.ring, m)
			ck.recounted.Add(1)
			return true
		}
		return false // not yet durable and confirmed
	}
	allowance := evictSteps + evictStepsPerNode*ck.addedSince.Swap(0)
	for steps := min(allowance, 2*int64(len(ck.ring))); steps > 0 && over() && len(ck.ring) > 0; steps-- {
		if ck.hand >= len(ck.ring) {
			ck.hand = 0
		}
		n := ck.ring[ck.hand]
		drop := false
		switch {
		case isReplaced(n):
			drop = true // already uncounted
		case n.TakeTouched():
			ck.hand++
		default:
			// Nodes evicted below n stay in the ring, replaced, until the
			// hand drops them.
			if evicted, stale := tree.EvictSubtree(n, ok, gone, over); evicted || stale {
				drop = true
				if stale && markReplaced(n) {
					ck.bytes.Add(-n.Size())
					ck.counted.Add(-1)
				}
			} else {
				ck.hand++ // the root, or children still in memory
			}
		}
		if drop {
			last := len(ck.ring) - 1
			ck.ring[ck.hand] = ck.ring[last]
			ck.ring[last] = nil
			ck.ring = ck.ring[:last]
		}
	}
}
