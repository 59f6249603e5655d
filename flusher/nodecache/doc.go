// Package nodecache is the flusher's node cache bookkeeping: which nodes of
// the latest tree version it counts and how many bytes they hold (each
// node's State, kept in the word cowtree.Node reserves for it), the clock
// that evicts counted nodes from the tree when they are over a budget
// (Clock), the bounded map from intentions to their active afterimages
// (Index), and the bounded FIFO the loader keeps read entries in.
//
// cowtree never reads a node's cache state: what the tree does cannot
// depend on the cache. The loader that reads evicted nodes back from the
// log (its entry cache and forward scans) is the flusher's pager, which
// counts what it loads through a Clock.
package nodecache
