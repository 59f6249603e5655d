package flusher

import (
	"github.com/cruzlog/cruzdb/afterimage"
	"github.com/cruzlog/cruzdb/log"
)

// Afterimages written inline.
//
// With one client committing, each commit's afterimage rides with the
// next commit's intention (log/piggyback). Handed to a worker, that cost
// the committer a wake-up per commit: Produced signalled an idle worker,
// or the committer's Riders.Release woke the worker waiting in
// AppendAfterimage; with the other core idle, that is a futex call of 8-13
// µs on the committer's path after its fdatasync (CPU profiles,
// bench/journal/2026-12-07-one23.md), and the worker then ran on the other
// core while the next commit's fdatasync was under way.
//
// So while exactly one local commit is under way (the lane's Committing)
// and no delta waits in the queue, Produced encodes the afterimage of a
// local delta itself (a few µs for a small delta) and hands
// it to the lane with Ride, which keeps no goroutine waiting: the next
// intention takes it, and its committer's Release calls inlineDone, the
// bookkeeping a worker does after its append. If no intention comes within
// the lane's window, the lane appends it alone. If it cannot ride, or its
// append fails, it goes to the queue, and a worker writes it as any other
// (retrying as write does). A worker still writing (an afterimage that
// went to one earlier, waiting for its ride, or a checkpoint's image) does
// not keep the next ones from going inline: afterimages may be written in
// any order (intention pointers), and requiring none would keep a single
// commit on the workers' path for good, since a worker counts as writing
// until it has been woken after its ride, by then the next Produced ran.

// inlineLocked reports whether Produced writes p inline (not if the lane
// would not take it now, e.g. when the commit's fdatasync outlasted the
// lane's window: then the encode would be wasted), and if so counts
// it as being written (sig.writing) and queued (Flush then does not queue
// it again). The caller holds mu.
func (f *Flusher) inlineLocked(p *pending) bool {
	if f.lane == nil || p.d.Checkpoint || len(f.queue) > 0 || f.lane.Committing() != 1 || !f.lane.Rides() {
		return false
	}
	p.queued = true
	f.sig.writing.Add(1)
	return true
}

// writeInline encodes p's afterimage and hands it to the lane to ride, or
// else to the workers.
func (f *Flusher) writeInline(p *pending) {
	base := f.baseFor(p.d.Pos)
	buf := getEntryBuf(entrySizeHint(p.d))
	data, counts := AppendEntry((*buf)[:0], p.d, base, f.pager.Physical)
	if len(data) <= log.MaxEntrySize {
		done := func(_ log.Position, err error) { f.inlineDone(p, base, buf, data, counts, err) }
		if f.lane.Ride(f.ctx, data, done) {
			return
		}
	}
	// Not riding now (or too large: write reports it): a worker writes it.
	putEntry(buf, data)
	f.requeue(p)
}

// inlineDone is the outcome of an afterimage written inline: the
// bookkeeping of write after an append, or, after an error, the queue.
func (f *Flusher) inlineDone(p *pending, base uint64, buf *[]byte, data []byte, counts afterimage.PointerCounts, err error) {
	n := len(data)
	putEntry(buf, data) // the lane's reader decoded it before Release
	if err != nil {
		f.appendErr.Store(&err)
		f.appendErrs.Add(1)
		f.requeue(p)
		return
	}
	f.appendErr.Store(nil)
	if f.o.Appended != nil {
		f.o.Appended()
	}
	if base == p.d.Pos {
		f.markSealed(base)
	}
	f.inline.Add(1)
	f.written.Add(1)
	f.writtenBytes.Add(uint64(n))
	f.phys.Add(uint64(counts.Afterimage))
	f.intent.Add(uint64(counts.Intention))
	f.self.Add(uint64(counts.Self))
	f.sig.writing.Add(-1)
}

// requeue queues p, which was being written inline, for a worker (unless
// the flusher stopped).
func (f *Flusher) requeue(p *pending) {
	f.mu.Lock()
	if !f.stopped {
		f.enqueue(p)
	}
	f.sig.writing.Add(-1) // with the queue, under mu: see quiescent
	f.mu.Unlock()
}

// putEntry returns an encoded entry's buffer to the pool, as write does.
func putEntry(buf *[]byte, data []byte) {
	if cap(data) <= maxPooledEntry {
		*buf = data[:0]
		putEntryBuf(buf)
	}
}
