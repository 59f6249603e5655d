package flusher

import (
	"errors"
	"time"

	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/processor"
)

// Checkpoint images.
//
// The delta of a checkpoint cut at c (processor.State.Cut) is the tree at c,
// in which node n in post-order also has the address (c, n) (see
// cowtree.Tree.Cut: nothing is copied). Its "afterimage" is the image,
// written like any other delta's, by the same workers and under the same
// policy, but as a run of chunk entries (the nodes in post-order, read
// from the cut's tree by cowtree.Tree.Walk, cut at about chunkTarget
// bytes, every value stored inline, since the intentions that hold values
// may be trimmed) followed by a marker naming the chunks. This is the checkpoint's preparation: it overlaps commits,
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

// KnownCheckpoint seeds the node cache with a complete image found by startup.
func (f *Flusher) KnownCheckpoint(markerPos uint64, m *entry.Marker) {
	f.pager.Cuts().SetComplete(markerPos, m)
}

// SawCheckpoint reports a checkpoint marker at pos, in log order, and
// reports whether it confirmed its cut's delta here (the first complete
// marker for a cut this node holds pending). Processor goroutine only.
func (f *Flusher) SawCheckpoint(pos uint64, m *entry.Marker) bool {
	f.mu.Lock()
	p, ok := f.pend[m.Cut]
	if ok && (!p.d.Checkpoint || p.d.ImageNodes != m.Nodes) {
		f.mu.Unlock()
		f.o.Logger.Error("checkpoint marker does not match its cut; ignored", "marker", pos, "cut", m.Cut, "nodes", m.Nodes)
		return false
	}
	// From here, nodes of the cut's tree are read from the image.
	f.pager.Cuts().SetComplete(pos, m)
	if !ok || m.Cut <= f.start {
		f.mu.Unlock()
		f.dups.Add(1)
		return false
	}
	delete(f.pend, m.Cut)
	f.ckPending--
	// Older cuts still pending are superseded: this image holds their
	// state and later, and theirs may never be complete (the log may be
	// trimmed past their trees' nodes, see writeCheckpoint), so nothing
	// waits on them any more. The intentions between such a cut and this
	// one point into its image, though: their afterimages are never safe
	// points (baseFor), and the cut's tree stays with the node cache (for
	// readers of those versions) until the log is trimmed past this cut.
	for c, q := range f.pend {
		if q.d.Checkpoint && c < m.Cut {
			delete(f.pend, c)
			f.ckPending--
			f.unproven = append(f.unproven, unproven{cut: c, until: m.Cut, base: q.prev})
		}
	}
	close(f.room)
	f.room = make(chan struct{})
	f.mu.Unlock()
	f.confirmed.Add(1)
	f.latency.Add(int64(time.Since(p.since)))
	return true
}

// errImageAbandoned stops an image's walk: another node's image won.
var errImageAbandoned = errors.New("flusher: image abandoned")

// writeCheckpoint writes the image of p, a cut's delta: its chunks, then
// its marker. It reports false when the flusher stopped.
func (f *Flusher) writeCheckpoint(p *pending) bool {
	d := p.d
	started := time.Now()
	backoff := time.Millisecond
	for {
		m, stopped, err := f.writeImage(d)
		switch {
		case stopped:
			return false
		case err == nil:
			return f.writeMarker(d, m, started)
		case errors.Is(err, errImageAbandoned):
			f.ckAborted.Add(1) // another node's image won
			return true
		case errors.Is(err, log.ErrTrimmed):
			// The log was trimmed past nodes of the cut's tree: a newer
			// checkpoint has authority, and this image is not needed
			// (replay meets that checkpoint's marker, or re-bootstraps).
			f.ckAborted.Add(1)
			f.o.Logger.Info("checkpoint image abandoned: the log was trimmed past it", "cut", d.Pos, "err", err)
			return true
		}
		// A node of the cut's tree could not be read: try again, until
		// another node's image wins or the flusher stops.
		f.appendErr.Store(&err)
		f.o.Logger.Warn("checkpoint image failed; retrying", "cut", d.Pos, "err", err)
		select {
		case <-time.After(backoff):
		case <-f.stopCh:
			return false
		}
		backoff = min(2*backoff, time.Second)
	}
}

// writeImage writes the chunks of the image of d, and returns the marker
// naming them; stopped reports that the flusher stopped.
func (f *Flusher) writeImage(d *processor.Delta) (m *entry.Marker, stopped bool, err error) {
	m = &entry.Marker{Cut: d.Pos, Nodes: d.ImageNodes}
	since := time.Now() // the start of the work on this chunk
	var owed time.Duration
	w := f.takeScratch()
	defer f.putScratch(w)
	err = w.write(d, func(chunk []byte, first uint64) error {
		work := time.Since(since) // encoding the chunk
		// Rest in proportion to the work on the chunk before (see
		// Options.ImageDuty): the image is background work, and on a small
		// machine an unpaced writer (with the replay of its chunks) takes
		// the cores from commits. Resting before a chunk rather than after
		// one leaves no rest between the last chunk and the marker, which
		// would only make the checkpoint longer (for an image of one chunk,
		// the whole checkpoint of a small tree, there is none at all).
		if owed > 0 && !f.rest(owed) {
			stopped = true
			return errImageAbandoned
		}
		if done, _ := f.isConfirmed(d.Pos); done {
			return errImageAbandoned
		}
		appending := time.Now()
		pos, ok := f.appendCheckpointEntry(chunk, d.Pos)
		if !ok {
			stopped = true
			return errImageAbandoned
		}
		work += time.Since(appending)
		m.Chunks = append(m.Chunks, entry.ChunkRef{Pos: uint64(pos), First: first})
		m.Bytes += uint64(len(chunk))
		f.ckChunks.Add(1)
		if f.o.ImageDuty < 1 {
			owed = time.Duration(float64(work) * (1 - f.o.ImageDuty) / f.o.ImageDuty)
		}
		since = time.Now()
		return nil
	})
	return m, stopped, err
}

// restSlice is how often a resting image writer asks Options.Hurry.
const restSlice = 5 * time.Millisecond

// ImageHurryShare is the share of the log's room (see Options.ImageBudget)
// past which an image writer stops resting: the log has used half the room
// it has since the cut before commits are held back, and the writer
// finishes its image at full speed in the other half. Before that it
// rests as ImageDuty says, so that a large image stays background work.
const ImageHurryShare = 0.5

// behind reports whether the image writer must stop resting: the log has
// used ImageHurryShare of its room since the cut (Options.ImageBudget).
func (f *Flusher) behind() bool {
	return f.o.ImageBudget != nil && f.o.ImageBudget() >= ImageHurryShare
}

// rest sleeps for d, or less once someone waits for the image (a Flush, or
// commits: Options.Hurry) or once the log has used ImageHurryShare of its
// room (behind). It reports false when the flusher stopped.
func (f *Flusher) rest(d time.Duration) bool {
	for d > 0 {
		if f.flushing.Load() > 0 || f.o.Hurry != nil && f.o.Hurry() || f.behind() {
			return true
		}
		s := min(d, restSlice)
		t := time.NewTimer(s)
		select {
		case <-t.C:
		case <-f.stopCh:
			t.Stop()
			return false
		}
		d -= s
	}
	return true
}

// writeMarker appends the marker m of d's image, unless another node's
// image has won meanwhile. It reports false when the flusher stopped.
func (f *Flusher) writeMarker(d *processor.Delta, m *entry.Marker, started time.Time) bool {
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

// WriteImage encodes the image of the cut delta d (its tree's nodes in
// post-order, read by cowtree.Tree.Walk) as complete chunk entries of about
// chunkTarget bytes, and passes each to emit with the number of its first
// node, in order. The bytes depend only on the delta: every node writes the
// same chunks. It stops at the first error emit returns, and returns it.
// A chunk's bytes are emit's only during the call.
func WriteImage(d *processor.Delta, emit func(chunk []byte, first uint64) error) error {
	var w imageScratch
	return w.write(d, emit)
}

// imageScratch holds an image writer's buffers: each node is encoded as the
// walk meets it (nodes, starts), and a chunk entry is assembled around them
// when it is closed (buf). A Flusher keeps one between images, so that an
// image of a tree that grows costs no new buffers and no copies of its nodes
// as structs; the chunks are the bytes an afterimage of the same nodes would have
// (TestImageScratchBytes).
type imageScratch struct {
	buf, nodes []byte
	starts     []uint32
}

// takeScratch returns the Flusher's image buffers, or new ones while
// another image holds them.
func (f *Flusher) takeScratch() *imageScratch {
	f.scratchMu.Lock()
	defer f.scratchMu.Unlock()
	w := f.scratch
	f.scratch = nil
	if w == nil {
		w = &imageScratch{}
	}
	return w
}

// putScratch keeps w for the next image.
func (f *Flusher) putScratch(w *imageScratch) {
	f.scratchMu.Lock()
	f.scratch = w
	f.scratchMu.Unlock()
}

func (w *imageScratch) write(d *processor.Delta, emit func(chunk []byte, first uint64) error) error {
	var (
		first uint64
		size  int // the nodes' MaxEncodedSize: where a chunk is cut
	)
	w.nodes, w.starts = w.nodes[:0], w.starts[:0]
	flush := func() error {
		if len(w.starts) == 0 {
			return nil
		}
		w.buf = w.chunk(w.buf[:0], d.Pos, first)
		err := emit(w.buf, first)
		first += uint64(len(w.starts))
		w.nodes, w.starts, size = w.nodes[:0], w.starts[:0], 0
		return err
	}
	err := d.Tree.Walk(func(n *cowtree.Node, num uint32) error {
		var v []byte
		if !n.Tombstone() {
			v = n.Value()
		}
		nd := afterimage.Node{
			Key:        n.Key(),
			Value:      v,
			Pos:        n.Pos(),
			Tombstone:  n.Tombstone(),
			MaxPos:     n.MaxPos(),
			MinTomb:    n.MinTomb(),
			Height:     uint8(n.Height()),
			LeftCount:  n.Left().Count(),
			RightCount: n.Right().Count(),
		}
		sz := nd.MaxEncodedSize()
		if len(w.starts) > 0 && size+sz > chunkTarget {
			if err := flush(); err != nil {
				return err
			}
		}
		// Post-order: the right child is num-1, the left one below the
		// right subtree. A child in this chunk is a self pointer.
		if nd.RightCount > 0 {
			nd.Right = imagePtr(d.Pos, num-1, first)
		}
		if nd.LeftCount > 0 {
			nd.Left = imagePtr(d.Pos, num-1-nd.RightCount, first)
		}
		w.starts = append(w.starts, uint32(len(w.nodes)))
		w.nodes = nd.AppendTo(w.nodes)
		size += sz
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// chunk appends the chunk entry of the image of cut whose nodes, the first
// of which is node first, are encoded in w.nodes (starting at w.starts):
// a chunk header, then the afterimage payload of those nodes. It rebases
// w.starts.
func (w *imageScratch) chunk(dst []byte, cut, first uint64) []byte {
	n := len(w.starts)
	size := 2*10 + afterimage.MaxHeaderSize + afterimage.OffsetsSize(n) + len(w.nodes)
	// Grown to a power of two: the chunks' sizes vary just under
	// chunkTarget, and a buffer of exactly one chunk's size was grown
	// again for most of the next ones.
	dst = reserve(dst, entry.FrameSize+size)
	dst, start := entry.Begin(dst, size)
	dst = entry.BeginChunk(dst, first)
	payload := len(dst)
	dst = afterimage.AppendHeader(dst, cut, cut, n)
	at := uint32(len(dst) - payload)
	dst = append(dst, w.nodes...)
	for i := range w.starts {
		w.starts[i] += at
	}
	dst = afterimage.AppendOffsets(dst, payload, w.starts)
	return entry.Seal(dst, start, entry.TypeCheckpoint)
}

// imagePtr is a child pointer inside an image: to node num, a self pointer
// within the chunk that starts at node first, else an intention pointer
// (cut, num).
func imagePtr(cut uint64, num uint32, first uint64) afterimage.Ptr {
	if uint64(num) >= first {
		return afterimage.SelfPtr(num - uint32(first))
	}
	return afterimage.IntentionPtr(cut, num)
}

// Trimmed tells the flusher that the log was trimmed below pos: the trees
// of superseded cuts below it, and what is known of the stretches of
// intentions they left unproven, are not needed any more (no version
// above the trim point points into their images).
func (f *Flusher) Trimmed(pos uint64) {
	f.mu.Lock()
	kept := f.unproven[:0]
	for _, u := range f.unproven {
		if u.until > pos {
			kept = append(kept, u)
		}
	}
	f.unproven = kept
	f.mu.Unlock()
	f.pager.Cuts().DropPendingBelow(pos)
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
			f.pager.Cuts().DropPending(pos)
		}
	}
	clear(f.pend)
	f.unproven = f.unproven[:0]
	f.fifo = f.fifo[:0]
	clear(f.queue)
	f.queue = f.queue[:0]
	f.unflush, f.ckPending = 0, 0
	f.start, f.last, f.lastDelta = start, start, nil
	close(f.room)
	f.room = make(chan struct{})
	f.mu.Unlock()
}
