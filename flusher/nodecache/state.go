package nodecache

import (
	"strconv"
	"sync/atomic"

	"github.com/cruzlog/cruzdb/cowtree"
)

// State is a node's standing in the node cache. It is kept in the word each
// cowtree.Node reserves for its cache (Node.CacheWord), which this package
// alone reads and writes: cowtree never looks at it.
type State uint32

const (
	// Uncounted: the cache does not count the node (not yet durable and
	// confirmed).
	Uncounted State = iota
	// Counted: the node is in the latest version, in memory, durable and
	// confirmed, and its Size is in the cache's bytes.
	Counted
	// Replaced: the node is out of the latest version (a delta copied or
	// removed it, or it was evicted); the cache does not count it.
	Replaced
)

func (s State) String() string {
	switch s {
	case Uncounted:
		return "uncounted"
	case Counted:
		return "counted"
	case Replaced:
		return "replaced"
	}
	return "state(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// StateOf returns n's standing in the cache.
func StateOf(n *cowtree.Node) State { return State(atomic.LoadUint32(n.CacheWord())) }

// markCounted records that the cache counts n, unless it already does or n
// has left the latest version (Replaced). It reports whether the cache
// should count it now.
func markCounted(n *cowtree.Node) bool {
	return atomic.CompareAndSwapUint32(n.CacheWord(), uint32(Uncounted), uint32(Counted))
}

// markReplaced records that n is no longer part of the latest version. It
// reports whether the cache was counting it, so the cache can stop; only
// the first call does.
func markReplaced(n *cowtree.Node) bool {
	return atomic.SwapUint32(n.CacheWord(), uint32(Replaced)) == uint32(Counted)
}

// isReplaced reports whether markReplaced was called.
func isReplaced(n *cowtree.Node) bool { return StateOf(n) == Replaced }

// isCounted reports whether the cache counts n (markCounted, and not
// markReplaced since): a node the cache counts is durable and confirmed.
func isCounted(n *cowtree.Node) bool { return StateOf(n) == Counted }

// recount counts a Replaced node again, for a cache that found it in memory
// in the latest version after all: a delta made while an eviction ran can
// keep a node the eviction had just stopped counting (see Tree.Evict). It
// reports whether the cache should count it now; only one call does.
func recount(n *cowtree.Node) bool {
	return atomic.CompareAndSwapUint32(n.CacheWord(), uint32(Replaced), uint32(Counted))
}
