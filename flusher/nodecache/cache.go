package nodecache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
)

// Cache loads evicted nodes back from the log (it is the tree's
// cowtree.Loader) and counts the nodes in memory on its Clock.
type Cache struct {
	log         log.Log
	idx         *Index
	holeTimeout time.Duration
	cuts        *Cuts

	loads singleflight.Group

	aiCache *FIFO[*afterimage.NodeIndex] // recently read afterimages, their nodes decoded on demand
	heads   *FIFO[*rangedHead]           // what ranged loads learnt of large afterimages
	inCache *FIFO[*intention.Intention]  // recently decoded intentions, for values left in them

	clock *Clock // the counted nodes and their eviction

	hits, misses, scans atomic.Uint64
	ranged              atomic.Uint64 // nodes read alone (rangedNode)
}

// aiCacheSize bounds the decoded intentions kept for values left in them.
const aiCacheSize = 64

// aiCacheBytes bounds the recently read afterimage entries the cache keeps
// to load more of their nodes without reading them again. It is memory on
// top of Options.CacheBytes (which counts nodes linked into the tree).
const aiCacheBytes = 64 << 20

// newEntryCache returns the cache of recently read afterimages, as node
// indexes over their entries, bounded by bytes.
func newEntryCache(limit int64) *FIFO[*afterimage.NodeIndex] {
	// MaxSize is fixed, so that the total stays exact as offsets fill in.
	return NewWeightedFIFO(limit, (*afterimage.NodeIndex).MaxSize)
}

// headsBytes bounds the heads and offsets tables of large afterimages the
// cache keeps, so that a later load of another node of one of them is one
// read of the log instead of three.
const headsBytes = 4 << 20

// rangedHead is what a ranged load needs of a large afterimage before it can
// read a node: the entry's size, its head and, unless the afterimage has
// more than MaxCachedTable nodes, its node offsets table.
type rangedHead struct {
	size  int
	head  afterimage.Head
	table []byte // the offsets entries of every node, or nil
}

// MaxCachedTable is the most nodes an afterimage may have for the cache to
// read and keep its whole offsets table (8 bytes a node): larger ones
// (cruzd's combined commits make afterimages of ~2,000 nodes) have the
// entries of one node read at each load.
const MaxCachedTable = 512

func (r *rangedHead) weight() int64 { return int64(64 + len(r.table)) }

// NewCache returns a cache reading l, resolving intentions through idx, and
// filling holes that stay empty for holeTimeout during forward scans.
func NewCache(l log.Log, idx *Index, holeTimeout time.Duration) *Cache {
	return &Cache{log: l, idx: idx, holeTimeout: holeTimeout, cuts: newCuts(), aiCache: newEntryCache(aiCacheBytes),
		heads: NewWeightedFIFO(headsBytes, (*rangedHead).weight), inCache: NewFIFO[*intention.Intention](aiCacheSize),
		clock: NewClock()}
}

// LoadNode implements cowtree.Loader.
func (p *Cache) LoadNode(a cowtree.Addr) (*cowtree.Node, error) {
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
		switch {
		case nd.ValueInIntention:
			v, err := p.valueFromIntention(nd.Pos, nd.Key)
			if err != nil {
				return nil, err
			}
			fields.Value = v
		case nd.ValueCut != 0 && nd.ValueNum < math.MaxUint32:
			fields.ImageValue = nd.ValueNum + 1
			if nd.Value == nil {
				v, err := p.valueInImage(nd.ValueCut, nd.ValueNum, nd.Key, nd.Pos)
				if err != nil {
					return nil, err
				}
				fields.Value = v
			}
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
func (p *Cache) LoadNodeAt(a, reloc cowtree.Addr) (*cowtree.Node, error) {
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
func (p *Cache) Installed(n *cowtree.Node) { p.clock.Add([]*cowtree.Node{n}) }

// node reads node off of the afterimage at pos: from the entry cache; or,
// when the log reads ranges and the entry is larger than RangedMin, from
// just the bytes the node needs (see rangedNode); or else from the whole
// entry, which the cache then keeps.
func (p *Cache) node(pos uint64, off uint32) (afterimage.Node, error) {
	if ai, ok := p.aiCache.Get(pos); ok {
		p.hits.Add(1)
		return nodeOf(ai, pos, off)
	}
	var ai *afterimage.NodeIndex
	var err error
	if rr, ok := p.log.(log.RangeReader); ok {
		if rh, ok := p.heads.Get(pos); ok {
			return p.rangedNodeOf(rr, pos, off, rh, nil)
		}
		var first []byte
		var size int
		if first, size, err = rr.ReadRange(context.Background(), log.Position(pos), 0, RangedMin); err != nil {
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

// RangedMin is the smallest afterimage entry whose nodes are read alone:
// smaller ones are read whole (in the one read that learns their size) and
// cached, as a scan may want more of them. cruzd's combined commits make
// afterimages of ~100 KB, of which a load needs one node of ~60 bytes.
const RangedMin = 16 << 10

// errWholeEntry says to read the entry whole instead.
var errWholeEntry = errors.New("flusher: read the whole entry")

// rangedNode reads node off of the afterimage at pos, an entry of size
// bytes whose first ones are prefix: it reads the head from prefix, then the
// offsets table (an afterimage of up to MaxCachedTable nodes) or the node's
// own offsets entries, keeps what it learnt in p.heads, and reads the node.
// It returns errWholeEntry for an afterimage written without node offsets.
func (p *Cache) rangedNode(rr log.RangeReader, pos uint64, off uint32, prefix []byte, size int) (afterimage.Node, error) {
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
	if h.Nodes <= MaxCachedTable {
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
	p.heads.Put(pos, rh)
	return p.rangedNodeOf(rr, pos, off, rh, prefix)
}

// rangedNodeOf reads node off of the afterimage at pos, which rh describes,
// in one read (two without a table), and checks the node against its own
// checksum (the envelope's covers only the whole entry). prefix, if not
// nil, holds the entry's first bytes.
func (p *Cache) rangedNodeOf(rr log.RangeReader, pos uint64, off uint32, rh *rangedHead, prefix []byte) (afterimage.Node, error) {
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
func (p *Cache) readRange(rr log.RangeReader, pos uint64, prefix []byte, from, n int) ([]byte, error) {
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
func (p *Cache) afterimage(pos uint64) (*afterimage.NodeIndex, error) {
	if ai, ok := p.aiCache.Get(pos); ok {
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
func (p *Cache) index(pos uint64, data []byte) (*afterimage.NodeIndex, error) {
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
	p.aiCache.Put(pos, ai)
	return ai, nil
}

// valueInImage returns the value of key, written at pos, from node num of
// the image of the cut at cut, where the node's afterimage says it is: read
// like any node of the image (from the cut's tree while the image is being
// written, from the image once it is complete).
func (p *Cache) valueInImage(cut uint64, num uint32, key []byte, pos uint64) ([]byte, error) {
	n, err := p.LoadNode(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: cut, Off: num})
	if err != nil {
		return nil, fmt.Errorf("flusher: value of %q from node %d of the image of %d: %w", key, num, cut, err)
	}
	if n.Tombstone() || n.Pos() != pos || !bytes.Equal(n.Key(), key) {
		return nil, fmt.Errorf("flusher: node %d of the image of %d is %q written at %d, not the value of %q written at %d: %w",
			num, cut, n.Key(), n.Pos(), key, pos, entry.ErrCorrupt)
	}
	return n.Value(), nil
}

// valueFromIntention returns the value of the last put of key in the
// intention at pos.
func (p *Cache) valueFromIntention(pos uint64, key []byte) ([]byte, error) {
	in, ok := p.inCache.Get(pos)
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
		p.inCache.Put(pos, in)
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
func (p *Cache) resolveIntention(in uint64) (uint64, error) {
	pos, _, err := p.resolve(in)
	return pos, err
}

// resolve is resolveIntention that also returns the marker found when in is
// a checkpoint's cut (pos is then the marker's position): the caller must
// not take it for an afterimage, whatever the cache of images says by then.
func (p *Cache) resolve(in uint64) (uint64, *entry.Marker, error) {
	if a, ok := p.idx.Get(in); ok {
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
						p.cuts.SetComplete(pos, m)
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
					p.idx.Put(in, pos)
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

// locate returns where node off of the active afterimage (or image) of the
// intention (or cut) at in lives: the entry's position and the node's
// offset in it.
func (p *Cache) locate(in uint64, off uint32) (uint64, uint32, error) {
	if ci, ok := p.cuts.image(in); ok {
		return ci.m.Locate(uint64(off))
	}
	at, m, err := p.resolve(in)
	if err != nil {
		return 0, 0, err
	}
	if m != nil { // the scan found a marker
		return m.Locate(uint64(off))
	}
	if p.cuts.isCut(in) {
		return 0, 0, fmt.Errorf("flusher: node %d of the image of cut %d: image not known", off, in)
	}
	return at, off, nil
}

// valueFromImage finds the value of key written at pos, whose intention was
// trimmed, in the newest checkpoint image: an entry last written at pos and
// still live after the cut is in the image with that value. Anything else
// is an error wrapping cause (log.ErrTrimmed): the reader's snapshot is
// older than the trim, and its data are gone.
func (p *Cache) valueFromImage(pos uint64, key []byte, cause error) ([]byte, error) {
	cut, ci, ok := p.cuts.newestImage()
	if !ok {
		if cut, ok = p.cutAtTrim(pos); ok {
			ci, ok = p.cuts.image(cut)
		}
	}
	if !ok || cut <= pos || ci.m.Nodes == 0 {
		return nil, cause
	}
	t := cowtree.FromRoot(cowtree.Addr{Kind: cowtree.AddrIntention, Pos: cut, Off: uint32(ci.m.Nodes - 1)}, p)
	n, err := t.Lookup(key)
	if err != nil {
		return nil, fmt.Errorf("flusher: value of %q from the image of %d: %w", key, cut, err)
	}
	if n == nil || n.Tombstone() || n.Pos() != pos {
		return nil, cause
	}
	return bytes.Clone(n.Value()), nil
}

// cutAtTrim finds the log's trim point above pos (the lowest position that
// is not trimmed: the log is only ever trimmed at a cut whose image is
// complete) and learns that cut's image from the log.
func (p *Cache) cutAtTrim(pos uint64) (uint64, bool) {
	ctx := context.Background()
	tail, err := p.log.Tail(ctx)
	if err != nil {
		return 0, false
	}
	lo, hi := pos, uint64(tail)
	for lo < hi {
		mid := lo + (hi-lo)/2
		_, err := p.log.Read(ctx, log.Position(mid))
		if errors.Is(err, log.ErrTrimmed) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	data, err := p.log.Read(ctx, log.Position(lo))
	if err != nil {
		return 0, false
	}
	typ, payload, err := entry.Decode(lo, data)
	if err != nil || typ != entry.TypeCheckpoint {
		return 0, false
	}
	if k, err := entry.CheckpointKind(payload); err != nil || k != entry.CheckpointCut {
		return 0, false
	}
	if _, err := p.resolveIntention(lo); err != nil {
		return 0, false
	}
	_, ok := p.cuts.image(lo)
	return lo, ok
}

// Physical is the parallel mode's pointer choice: known afterimages only.
func (p *Cache) Physical(in uint64) (uint64, bool) { return p.idx.Get(in) }

// MustPhysical is serial mode's: every earlier delta is confirmed, so its
// afterimage is in the index or found by a forward scan.
func (p *Cache) MustPhysical(in uint64) (uint64, bool) {
	if p.cuts.isCut(in) {
		return 0, false // an image node: (cut, n) is its only address
	}
	a, m, err := p.resolve(in)
	if err != nil || m != nil || p.cuts.isCut(in) {
		return 0, false
	}
	return a, true
}

// nodeFields converts a stored node of the afterimage at pos into the fields
// cowtree needs, turning pointers into addresses. A node whose subtree sizes
// disagree with its pointers is refused: the sizes number a checkpoint's
// image, and a wrong one would misplace every node after it.
func nodeFields(pos uint64, nd *afterimage.Node) (cowtree.NodeFields, error) {
	if (nd.Left.Kind == afterimage.PtrNil) != (nd.LeftCount == 0) || (nd.Right.Kind == afterimage.PtrNil) != (nd.RightCount == 0) {
		return cowtree.NodeFields{}, fmt.Errorf("%w: node at %d: subtree sizes %d/%d disagree with its pointers %v/%v",
			afterimage.ErrMalformed, pos, nd.LeftCount, nd.RightCount, nd.Left, nd.Right)
	}
	addr := func(p afterimage.Ptr) cowtree.Addr {
		switch p.Kind {
		case afterimage.PtrSelf:
			return cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: pos, Off: p.Off}
		case afterimage.PtrAfterimage:
			return cowtree.Addr{Kind: cowtree.AddrAfterimage, Pos: p.Pos, Off: p.Off}
		case afterimage.PtrIntention:
			return cowtree.Addr{Kind: cowtree.AddrIntention, Pos: p.Pos, Off: p.Off}
		}
		return cowtree.Addr{}
	}
	return cowtree.NodeFields{
		Key:        nd.Key,
		Value:      nd.Value,
		Pos:        nd.Pos,
		Tombstone:  nd.Tombstone,
		MaxPos:     nd.MaxPos,
		MinTomb:    nd.MinTomb,
		Height:     int(nd.Height),
		Left:       addr(nd.Left),
		Right:      addr(nd.Right),
		LeftCount:  nd.LeftCount,
		RightCount: nd.RightCount,
	}, nil
}

// Cuts is what the cache knows of checkpoint cuts.
func (p *Cache) Cuts() *Cuts { return p.cuts }

// Clock counts the nodes in memory and evicts them.
func (p *Cache) Clock() *Clock { return p.clock }

// Hits is how many node loads found their afterimage in the entry cache.
func (p *Cache) Hits() uint64 { return p.hits.Load() }

// Misses is how many node loads there were (the tree did not have the node
// in memory).
func (p *Cache) Misses() uint64 { return p.misses.Load() }

// Scans is how many forward scans resolved an intention the index did not
// know.
func (p *Cache) Scans() uint64 { return p.scans.Load() }

// Ranged is how many nodes were read alone, by range, from a large entry.
func (p *Cache) Ranged() uint64 { return p.ranged.Load() }

// Index is the index the cache resolves intentions through.
func (p *Cache) Index() *Index { return p.idx }

// EntryCache is the cache of recently read afterimage entries.
func (p *Cache) EntryCache() *FIFO[*afterimage.NodeIndex] { return p.aiCache }

// SetEntryCacheBytes replaces the entry cache with an empty one bounded by
// limit bytes (for tests and benchmarks; not concurrently with loads).
func (p *Cache) SetEntryCacheBytes(limit int64) { p.aiCache = newEntryCache(limit) }

// SetIndex replaces the index (for benchmarks; not concurrently with
// loads).
func (p *Cache) SetIndex(idx *Index) { p.idx = idx }

// KnowsHead reports whether the cache keeps what ranged loads learnt of the
// large afterimage at pos, and whether that includes its offsets table.
func (p *Cache) KnowsHead(pos uint64) (known, table bool) {
	rh, ok := p.heads.Get(pos)
	return ok, ok && rh.table != nil
}
