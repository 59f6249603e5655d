package nodecache

import (
	"sync"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/internal/entry"
)

// Cuts is what the cache knows of checkpoint cuts: those whose image is
// being written (pending) and those whose marker replay or a scan has seen.
type Cuts struct {
	mu       sync.RWMutex
	pending  map[uint64]cowtree.Tree // the cuts' trees, by cut
	complete map[uint64]cutImage
	newest   uint64 // the newest complete cut
}

type cutImage struct {
	marker uint64 // the marker's position
	m      *entry.Marker
}

func newCuts() *Cuts {
	return &Cuts{pending: map[uint64]cowtree.Tree{}, complete: map[uint64]cutImage{}}
}

// SetPending records a cut's tree until its image is complete: a node read
// back from a later afterimage may point at node n of the image, (cut, n),
// and finds it in the tree by its number (cowtree.Tree.NodeAt).
func (c *Cuts) SetPending(cut uint64, tree cowtree.Tree) {
	c.mu.Lock()
	if _, done := c.complete[cut]; !done {
		c.pending[cut] = tree
	}
	c.mu.Unlock()
}

// pendingTree returns the tree of a cut whose image is not complete.
func (c *Cuts) pendingTree(cut uint64) (cowtree.Tree, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.pending[cut]
	return t, ok
}

// SetComplete records the image of cut at marker pos, unless one is known.
func (c *Cuts) SetComplete(pos uint64, m *entry.Marker) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, m.Cut)
	if _, ok := c.complete[m.Cut]; ok {
		return
	}
	c.complete[m.Cut] = cutImage{marker: pos, m: m}
	c.newest = max(c.newest, m.Cut)
	// Keep the newest few: an older image is read only by a snapshot taken
	// before a newer cut, and once the log is trimmed past it, its chunks
	// are gone anyway (the load then fails with log.ErrTrimmed).
	// The image just recorded stays even when it is the oldest: a reader
	// that found its marker again by a forward scan is about to use it.
	for len(c.complete) > keptImages {
		oldest := c.newest
		for k := range c.complete {
			if k != m.Cut {
				oldest = min(oldest, k)
			}
		}
		delete(c.complete, oldest)
	}
}

// keptImages is how many complete images the cache remembers.
const keptImages = 16

func (c *Cuts) isCut(pos uint64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, done := c.complete[pos]
	_, pending := c.pending[pos]
	return done || pending
}

func (c *Cuts) image(cut uint64) (cutImage, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ci, ok := c.complete[cut]
	return ci, ok
}

func (c *Cuts) newestImage() (uint64, cutImage, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ci, ok := c.complete[c.newest]
	return c.newest, ci, ok
}

func (c *Cuts) DropPendingBelow(pos uint64) {
	c.mu.Lock()
	for cut := range c.pending {
		if cut < pos {
			delete(c.pending, cut)
		}
	}
	c.mu.Unlock()
}

// dropPending forgets a cut whose image will not be written here.
func (c *Cuts) DropPending(cut uint64) {
	c.mu.Lock()
	delete(c.pending, cut)
	c.mu.Unlock()
}
