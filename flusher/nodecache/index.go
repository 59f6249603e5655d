package nodecache

import "sync/atomic"

// Index maps intention positions to their active afterimage positions. It is
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
type Index struct {
	slots []atomic.Uint64
	bits  uint
	used  atomic.Int64 // occupied slots
	far   *FIFO[uint64]
	nfar  atomic.Int64 // entries in far: lookups skip its lock while 0
}

const farEntries = 4096

// maxIndexBits caps the table at 2^24 slots (128 MiB).
const maxIndexBits = 24

// NewIndex returns an index of about limit entries (a power of two at or
// above it, capped at 2^maxIndexBits).
func NewIndex(limit int) *Index {
	bits := uint(0)
	for 1<<bits < limit && bits < maxIndexBits {
		bits++
	}
	return &Index{slots: make([]atomic.Uint64, 1<<bits), bits: bits, far: NewFIFO[uint64](farEntries)}
}

// pack returns the slot and the word for intention in and afterimage ai, or
// false when they do not fit one word.
func (x *Index) pack(in, ai uint64) (*atomic.Uint64, uint64, bool) {
	tag, dist := in>>x.bits, ai-in
	if ai <= in || dist >= 1<<32 || tag >= 1<<32 {
		return nil, 0, false
	}
	return &x.slots[in&(1<<x.bits-1)], tag<<32 | dist, true
}

// Get returns the active afterimage of the intention at in, if known.
func (x *Index) Get(in uint64) (uint64, bool) {
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
	return x.far.Get(in)
}

// Put records in's active afterimage. The first one recorded for an
// intention stays (later ones are duplicates, never active).
func (x *Index) Put(in, ai uint64) {
	slot, w, ok := x.pack(in, ai)
	if !ok {
		if _, known := x.Get(in); !known {
			x.far.Put(in, ai)
			x.nfar.Store(int64(x.far.Len()))
		}
		return
	}
	if x.nfar.Load() > 0 {
		if _, known := x.far.Get(in); known {
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

// Len returns the number of entries held.
func (x *Index) Len() int { return int(x.used.Load() + x.nfar.Load()) }
