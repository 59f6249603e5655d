// Package cowtree is cruzdb's persistent (copy-on-write) balanced search
// tree: every committed intention makes a new version by copying the nodes on
// the paths it changes, and every older version stays readable, unchanged,
// for as long as someone holds it.
//
// # Why AVL
//
// The cost of a write is one node copy per level, so the tree's depth is the
// processor's cost per write. CruzDB uses a red-black tree; cruzdb uses AVL,
// whose height bound is 1.44 log2 n against red-black's 2 log2 n, and whose
// insert and delete, written as functions over an owned copy, are short.
// Measured here (BenchmarkDepth, 1M random 16-byte keys): average depth
// 19.8, maximum 28, against log2(1M) = 20 for a perfect tree. A treap with
// hash priorities (shape independent of history, which is tempting for
// determinism) would average 2 ln n = 27.7 levels, 40% more copies.
// Balancing reads only the nodes on the path: every child pointer carries
// its child's height and subtree summaries, so no sibling is touched.
//
// # Deltas
//
// A Delta applies one intention: Put and Delete copy a path at most once per
// delta (a node the delta made is modified in place), Finish numbers the
// delta's new nodes in post-order — the afterimage order, root last — and
// gives each its intention address (delta position, offset). Every entry
// carries the position that last wrote it; every node the highest position
// in its subtree (MaxPos) and its lowest tombstone (MinTomb). Deletes leave
// tombstones, so conflict checks see them; DropTombstones removes those
// older than a position, deterministically. An intention's writes come in
// key order, so a write whose key is above the last one starts at the
// deepest node of the last write's path that holds it instead of at the
// root; the nodes it skips would have been left as they are, and it makes
// the same nodes as a write from the root.
//
// # Children and paging
//
// A child pointer holds the child's log address and, when it is in memory,
// the child itself. A missing child is loaded through the tree's Loader and
// linked in atomically; Tree.Evict unlinks a clean leaf-side node again. The
// package does no I/O of its own, reads no clock and no random numbers:
// the same operations on the same tree give the same nodes.
//
// # Concurrency
//
// A published version (the Tree a Delta's Finish returns) is immutable apart
// from those atomic child links; any number of goroutines may read it. A
// Delta belongs to one goroutine, and Evict runs on that goroutine too.
package cowtree
