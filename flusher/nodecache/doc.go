// Package nodecache is the flusher's node cache: it loads evicted nodes of
// the tree back from the log (Cache, the tree's cowtree.Loader: a read
// through a physical pointer, or through an intention pointer resolved by
// the Index or by a forward scan of the log, with recently read entries
// kept in a bounded FIFO), knows the checkpoint cuts whose images nodes may
// live in (Cuts), and counts the nodes of the latest version in memory and
// evicts them over a budget (Clock). Each node's standing in the cache is
// its State, kept in the word cowtree.Node reserves for it: cowtree never
// reads it, so nothing the tree does depends on the cache.
//
// The flusher writes afterimages and matches them; it tells the cache what
// replay confirmed (Clock.Add), what a delta replaced (Clock.Uncount) and
// which cuts are pending or complete.
package nodecache
