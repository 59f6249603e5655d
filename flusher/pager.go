package flusher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
)

// fifo is a map from log positions to T bounded by the total weight of its
// entries (each weighs 1 unless a weight function says otherwise): the
// oldest entry inserted is dropped first, but the newest always stays, and
// a put over an existing entry is ignored (it neither changes nor
// refreshes it). Safe for concurrent use.
type fifo[T any] struct {
	mu     sync.RWMutex
	m      map[uint64]T
	order  []uint64 // insertion order, for dropping the oldest
	head   int
	weight func(T) int64 // nil: 1 an entry
	total  int64
	limit  int64
}

func newFIFO[T any](limit int) *fifo[T] { return &fifo[T]{m: make(map[uint64]T), limit: int64(limit)} }

func newWeightedFIFO[T any](limit int64, weight func(T) int64) *fifo[T] {
	return &fifo[T]{m: make(map[uint64]T), limit: limit, weight: weight}
}

func (x *fifo[T]) weigh(v T) int64 {
	if x.weight == nil {
		return 1
	}
	return x.weight(v)
}

func (x *fifo[T]) get(pos uint64) (T, bool) {
	x.mu.RLock()
	v, ok := x.m[pos]
	x.mu.RUnlock()
	return v, ok
}

func (x *fifo[T]) put(pos uint64, v T) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.m[pos]; ok {
		return
	}
	x.m[pos] = v
	x.order = append(x.order, pos)
	x.total += x.weigh(v)
	for x.total > x.limit && len(x.order)-x.head > 1 {
		old := x.order[x.head]
		x.total -= x.weigh(x.m[old])
		delete(x.m, old)
		x.head++
	}
	if x.head > len(x.order)/2 && x.head > 1024 {
		x.order = append(x.order[:0], x.order[x.head:]...)
		x.head = 0
	}
}

func (x *fifo[T]) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.m)
}

// index maps intention positions to their active afterimage positions. It is
// a hint: a miss is resolved from the log by a forward scan.
//
// Every child pointer the flusher writes looks an intention up, from many
// workers at once, so the index takes no lock: it is a direct-mapped table
// of 2^k slots (the smallest power of two at or above the limit), an
// intention's slot being its position mod 2^k, so a later intention evicts
// the one sharing its slot and the table keeps about the most recent
// positions. A slot packs the intention's position above the slot bits (its
// tag) and the distance to its afterimage into one word, so one atomic load
// reads a whole entry and can never pair an intention with another's
// afterimage. Entries that do not pack (a distance of 2^32 or more, or a
// position beyond 2^(32+k)) go to a small locked map instead.
type index struct {
	slots []atomic.Uint64
	bits  uint
	used  atomic.Int64 // occupied slots
	far   *fifo[uint64]
	nfar  atomic.Int64 // entries in far: lookups skip its lock while 0
}

const farEntries = 4096

// maxIndexBits caps the table at 2^24 slots (128 MiB).
const maxIndexBits = 24

func newIndex(limit int) *index {
	bits := uint(0)
	for 1<<bits < limit && bits < maxIndexBits {
		bits++
	}
	return &index{slots: make([]atomic.Uint64, 1<<bits), bits: bits, far: newFIFO[uint64](farEntries)}
}

// pack returns the slot and the word for intention in and afterimage ai, or
// false when they do not fit one word.
func (x *index) pack(in, ai uint64) (*atomic.Uint64, uint64, bool) {
	tag, dist := in>>x.bits, ai-in
	if ai <= in || dist >= 1<<32 || tag >= 1<<32 {
		return nil, 0, false
	}
	return &x.slots[in&(1<<x.bits-1)], tag<<32 | dist, true
}

func (x *index) get(in uint64) (uint64, bool) {
	tag := in >> x.bits
	if tag < 1<<32 {
		// A word is never 0 once written (the distance is at least 1).
		if w := x.slots[in&(1<<x.bits-1)].Load(); w != 0 && w>>32 == tag {
			return in + w&(1<<32-1), true
		}
	}
	if x.nfar.Load() == 0 {
		return 0, false
	}
	return x.far.get(in)
}

// put records in's active afterimage. The first one recorded for an
// intention stays (later ones are duplicates, never active).
func (x *index) put(in, ai uint64) {
	slot, w, ok := x.pack(in, ai)
	if !ok {
		if _, known := x.get(in); !known {
			x.far.put(in, ai)
			x.nfar.Store(int64(x.far.len()))
		}
		return
	}
	if x.nfar.Load() > 0 {
		if _, known := x.far.get(in); known {
			return
		}
	}
	for {
		old := slot.Load()
		if old != 0 && old>>32 == w>>32 {
			return
		}
		if slot.CompareAndSwap(old, w) {
			if old == 0 {
				x.used.Add(1)
			}
			return
		}
	}
}

// len returns the number of entries held.
func (x *index) len() int { return int(x.used.Load() + x.nfar.Load()) }

// pager loads evicted nodes back from the log and keeps the clock of clean
// nodes in memory.
type pager struct {
	log         log.Log
	idx         *index
	holeTimeout time.Duration
	cuts        *cuts

	loads singleflight.Group

	aiCache *fifo[*afterimage.NodeIndex] // recently read afterimages, their nodes decoded on demand
	heads   *fifo[*rangedHead]           // what ranged loads learnt of large afterimages
	inCache *fifo[*intention.Intention]  // recently decoded intentions, for values left in them

	clockMu  sync.Mutex
	ring     []*cowtree.Node // counted nodes, and replaced ones not yet swept out
	hand     int
	sweeping bool           // a sweep holds the ring's older part (see sweep)
	sweeps   sync.WaitGroup // the sweep running, if any
	stopped  bool           // no new sweeps once set (under clockMu)
	bytes    atomic.Int64   // Size of the counted nodes
	// addedSince counts the nodes counted since the last evict call: the
	// clock's allowance for the next (see evict).
	addedSince atomic.Int64
	counted    atomic.Int64 // how many nodes are counted

	hits, misses, evictions, scans atomic.Uint64
	ranged                         atomic.Uint64 // nodes read alone (rangedNode)
	recounted                      atomic.Uint64 // replaced nodes found in the latest version (see evict)
}

// aiCacheSize bounds the decoded intentions kept for values left in them.
const aiCacheSize = 64

// aiCacheBytes bounds the recently read afterimage entries the pager keeps
// to load more of their nodes without reading them again. It is memory on
// top of Options.CacheBytes (which counts nodes linked into the tree).
const aiCacheBytes = 64 << 20

// newEntryCache returns the cache of recently read afterimages, as node
// indexes over their entries, bounded by bytes.
func newEntryCache(limit int64) *fifo[*afterimage.NodeIndex] {
	// MaxSize is fixed, so that the total stays exact as offsets fill in.
	return newWeightedFIFO(limit, (*afterimage.NodeIndex).MaxSize)
}

// headsBytes bounds the heads and offsets tables of large afterimages the
// pager keeps, so that a later load of another node of one of them is one
// read of the log instead of three.
const headsBytes = 4 << 20

// rangedHead is what a ranged load needs of a large afterimage before it can
// read a node: the entry's size, its head and, unless the afterimage has
// more than maxCachedTable nodes, its node offsets table.
type rangedHead struct {
	size  int
	head  afterimage.Head
	table []byte // the offsets entries of every node, or nil
}

// maxCachedTable is the most nodes an afterimage may have for the pager to
// read and keep its whole offsets table (8 bytes a node): larger ones
// (cruzd's combined commits make afterimages of ~2,000 nodes) have the
// entries of one node read at each load.
const maxCachedTable = 512

func (r *rangedHead) weight() int64 { return int64(64 + len(r.table)) }

func newPager(l log.Log, idx *index, holeTimeout time.Duration) *pager {
	return &pager{log: l, idx: idx, holeTimeout: holeTimeout, cuts: newCuts(), aiCache: newEntryCache(aiCacheBytes),
		heads: newWeightedFIFO(headsBytes, (*rangedHead).weight), inCache: newFIFO[*intention.Intention](aiCacheSize)}
}

// LoadNode implements cowtree.Loader.
func (p *pager) LoadNode(a cowtree.Addr) (*cowtree.Node, error) {
	if a.Kind == cowtree.AddrIntention {
		if t, ok := p.cuts.pendingTree(a.Pos); ok {
			// Node n of a checkpoint image still being written: found in
			// the cut's tree by its number, through the nodes' own
			// addresses (the log below the cut is not trimmed before the
			// image is complete).
			n, err := t.NodeAt(a.Off)
			if err == nil || !errors.Is(err, log.ErrTrimmed) {
				return n, err
			}
			// Completed and trimmed meanwhile: read the image.
		}
	}
	p.misses.Add(1)
	key := strconv.FormatUint(uint64(a.Kind), 10) + ":" + strconv.FormatUint(a.Pos, 10) + ":" + strconv.FormatUint(uint64(a.Off), 10)
	v, err, _ := p.loads.Do(key, func() (any, error) {
		at, off := a.Pos, a.Off
		if a.Kind == cowtree.AddrIntention {
			var err error
			if at, off, err = p.locate(a.Pos, a.Off); err != nil {
				return nil, err
			}
		}
		own := cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: at, Off: off}
		nodeAt, err := p.node(at, off)
		if err != nil {
			return nil, err
		}
		nd := &nodeAt
		fields, err := nodeFields(at, nd)
		if err != nil {
			return nil, err
		}
		if nd.ValueInIntention {
			v, err := p.valueFromIntention(nd.Pos, nd.Key)
			if err != nil {
				return nil, err
			}
			fields.Value = v
		}
		return cowtree.NewLoaded(own, fields), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*cowtree.Node), nil
}

// LoadNodeAt implements cowtree.RelocLoader: a node of a checkpoint cut's
// tree is read where it was written until the cut's image is complete, and
// from the image after (the log below the cut may then be trimmed, and the
// image is where any node reads it from next).
func (p *pager) LoadNodeAt(a, reloc cowtree.Addr) (*cowtree.Node, error) {
	if _, ok := p.cuts.image(reloc.Pos); ok {
		return p.LoadNode(reloc)
	}
	n, err := p.LoadNode(a)
	if err != nil && errors.Is(err, log.ErrTrimmed) {
		// Trimmed below an older cut while this one's image is written
		// (LoadNode then finds it in the cut's tree), or below this cut,
		// whose marker replay has not met yet (LoadNode finds the image).
		return p.LoadNode(reloc)
	}
	return n, err
}

// Installed implements cowtree.Tracker: a loaded node joins the clock.
func (p *pager) Installed(n *cowtree.Node) { p.add([]*cowtree.Node{n}) }

func (p *pager) add(nodes []*cowtree.Node) {
	var b, c int64
	p.clockMu.Lock()
	for _, n := range nodes {
		if n.MarkCached() {
			b += n.Size()
			c++
			p.ring = append(p.ring, n)
		}
	}
	p.bytes.Add(b)
	p.addedSince.Add(c)
	if counted := p.counted.Add(c); !p.sweeping && !p.stopped && int64(len(p.ring)) > 2*counted+ringSlack {
		p.sweeping = true
		old := p.ring
		p.ring = make([]*cowtree.Node, 0, ringSlack)
		p.hand = 0
		p.sweeps.Add(1)
		go p.sweep(old)
	}
	p.clockMu.Unlock()
}

// ringSlack is how many replaced nodes the ring may hold beyond as many as
// it counts before add sweeps them out.
const ringSlack = 4096

// sweep drops the replaced nodes from old, the ring as it was when add
// found replaced nodes to be half of it, and puts what is left back in front
// of the nodes added meanwhile. The clock drops the replaced nodes it
// passes, but it only turns when the cache is over its budget: with a
// working set under the budget, every node a later delta replaced would stay
// in the ring, and in memory, for good. Sweeping when they are half the ring
// keeps it within twice the counted nodes plus ringSlack, at an amortized
// two looks per node added. The looks (one cache miss each: 27 ms for a ring
// of a million nodes) are taken on a goroutine of their own without clockMu,
// so neither replay, which adds nodes as their afterimages are confirmed,
// nor loads wait for them; while it runs, the clock turns over the newer
// nodes only.
// stop waits for the running sweep and starts no more: add may still be
// called (replay confirms checkpoint images on its own goroutine, which
// outlives the flusher's), and a WaitGroup must not gain work while it is
// waited on.
func (p *pager) stop() {
	p.clockMu.Lock()
	p.stopped = true
	p.clockMu.Unlock()
	p.sweeps.Wait()
}

func (p *pager) sweep(old []*cowtree.Node) {
	defer p.sweeps.Done()
	kept := old[:0]
	for _, n := range old {
		if !n.IsReplaced() {
			kept = append(kept, n)
		}
	}
	clear(old[len(kept):])
	p.clockMu.Lock()
	p.hand += len(kept) // on the same node of the newer part
	p.ring = append(kept, p.ring...)
	p.sweeping = false
	p.clockMu.Unlock()
}

// replaced stops counting nodes that left the latest version.
func (p *pager) replaced(nodes []*cowtree.Node) {
	var b, c int64
	for _, n := range nodes {
		if n.Replaced() {
			b += n.Size()
			c++
		}
	}
	p.bytes.Add(-b)
	p.counted.Add(-c)
}

// evictSteps is the clock's allowance per evict call, on top of
// evictStepsPerNode for each node counted since the last call.
const (
	evictSteps        = 256
	evictStepsPerNode = 4
)

// evict runs the clock until the clean nodes in memory fit in budget,
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
func (p *pager) evict(budget int64, tree cowtree.Tree) {
	if p.bytes.Load() <= budget {
		return
	}
	if !p.clockMu.TryLock() {
		return
	}
	defer p.clockMu.Unlock()
	p.evictLocked(budget, tree)
}

// evictNow is evict that waits for the clock instead of leaving the work
// to the caller holding it.
func (p *pager) evictNow(budget int64, tree cowtree.Tree) {
	if p.bytes.Load() <= budget {
		return
	}
	p.clockMu.Lock()
	defer p.clockMu.Unlock()
	p.evictLocked(budget, tree)
}

func (p *pager) evictLocked(budget int64, tree cowtree.Tree) {
	over := func() bool { return p.bytes.Load() > budget }
	gone := func(m *cowtree.Node) {
		p.evictions.Add(1)
		if m.Replaced() {
			p.bytes.Add(-m.Size())
			p.counted.Add(-1)
		}
	}
	// Below the hand, a node is evicted if counted, or if replaced yet in
	// memory in the latest version (a delta made while an eviction ran kept
	// it): uncounted, such a node would stay in memory for good, and keep
	// every ancestor from being evicted.
	ok := func(m *cowtree.Node) bool {
		if m.IsCounted() {
			return true
		}
		if m.Recount() {
			p.bytes.Add(m.Size())
			p.counted.Add(1)
			p.ring = append(p.ring, m)
			p.recounted.Add(1)
			return true
		}
		return false // not yet durable and confirmed
	}
	allowance := evictSteps + evictStepsPerNode*p.addedSince.Swap(0)
	for steps := min(allowance, 2*int64(len(p.ring))); steps > 0 && over() && len(p.ring) > 0; steps-- {
		if p.hand >= len(p.ring) {
			p.hand = 0
		}
		n := p.ring[p.hand]
		drop := false
		switch {
		case n.IsReplaced():
			drop = true // already uncounted
		case n.Touched():
			p.hand++
		default:
			// Nodes evicted below n stay in the ring, replaced, until the
			// hand drops them.
			if evicted, stale := tree.EvictSubtree(n, ok, gone, over); evicted || stale {
				drop = true
				if stale && n.Replaced() {
					p.bytes.Add(-n.Size())
					p.counted.Add(-1)
				}
			} else {
				p.hand++ // the root, or children still in memory
			}
		}
		if drop {
			last := len(p.ring) - 1
			p.ring[p.hand] = p.ring[last]
			p.ring[last] = nil
			p.ring = p.ring[:last]
		}
	}
}

// node reads node off of the afterimage at pos: from the entry cache; or,
// when the log reads ranges and the entry is larger than rangedMin, from
// just the bytes the node needs (see rangedNode); or else from the whole
// entry, which the cache then keeps.
func (p *pager) node(pos uint64, off uint32) (afterimage.Node, error) {
	if ai, ok := p.aiCache.get(pos); ok {
		p.hits.Add(1)
		return nodeOf(ai, pos, off)
	}
	var ai *afterimage.NodeIndex
	var err error
	if rr, ok := p.log.(log.RangeReader); ok {
		if rh, ok := p.heads.get(pos); ok {
			return p.rangedNodeOf(rr, pos, off, rh, nil)
		}
		var first []byte
		var size int
		if first, size, err = rr.ReadRange(context.Background(), log.Position(pos), 0, rangedMin); err != nil {
			return afterimage.Node{}, fmt.Errorf("flusher: read afterimage at %d: %w", pos, err)
		}
		if len(first) < size {
			nd, rerr := p.rangedNode(rr, pos, off, first, size)
			if !errors.Is(rerr, errWholeEntry) {
				return nd, rerr
			}
			ai, err = p.afterimage(pos) // written without node offsets
		} else {
			ai, err = p.index(pos, first) // the whole entry
		}
	} else {
		ai, err = p.afterimage(pos)
	}
	if err != nil {
		return afterimage.Node{}, err
	}
	return nodeOf(ai, pos, off)
}

func nodeOf(ai *afterimage.NodeIndex, pos uint64, off uint32) (afterimage.Node, error) {
	if int(off) >= ai.Len() {
		return afterimage.Node{}, fmt.Errorf("flusher: node %d of afterimage at %d: only %d nodes: %w", off, pos, ai.Len(), entry.ErrCorrupt)
	}
	nd, err := ai.Node(off)
	if err != nil {
		return afterimage.Node{}, entry.Corrupt(pos, err)
	}
	return nd, nil
}

// rangedMin is the smallest afterimage entry whose nodes are read alone:
// smaller ones are read whole (in the one read that learns their size) and
// cached, as a scan may want more of them. cruzd's combined commits make
// afterimages of ~100 KB, of which a load needs one node of ~60 bytes.
const rangedMin = 16 << 10

// errWholeEntry says to read the entry whole instead.
var errWholeEntry = errors.New("flusher: read the whole entry")

// rangedNode reads node off of the afterimage at pos, an entry of size
// bytes whose first ones are prefix: it reads the head from prefix, then the
// offsets table (an afterimage of up to maxCachedTable nodes) or the node's
// own offsets entries, keeps what it learnt in p.heads, and reads the node.
// It returns errWholeEntry for an afterimage written without node offsets.
func (p *pager) rangedNode(rr log.RangeReader, pos uint64, off uint32, prefix []byte, size int) (afterimage.Node, error) {
	typ, err := entry.PeekType(pos, prefix)
	if err != nil {
		return afterimage.Node{}, err
	}
	if typ == entry.TypeCheckpoint {
		return afterimage.Node{}, errWholeEntry // an image chunk: read whole
	}
	if typ != entry.TypeAfterimage {
		return afterimage.Node{}, fmt.Errorf("flusher: position %d holds %s, not an afterimage: %w", pos, typ, entry.ErrCorrupt)
	}
	h, err := afterimage.ReadHead(prefix[entry.FrameSize:min(len(prefix), entry.FrameSize+afterimage.MaxHeadSize)])
	if err != nil {
		return afterimage.Node{}, entry.Corrupt(pos, err)
	}
	if !h.HasOffsets {
		return afterimage.Node{}, errWholeEntry
	}
	rh := &rangedHead{size: size, head: h}
	if h.Nodes <= maxCachedTable {
		ts, te, err := h.TableRange(size - entry.FrameSize)
		if err != nil {
			return afterimage.Node{}, entry.Corrupt(pos, err)
		}
		table, err := p.readRange(rr, pos, prefix, entry.FrameSize+ts, te-ts)
		if err != nil {
			return afterimage.Node{}, err
		}
		rh.table = bytes.Clone(table) // not a slice of prefix, kept whole with it

	}
	p.heads.put(pos, rh)
	return p.rangedNodeOf(rr, pos, off, rh, prefix)
}

// rangedNodeOf reads node off of the afterimage at pos, which rh describes,
// in one read (two without a table), and checks the node against its own
// checksum (the envelope's covers only the whole entry). prefix, if not
// nil, holds the entry's first bytes.
func (p *pager) rangedNodeOf(rr log.RangeReader, pos uint64, off uint32, rh *rangedHead, prefix []byte) (afterimage.Node, error) {
	payload := rh.size - entry.FrameSize
	es, ee, err := rh.head.EntryRange(payload, off)
	if err != nil {
		return afterimage.Node{}, entry.Corrupt(pos, err)
	}
	var entries []byte
	if rh.table != nil {
		ts, _, _ := rh.head.TableRange(payload) // checked by EntryRange
		entries = rh.table[es-ts : ee-ts]
	} else if entries, err = p.readRange(rr, pos, prefix, entry.FrameSize+es, ee-es); err != nil {
		return afterimage.Node{}, err
	}
	start, end, sum, err := rh.head.NodeSpan(entries, payload, off)
	if err != nil {
		return afterimage.Node{}, entry.Corrupt(pos, err)
	}
	b, err := p.readRange(rr, pos, prefix, entry.FrameSize+start, end-start)
	if err != nil {
		return afterimage.Node{}, err
	}
	nd, err := afterimage.DecodeNodeBytes(b, off, sum)
	if err != nil {
		return afterimage.Node{}, entry.Corrupt(pos, err)
	}
	p.ranged.Add(1)
	return nd, nil
}

// readRange returns n bytes of the entry at pos from byte from: from
// prefix, the entry's first bytes, if it holds them, else from the log.
func (p *pager) readRange(rr log.RangeReader, pos uint64, prefix []byte, from, n int) ([]byte, error) {
	if from+n <= len(prefix) {
		return prefix[from : from+n], nil
	}
	b, _, err := rr.ReadRange(context.Background(), log.Position(pos), from, n)
	if err != nil {
		return nil, fmt.Errorf("flusher: read afterimage at %d: %w", pos, err)
	}
	if len(b) != n {
		return nil, fmt.Errorf("flusher: read afterimage at %d: %d bytes at %d, want %d: %w", pos, len(b), from, n, entry.ErrCorrupt)
	}
	return b, nil
}

// afterimage returns the afterimage at pos, as an index that decodes its
// nodes one at a time.
func (p *pager) afterimage(pos uint64) (*afterimage.NodeIndex, error) {
	if ai, ok := p.aiCache.get(pos); ok {
		p.hits.Add(1)
		return ai, nil
	}
	data, err := p.log.Read(context.Background(), log.Position(pos))
	if err != nil {
		return nil, fmt.Errorf("flusher: read afterimage at %d: %w", pos, err)
	}
	return p.index(pos, data)
}

// index checks and indexes data, the whole afterimage entry at pos, and
// caches it.
func (p *pager) index(pos uint64, data []byte) (*afterimage.NodeIndex, error) {
	typ, payload, err := entry.Decode(pos, data)
	if err != nil {
		return nil, err
	}
	if typ == entry.TypeCheckpoint {
		if _, payload, err = entry.DecodeChunk(payload); err != nil {
			return nil, entry.Corrupt(pos, err)
		}
	} else if typ != entry.TypeAfterimage {
		return nil, fmt.Errorf("flusher: position %d holds %s, not an afterimage: %w", pos, typ, entry.ErrCorrupt)
	}
	ai, err := afterimage.NewNodeIndex(payload)
	if err != nil {
		return nil, entry.Corrupt(pos, err)
	}
	p.aiCache.put(pos, ai)
	return ai, nil
}

// valueFromIntention returns the value of the last put of key in the
// intention at pos.
func (p *pager) valueFromIntention(pos uint64, key []byte) ([]byte, error) {
	in, ok := p.inCache.get(pos)
	if !ok {
		data, err := p.log.Read(context.Background(), log.Position(pos))
		if errors.Is(err, log.ErrTrimmed) {
			return p.valueFromImage(pos, key, fmt.Errorf("flusher: read value of %q in intention %d: %w", key, pos, err))
		}
		if err != nil {
			return nil, fmt.Errorf("flusher: read value of %q in intention %d: %w", key, pos, err)
		}
		if in, err = entry.DecodeIntentionEntry(pos, data); err != nil {
			return nil, err
		}
		p.inCache.put(pos, in)
	}
	var v []byte
	found := false
	for _, op := range in.Ops {
		if op.Kind == intention.OpPut && bytes.Equal(op.Key, key) {
			v, found = op.Value, true
		}
	}
	if !found {
		return nil, fmt.Errorf("flusher: intention %d has no put of %q for a node that says it does: %w", pos, key, entry.ErrCorrupt)
	}
	return v, nil
}

// resolveIntention returns the position of the active afterimage of the
// intention at in: from the index, or by scanning the log forward from the
// intention (filling holes that stay empty past the hole timeout, since a
// hole could still receive an earlier afterimage).
func (p *pager) resolveIntention(in uint64) (uint64, error) {
	pos, _, err := p.resolve(in)
	return pos, err
}

// resolve is resolveIntention that also returns the marker found when in is
// a checkpoint's cut (pos is then the marker's position): the caller must
// not take it for an afterimage, whatever the cache of images says by then.
func (p *pager) resolve(in uint64) (uint64, *entry.Marker, error) {
	if a, ok := p.idx.get(in); ok {
		return a, nil, nil
	}
	p.scans.Add(1)
	ctx := context.Background()
	var holeSince, tailSince time.Time
	for pos := in + 1; ; {
		data, err := p.log.Read(ctx, log.Position(pos))
		switch {
		case err == nil:
			holeSince = time.Time{}
			typ, payload, err := entry.Decode(pos, data)
			if err != nil {
				return 0, nil, err
			}
			if typ == entry.TypeCheckpoint {
				if k, _ := entry.CheckpointKind(payload); k == entry.CheckpointMarker {
					m, err := entry.DecodeMarker(payload)
					if err != nil {
						return 0, nil, entry.Corrupt(pos, err)
					}
					if m.Cut == in {
						p.cuts.setComplete(pos, m)
						return pos, m, nil
					}
				}
			}
			if typ == entry.TypeAfterimage {
				ai, err := afterimage.DecodeNoCopy(payload)
				if err != nil {
					return 0, nil, entry.Corrupt(pos, err)
				}
				if ai.Intention == in {
					p.idx.put(in, pos)
					return pos, nil, nil
				}
			}
			pos++
		case errors.Is(err, log.ErrFilled):
			holeSince = time.Time{}
			pos++
		case errors.Is(err, log.ErrNotWritten):
			tail, terr := p.log.Tail(ctx)
			if terr != nil {
				return 0, nil, fmt.Errorf("flusher: resolve intention %d: %w", in, terr)
			}
			if uint64(tail) <= pos {
				// At the tail: not a hole (yet); the afterimage is still to
				// come. Re-read, and time the hole only once it is one.
				holeSince = time.Time{}
				if tailSince.IsZero() {
					tailSince = time.Now()
				}
				if time.Since(tailSince) >= 10*p.holeTimeout+10*time.Second {
					return 0, nil, fmt.Errorf("flusher: no afterimage for intention %d up to the tail %d", in, tail)
				}
				time.Sleep(time.Millisecond)
				continue
			}
			tailSince = time.Time{}
			if holeSince.IsZero() {
				holeSince = time.Now()
			}
			if time.Since(holeSince) >= p.holeTimeout {
				if ferr := p.log.Fill(ctx, log.Position(pos)); ferr != nil && !errors.Is(ferr, log.ErrWritten) {
					return 0, nil, fmt.Errorf("flusher: resolve intention %d: fill %d: %w", in, pos, ferr)
				}
				continue
			}
			time.Sleep(time.Millisecond)
		default:
			return 0, nil, fmt.Errorf("flusher: resolve intention %d: read %d: %w", in, pos, err)
		}
	}
}
