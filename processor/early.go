package processor

import (
	"github.com/cruzlog/cruzdb/internal/entry"
)

// Early application: the work of a group commit's intentions done while
// the log syncs them.
//
// A log that orders appends itself (log.OrderNotifier: seglog) says what
// a group holds once its positions are fixed, before its write and
// fdatasync. With Config.Early, the runner applies those entries then, on
// a goroutine of its own (applyEarly), so that when the fdatasync ends the
// decisions are made: the committers were waiting ~12 µs per intention of
// their group after it (bench/journal/2026-12-07-session16.md §6), time in
// which they could not queue for the next group. Pebble does the same: it
// applies a batch to its memtable while the WAL syncs, and makes it
// visible after.
//
// What replay decides does not depend on when it runs: the entries are the
// bytes the log is writing at those positions, applied in log order under
// the apply role like any other. Only who sees the results, and when,
// changes: the events of entries applied early carry Event.Early, and the
// OnEvent of a caller that enables Early must not let anyone outside see
// an effect of such an event (a decision, a version to read) until the log
// says its position is durable (log.OrderWatcher's Durable). If the log
// fails first, the entries were never durable, and the log fails every
// later call: the runner stops with it, and what was applied early is never
// shown.
//
// Only what replay needs is copied: an intention whole, an afterimage's
// frame and header (headPrefix). A group of fewer than
// earlyMinIntentions intentions, and of fewer than earlyMinBytes of them,
// is not staged, and staging stops at the first entry that is neither an
// intention nor an afterimage (a checkpoint's entries are applied only once
// durable: a confirmed checkpoint trims the log).

// earlyMinIntentions: a group with fewer intentions is not staged (unless
// earlyMinBytes). A lone committer applies its own intention right after
// the fdatasync without a wake-up (local.go); staging a 1-put intention
// instead cost a wake-up of the early applier per commit, ~20–50 µs more
// CPU a commit, for no more commits a second
// (bench/journal/2026-12-07-early24.md).
const earlyMinIntentions = 2

// earlyMinBytes: a group whose intentions hold at least this many bytes is
// staged even if it is one intention: applying it (cruzd's combined
// pipelines, ~160 writes) costs far more than the early applier's wake-up
// (cruzd SET -P16 +3–5 %, 6 of 7 alternated quiet pairs:
// bench/journal/2026-12-07-early24.md).
const earlyMinBytes = 4 << 10

// staged is an entry handed to Ordered, copied.
type staged struct {
	pos  uint64
	data []byte // the entry, or its first headPrefix bytes (an afterimage)
	size int    // the entry's size
}

// Ordered stages the entries a log ordered (log.OrderWatcher): data[i] is
// the entry at first+i, not yet durable. It copies what it keeps and does
// not block; the early applier applies them if it gets to them before
// anyone else.
func (r *Runner) Ordered(first uint64, data [][]byte) {
	if !r.cfg.Early {
		return
	}
	n, total, intentions, inBytes := 0, 0, 0, 0
scan:
	for i, d := range data {
		t, err := entry.PeekType(first+uint64(i), d)
		if err != nil {
			break
		}
		switch t {
		case entry.TypeIntention:
			intentions++
			inBytes += len(d)
			total += len(d)
		case entry.TypeAfterimage:
			total += min(len(d), headPrefix)
		default:
			break scan
		}
		n++
	}
	if intentions == 0 || (intentions < earlyMinIntentions && inBytes < earlyMinBytes) {
		return
	}
	st := stage(first, data[:n], total)
	r.earlyMu.Lock()
	r.staged = append(r.staged, st...)
	r.earlyMu.Unlock()
	select {
	case r.earlyPoke <- struct{}{}:
	default:
	}
}

// stage copies the entries at first, first+1, ... (intentions and
// afterimages, total bytes kept) into one buffer: an intention whole, an
// afterimage's first headPrefix bytes (the rest, its nodes, ~1.2 KB a
// 1-put commit, was ~15 % of the bytes allocated a commit at 16 clients).
func stage(first uint64, data [][]byte, total int) []staged {
	buf := make([]byte, 0, total)
	st := make([]staged, 0, len(data))
	for i, d := range data {
		start := len(buf)
		if t, _ := entry.PeekType(0, d); t == entry.TypeAfterimage {
			buf = append(buf, d[:min(len(d), headPrefix)]...)
		} else {
			buf = append(buf, d...)
		}
		st = append(st, staged{pos: first + uint64(i), data: buf[start:len(buf):len(buf)], size: len(d)})
	}
	return st
}

// applyEarly is the early applier's goroutine: it applies the staged
// entries under the apply role, in log order, reading from the log (then
// durable) any entry between the last applied and the first staged one.
func (r *Runner) applyEarly() {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.earlyPoke:
		}
		r.earlyMu.Lock()
		batch := r.staged
		r.staged = nil
		r.earlyMu.Unlock()
		if len(batch) == 0 {
			continue
		}
		r.mu.Lock()
		r.applyStagedLocked(batch)
		r.mu.Unlock()
		r.handBack()
	}
}

// applyStagedLocked applies the staged entries the runner has not applied
// yet; it stops at a gap it cannot read or an entry that fails (which it
// leaves to the applying goroutine, as ApplyLocal does). The caller holds
// r.mu.
func (r *Runner) applyStagedLocked(batch []staged) {
	s := r.src
	if r.stopped || s == nil || s.ctx.Err() != nil || s.in != nil || len(s.held) > 0 {
		return
	}
	for len(batch) > 0 && batch[0].pos < s.next {
		batch = batch[1:]
	}
	if len(batch) == 0 {
		return
	}
	below := make([]Appended, 0, len(batch))
	for _, e := range batch {
		a := Appended{it: item{pos: e.pos, early: true}, ok: true}
		if len(e.data) < e.size {
			r.decodePrefix(&a.it, e.data, e.size)
		} else {
			r.decode(&a.it, e.data)
		}
		below = append(below, a)
	}
	last := batch[len(batch)-1].pos
	r.applyLocalLocked(s.ctx, last, nil, below)
}

// handBack wakes the applying goroutine if it found the apply role taken
// while its holder applied (lockApplier).
func (r *Runner) handBack() {
	if r.missed.Load() && r.missed.CompareAndSwap(true, false) {
		select {
		case r.handback <- struct{}{}:
		default:
		}
	}
}

// EarlyApplies is how many intentions were applied before the log said
// they were durable (Config.Early).
func (r *Runner) EarlyApplies() uint64 { return r.earlies.Load() }
