package flusher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/processor"
)

// Checkpoint images.
//
// The delta of a checkpoint cut at c (processor.State.Cut) is the whole tree,
// relocated: node n of it has the address (c, n). Its "afterimage" is the
// image, written like any other delta's, by the same workers and under the
// same policy, but as a run of chunk entries (the nodes in post-order, cut
// at about chunkTarget bytes, every value stored inline, since the
// intentions that hold values may be trimmed) followed by a marker naming
// the chunks. This is the checkpoint's preparation: it overlaps commits,
// reads and other afterimages, and a crash in the middle leaves chunks that
// no marker names, which nothing ever reads. The marker is the authority:
// the first marker for c that replay meets after c confirms the delta, as
// the first afterimage of an intention does; later ones are duplicates. A
// writer that sees the cut confirmed by another node's marker before it is
// done abandons its own chunks (CheckpointsAborted).
//
// The chunks are the same bytes whichever node writes them; only the
// markers differ (they name the positions the chunks landed at).

// chunkTarget is the size at which a chunk entry is closed.
const chunkTarget = 1 << 20

// cuts is what the pager knows of checkpoint cuts: those whose image is
// being written (pending) and those whose marker replay or a scan has seen.
type cuts struct {
	mu       sync.RWMutex
	pending  map[uint64][]*cowtree.Node // the relocated trees, by cut
	complete map[uint64]cutImage
	newest   uint64 // the newest complete cut
}

type cutImage struct {
	marker uint64 // the marker's position
	m      *entry.Marker
}

func newCuts() *cuts {
	return &cuts{pending: map[uint64][]*cowtree.Node{}, complete: map[uint64]cutImage{}}
}

// setPending records the nodes of a cut's relocated tree, node n being the
// one at (cut, n), until the image is complete: a node read back from a
// later afterimage may point at one of them, and gets the node itself.
func (c *cuts) setPending(cut uint64, nodes []*cowtree.Node) {
	c.mu.Lock()
	if _, done := c.complete[cut]; !done {
		c.pending[cut] = nodes
	}
	c.mu.Unlock()
}

// pendingNode returns node n of a cut whose image is being written.
func (c *cuts) pendingNode(cut uint64, n uint32) (*cowtree.Node, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	nodes, ok := c.pending[cut]
	if !ok || int(n) >= len(nodes) {
		return nil, false
	}
	return nodes[n], true
}

// setComplete records the image of cut at marker pos, unless one is known.
func (c *cuts) setComplete(pos uint64, m *entry.Marker) {
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

// keptImages is how many complete images the pager remembers.
const keptImages = 16

func (c *cuts) isCut(pos uint64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, done := c.complete[pos]
	_, pending := c.pending[pos]
	return done || pending
}

func (c *cuts) image(cut uint64) (cutImage, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ci, ok := c.complete[cut]
	return ci, ok
}

func (c *cuts) newestImage() (uint64, cutImage, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ci, ok := c.complete[c.newest]
	return c.newest, ci, ok
}

// KnownCheckpoint seeds the pager with a complete image found by startup.
func (f *Flusher) KnownCheckpoint(markerPos uint64, m *entry.Marker) {
	f.pager.cuts.setComplete(markerPos, m)
}

// SawCheckpoint reports a checkpoint marker at pos, in log order, and
// reports whether it confirmed its cut's delta here (the first complete
// marker for a cut this node holds pending). Processor goroutine only.
func (f *Flusher) SawCheckpoint(pos uint64, m *entry.Marker) bool {
	f.mu.Lock()
	p, ok := f.pend[m.Cut]
	if ok && (!p.d.Checkpoint || uint64(len(p.d.Nodes)) != m.Nodes) {
		f.mu.Unlock()
		f.o.Logger.Error("checkpoint marker does not match its cut; ignored", "marker", pos, "cut", m.Cut, "nodes", m.Nodes)
		return false
	}
	// The image is registered before the delta's nodes may be evicted.
	f.pager.cuts.setComplete(pos, m)
	if !ok || m.Cut <= f.start {
		f.mu.Unlock()
		f.dups.Add(1)
		return false
	}
	delete(f.pend, m.Cut)
	f.ckPinned -= p.d.Bytes
	f.ckPending--
	close(f.room)
	f.room = make(chan struct{})
	f.mu.Unlock()
	f.confirmed.Add(1)
	f.latency.Add(int64(time.Since(p.since)))
	// The image is the whole tree: it joins the cache a batch at a time,
	// trimmed to the budget after each, so the cache never holds much more
	// than its budget.
	for nodes := p.d.Nodes; len(nodes) > 0; {
		b := nodes[:min(len(nodes), 256)]
		nodes = nodes[len(b):]
		f.pager.add(b)
		if f.o.Latest == nil {
			continue
		}
		tree, ok := f.o.Latest()
		for ok && f.pager.bytes.Load() > f.o.CacheBytes {
			before := f.pager.bytes.Load()
			f.pager.evictNow(f.o.CacheBytes, tree)
			ok = f.pager.bytes.Load() < before // stop when the clock cannot free more
		}
	}
	return true
}

// writeCheckpoint writes the image of p, a cut's delta: its chunks, then
// its marker. It reports false when the flusher stopped.
func (f *Flusher) writeCheckpoint(p *pending) bool {
	d := p.d
	started := time.Now()
	m := &entry.Marker{Cut: d.Pos, Nodes: uint64(len(d.Nodes))}
	var buf []byte
	for first := 0; first < len(d.Nodes); {
		if done, _ := f.isConfirmed(d.Pos); done {
			f.ckAborted.Add(1) // another node's image won
			return true
		}
		var next int
		buf, next = AppendChunk(buf[:0], d, first)
		pos, ok := f.appendCheckpointEntry(buf, d.Pos)
		if !ok {
			return false
		}
		m.Chunks = append(m.Chunks, entry.ChunkRef{Pos: uint64(pos), First: uint64(first)})
		m.Bytes += uint64(len(buf))
		f.ckChunks.Add(1)
		first = next
	}
	if done, _ := f.isConfirmed(d.Pos); done {
		f.ckAborted.Add(1)
		return true
	}
	if f.o.Prepared != nil {
		f.o.Prepared(d.Pos, time.Since(started), m.Bytes)
	}
	data := entry.AppendMarker(nil, m)
	if _, ok := f.appendCheckpointEntry(data, d.Pos); !ok {
		return false
	}
	f.ckWritten.Add(1)
	f.ckBytes.Add(m.Bytes + uint64(len(data)))
	if f.o.Appended != nil {
		f.o.Appended()
	}
	return true
}

// appendCheckpointEntry appends a chunk or marker of cut, retrying failures
// until the flusher stops (ok false).
func (f *Flusher) appendCheckpointEntry(data []byte, cut uint64) (log.Position, bool) {
	backoff := time.Millisecond
	for {
		pos, err := f.o.Log.Append(f.ctx, data)
		if err == nil {
			f.appendErr.Store(nil)
			return pos, true
		}
		f.appendErr.Store(&err)
		f.appendErrs.Add(1)
		if errors.Is(err, log.ErrClosed) || errors.Is(err, log.ErrTooLarge) {
			f.o.Logger.Error("checkpoint append failed", "cut", cut, "err", err)
			return 0, false
		}
		f.o.Logger.Warn("checkpoint append failed; retrying", "cut", cut, "err", err)
		select {
		case <-time.After(backoff):
		case <-f.stopCh:
			return 0, false
		}
		backoff = min(2*backoff, time.Second)
	}
}

// AppendChunk appends to dst the complete chunk entry of the cut delta d
// that starts with node first, and returns it and the number of the first
// node of the next chunk (len(d.Nodes) after the last). The bytes depend
// only on the delta: every node writes the same chunks.
func AppendChunk(dst []byte, d *processor.Delta, first int) ([]byte, int) {
	end, size := first, 0
	for end < len(d.Nodes) {
		n := d.Nodes[end]
		sz := afterimage.MaxNodeOverhead + len(n.Key()) + len(n.Value())
		if end > first && size+sz > chunkTarget {
			break
		}
		size += sz
		end++
	}
	count := end - first
	dst, start := entry.Begin(dst, 2*10+afterimage.MaxHeaderSize+afterimage.OffsetsSize(count)+size)
	dst = entry.BeginChunk(dst, uint64(first))
	payload := len(dst)
	dst = afterimage.AppendHeader(dst, d.Pos, d.Pos, count)
	starts := make([]uint32, count)
	for i := first; i < end; i++ {
		n := d.Nodes[i]
		var v []byte
		if !n.Tombstone() {
			v = n.Value()
		}
		nd := afterimage.Node{
			Key:       n.Key(),
			Value:     v,
			Pos:       n.Pos(),
			Tombstone: n.Tombstone(),
			MaxPos:    n.MaxPos(),
			MinTomb:   n.MinTomb(),
			Height:    uint8(n.Height()),
			Left:      imagePtr(n.Left(), d.Pos, first),
			Right:     imagePtr(n.Right(), d.Pos, first),
		}
		starts[i-first] = uint32(len(dst) - payload)
		dst = nd.AppendTo(dst)
	}
	dst = afterimage.AppendOffsets(dst, payload, starts)
	return entry.Seal(dst, start, entry.TypeCheckpoint), end
}

// imagePtr is a child pointer inside an image: a self pointer within the
// chunk that starts at node first, else an intention pointer (cut, n).
func imagePtr(r *cowtree.Ref, cut uint64, first int) afterimage.Ptr {
	a := r.Addr()
	if a.Kind == cowtree.AddrNone {
		return afterimage.Ptr{}
	}
	if int(a.Off) >= first {
		return afterimage.SelfPtr(a.Off - uint32(first))
	}
	return afterimage.IntentionPtr(cut, a.Off)
}

// locate returns where node off of the active afterimage (or image) of the
// intention (or cut) at in lives: the entry's position and the node's
// offset in it.
func (p *pager) locate(in uint64, off uint32) (uint64, uint32, error) {
	if ci, ok := p.cuts.image(in); ok {
		return ci.m.Locate(uint64(off))
	}
	at, err := p.resolveIntention(in)
	if err != nil {
		return 0, 0, err
	}
	if ci, ok := p.cuts.image(in); ok { // the scan found a marker
		return ci.m.Locate(uint64(off))
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
func (p *pager) valueFromImage(pos uint64, key []byte, cause error) ([]byte, error) {
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
func (p *pager) cutAtTrim(pos uint64) (uint64, bool) {
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

// dropPending forgets a cut whose image will not be written here.
func (c *cuts) dropPending(cut uint64) {
	c.mu.Lock()
	delete(c.pending, cut)
	c.mu.Unlock()
}

// Reset drops every pending delta and resumes at start, a newer safe point:
// replay fell behind the log's trim point and jumps ahead, so the deltas
// between were made by other nodes' replay (their afterimages, or a newer
// checkpoint, hold them). Writers busy with a dropped delta finish it
// harmlessly (a late duplicate). Processor goroutine only.
func (f *Flusher) Reset(start uint64) {
	f.mu.Lock()
	for pos, p := range f.pend {
		if p.d.Checkpoint {
			f.pager.cuts.dropPending(pos)
		}
	}
	clear(f.pend)
	f.fifo = f.fifo[:0]
	clear(f.queue)
	f.queue = f.queue[:0]
	f.unflush, f.ckPinned, f.ckPending = 0, 0, 0
	f.start, f.last, f.lastDelta = start, start, nil
	close(f.room)
	f.room = make(chan struct{})
	f.mu.Unlock()
}
