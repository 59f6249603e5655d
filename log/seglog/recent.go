package seglog

import (
	"encoding/binary"
	"sort"
	"sync"
)

// recentBytes is the size of the ring of recently written groups (see
// recent). The processor reads each intention back right after appending
// it, so a few MiB cover the reads that follow appends closely.
const recentBytes = 4 << 20

// recent keeps the groups most recently written to the active segment in
// memory, so that reads of entries just appended are copied from memory
// instead of read from the file with a system call. It costs no copy on
// the write side: the committer encodes each group (that fits) directly
// into the ring and writes it to the file from there. Every group sits
// whole and contiguous in the ring; one that does not fit before the ring's
// end starts again at its beginning, so groups are overwritten oldest
// first. A read that finds its record here returns the bytes the file holds;
// their checksum was computed from this memory when the group was encoded,
// so it is not checked again.
type recent struct {
	mu     sync.RWMutex
	seg    *segment      // groups are of this segment
	buf    []byte        // the ring; nil until the first group
	groups []recentGroup // oldest first: ascending file offsets
	at     int           // ring offset of the next group
}

// recentGroup: bytes [from, to) of seg are at ring offset ro.
type recentGroup struct {
	from, to uint32
	ro       int
}

// reserve returns an empty slice of capacity n in the ring, for the
// committer to encode a group of exactly n bytes of s into, or nil if the
// group is larger than the ring. Groups that the slice overlaps are
// forgotten first, so no reader copies from it while the committer fills
// it. The group becomes readable by publish.
func (c *recent) reserve(s *segment, n int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seg != s || n > recentBytes {
		c.seg, c.groups, c.at = s, c.groups[:0], 0
		if n > recentBytes {
			c.seg = nil
			return nil
		}
	}
	if c.buf == nil {
		c.buf = make([]byte, recentBytes)
	}
	if c.at+n > len(c.buf) {
		// The groups at or after at are the oldest: forget them, and go on
		// from the ring's start.
		k := 0
		for k < len(c.groups) && c.groups[k].ro >= c.at {
			k++
		}
		c.groups = c.groups[k:] // append reallocates when it must: amortized O(1)
		c.at = 0
	}
	end := c.at + n
	k := 0
	for k < len(c.groups) && c.groups[k].ro < end && c.groups[k].ro+int(c.groups[k].to-c.groups[k].from) > c.at {
		k++
	}
	c.groups = c.groups[k:]
	return c.buf[c.at:c.at:end]
}

// publish makes the n bytes of s at file offset from, encoded into the
// slice the last reserve returned, readable.
func (c *recent) publish(s *segment, from uint32, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seg != s {
		return
	}
	c.groups = append(c.groups, recentGroup{from: from, to: from + uint32(n), ro: c.at})
	c.at += n
}

// read returns a copy of bytes [off, off+n) (clipped to the entry) of the
// payload of the data record at pos, which lies at offset from of s, and
// the payload's size, if the ring holds the record.
func (c *recent) read(s *segment, pos uint64, from uint32, off, n int) ([]byte, int, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.seg != s || len(c.groups) == 0 {
		return nil, 0, false
	}
	k := sort.Search(len(c.groups), func(k int) bool { return c.groups[k].to > from })
	if k == len(c.groups) || c.groups[k].from > from {
		return nil, 0, false
	}
	g := c.groups[k]
	if g.to-from < recHeaderSize {
		return nil, 0, false
	}
	r := c.buf[g.ro+int(from-g.from) : g.ro+int(g.to-g.from)]
	size := binary.LittleEndian.Uint32(r[4:])
	if binary.LittleEndian.Uint64(r[8:]) != pos || r[20] != kindData || uint64(recHeaderSize)+uint64(size) > uint64(len(r)) {
		return nil, 0, false // not the record asked for: let the file answer
	}
	payload := r[recHeaderSize : recHeaderSize+int(size)]
	lo := min(off, len(payload))
	return append([]byte(nil), payload[lo:lo+min(n, len(payload)-lo)]...), len(payload), true
}
