package main

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"sync"
)

// SCAN cursors.
//
// Keys are kept in order, so a cursor is simply "the next key to look at":
// a scan resumes at it whatever was written or deleted meanwhile, and every
// key present for the whole scan is returned at least once. Clients parse
// cursors as unsigned 64-bit decimals, so the next key is encoded in 64
// bits:
//
//   - 0: the start (or, in a reply, the end) of a scan.
//   - top bit 1: a key of 1..7 bytes, inline: bits 56..62 hold its length,
//     bits 0..55 its bytes, left-aligned. Stateless.
//   - top bit 0: a longer key, kept in the server's cursor table: bits
//     24..55 hold the key's first 4 bytes, bits 0..23 a table id (never 0).
//     If the entry was evicted (the table keeps the newest 65536 cursors,
//     64 MiB of keys at most), or the daemon restarted, the scan resumes at
//     the 4-byte prefix: a lower bound of the key, so nothing is skipped;
//     keys between the prefix and the key may be returned again.

type cursorTable struct {
	mu         sync.Mutex
	entries    map[uint32][]byte
	ring       []uint32 // insertion order, for FIFO eviction
	head, size int
	next       uint32
	bytes      int
	maxBytes   int
}

func newCursorTable(maxEntries, maxBytes int) *cursorTable {
	return &cursorTable{
		entries:  make(map[uint32][]byte),
		ring:     make([]uint32, maxEntries),
		next:     1,
		maxBytes: maxBytes,
	}
}

const cursorIDMask = 1<<24 - 1

func (t *cursorTable) put(key []byte) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := t.next
	t.next = (t.next + 1) & cursorIDMask
	if t.next == 0 {
		t.next = 1
	}
	if old, ok := t.entries[id]; ok { // reused after wrapping: forget the old
		t.bytes -= len(old)
		delete(t.entries, id)
	}
	for t.size > 0 && (t.size == len(t.ring) || t.bytes+len(key) > t.maxBytes) {
		old := t.ring[t.head]
		t.head = (t.head + 1) % len(t.ring)
		t.size--
		if k, ok := t.entries[old]; ok {
			t.bytes -= len(k)
			delete(t.entries, old)
		}
	}
	t.entries[id] = bytes.Clone(key)
	t.bytes += len(key)
	t.ring[(t.head+t.size)%len(t.ring)] = id
	t.size++
	return id
}

func (t *cursorTable) get(id uint32) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k, ok := t.entries[id]
	return k, ok
}

// encode returns the cursor for next key k (nil: the scan is complete).
func (t *cursorTable) encode(k []byte) uint64 {
	switch {
	case k == nil:
		return 0
	case len(k) <= 7:
		var b [8]byte
		copy(b[1:], k)
		return 1<<63 | uint64(len(k))<<56 | binary.BigEndian.Uint64(b[:])&(1<<56-1)
	default:
		id := t.put(k)
		return uint64(binary.BigEndian.Uint32(k[:4]))<<24 | uint64(id)
	}
}

// decode returns the key a scan resumes at (nil: the start).
func (t *cursorTable) decode(c uint64) ([]byte, bool) {
	switch {
	case c == 0:
		return nil, true
	case c>>63 == 1:
		n := int(c >> 56 & 0x7f)
		if n < 1 || n > 7 {
			return nil, false
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], c)
		return bytes.Clone(b[1 : 1+n]), true
	default:
		var prefix [4]byte
		binary.BigEndian.PutUint32(prefix[:], uint32(c>>24))
		if k, ok := t.get(uint32(c & cursorIDMask)); ok && bytes.HasPrefix(k, prefix[:]) {
			return k, true
		}
		return bytes.Clone(prefix[:]), true
	}
}

// parseCursor parses a cursor argument: an unsigned decimal.
func parseCursor(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b), 10, 64)
	return v, err == nil
}

// globMatch reports whether s matches the Redis glob pattern p: '*' any
// run, '?' one byte, '[abc]', '[^a-z]' classes, '\' escapes. It runs in
// O(len(p)*len(s)) at worst (one backtracking point, as for plain
// wildcards), so no pattern can make it explode.
func globMatch(p, s []byte) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				if pi == len(p) {
					return true
				}
				starP, starS = pi, si
				continue
			default:
				if n, ok := matchOne(p[pi:], s[si]); ok {
					pi += n
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchOne matches one byte c against the token at the start of p (not
// '*'): it returns the token's length and whether c matches it.
func matchOne(p []byte, c byte) (int, bool) {
	switch p[0] {
	case '?':
		return 1, true
	case '\\':
		if len(p) >= 2 {
			return 2, p[1] == c
		}
		return 1, c == '\\'
	case '[':
		i := 1
		not := false
		if i < len(p) && p[i] == '^' {
			not = true
			i++
		}
		match := false
		for {
			if i >= len(p) {
				// Unterminated class: Redis treats the end as closing it.
				break
			}
			if p[i] == ']' {
				i++
				break
			}
			switch {
			case p[i] == '\\' && i+1 < len(p):
				if p[i+1] == c {
					match = true
				}
				i += 2
			case i+2 < len(p) && p[i+1] == '-': // as in Redis, even "[a-]" is a range (to ']')
				lo, hi := p[i], p[i+2]
				if lo > hi {
					lo, hi = hi, lo
				}
				if c >= lo && c <= hi {
					match = true
				}
				i += 3
			default:
				if p[i] == c {
					match = true
				}
				i++
			}
		}
		return i, match != not
	default:
		return 1, p[0] == c
	}
}

// literalPrefix returns the bytes every key matching p starts with.
func literalPrefix(p []byte) []byte {
	var out []byte
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*', '?', '[':
			return out
		case '\\':
			if i+1 < len(p) {
				i++
			}
		}
		out = append(out, p[i])
	}
	return out
}

// prefixEnd is the smallest key greater than every key with prefix p, or
// nil if there is none.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
