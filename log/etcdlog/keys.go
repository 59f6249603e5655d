package etcdlog

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cruzlog/cruzdb/log"
)

// Key layout under one log's prefix P (KeyPrefix + name + "/"):
//
//	P c/<id>/<i>   chunk i (4 hex digits) of a large entry, id 32 hex digits
//	P e/<pos>      the entry at pos (16 hex digits, so keys sort by position)
//	P m/ahead      junk positions filled beyond the tail (for appenders to skip)
//	P m/tail       the next position to be assigned, 16 hex digits
//	P m/trim       every position below it is trimmed, 16 hex digits
//	P x/<pos>      the chunk id of the large entry at pos (for trimming)
//
// Entries and the meta keys sort between "e/" and "n", so one watch on that
// range sees new entries and every change of the tail, trim and ahead keys,
// and never the chunks.

type keys struct {
	prefix string
}

func (k keys) entry(p uint64) string  { return k.prefix + "e/" + hex16(p) }
func (k keys) marker(p uint64) string { return k.prefix + "x/" + hex16(p) }
func (k keys) meta() string           { return k.prefix + "m/" }
func (k keys) tail() string           { return k.prefix + "m/tail" }
func (k keys) trim() string           { return k.prefix + "m/trim" }
func (k keys) ahead() string          { return k.prefix + "m/ahead" }
func (k keys) chunks(id string) string {
	return k.prefix + "c/" + id + "/"
}
func (k keys) chunk(id string, i int) string {
	return fmt.Sprintf("%sc/%s/%04x", k.prefix, id, i)
}
func (k keys) watchStart() string { return k.prefix + "e/" }
func (k keys) watchEnd() string   { return k.prefix + "n" }

func hex16(p uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], p)
	return hex.EncodeToString(b[:])
}

// errBadValue: a key of the log holds something this package never writes.
var errBadValue = errors.New("malformed value")

func parseHex16(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("%w: %q is not 16 hex digits", errBadValue, s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %v", errBadValue, s, err)
	}
	return v, nil
}

// posOfEntryKey returns the position of an entry key, or false.
func (k keys) posOfEntryKey(key string) (uint64, bool) {
	rest, ok := strings.CutPrefix(key, k.prefix+"e/")
	if !ok {
		return 0, false
	}
	p, err := parseHex16(rest)
	return p, err == nil
}

func encodeAhead(ps []uint64) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(hex16(p))
	}
	return b.String()
}

func decodeAhead(s string) ([]uint64, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	ps := make([]uint64, 0, len(parts))
	for _, part := range parts {
		p, err := parseHex16(part)
		if err != nil {
			return nil, err
		}
		if len(ps) > 0 && p <= ps[len(ps)-1] {
			return nil, fmt.Errorf("%w: ahead positions not ascending", errBadValue)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Entry values start with a kind byte.
const (
	kindData    = 'd' // the rest is the entry's data
	kindJunk    = 'j' // filled; nothing follows
	kindChunked = 'c' // the rest is a manifest naming the entry's chunks
)

// manifest names the chunks of a large entry.
type manifest struct {
	id        string // 32 hex digits
	size      int    // the entry's length
	chunkSize int    // every chunk but the last has this length
}

func (m manifest) chunks() int { return (m.size + m.chunkSize - 1) / m.chunkSize }

func encodeManifest(m manifest) []byte {
	b := make([]byte, 0, 1+32+2*binary.MaxVarintLen64)
	b = append(b, kindChunked)
	b = append(b, m.id...)
	b = binary.AppendUvarint(b, uint64(m.size))
	b = binary.AppendUvarint(b, uint64(m.chunkSize))
	return b
}

// decodeManifest decodes the manifest of a chunked entry (after its kind
// byte). A manifest names at least two chunks: a shorter entry is inline.
func decodeManifest(b []byte) (manifest, error) {
	var m manifest
	if len(b) < 32 {
		return m, fmt.Errorf("%w: manifest of %d bytes", errBadValue, len(b))
	}
	id := b[:32]
	if _, err := hex.DecodeString(string(id)); err != nil || strings.ToLower(string(id)) != string(id) {
		return m, fmt.Errorf("%w: chunk id %q", errBadValue, id)
	}
	m.id = string(id)
	rest := b[32:]
	size, n := binary.Uvarint(rest)
	if n <= 0 {
		return m, fmt.Errorf("%w: manifest size", errBadValue)
	}
	rest = rest[n:]
	cs, n := binary.Uvarint(rest)
	if n <= 0 || n != len(rest) {
		return m, fmt.Errorf("%w: manifest chunk size", errBadValue)
	}
	if size > log.MaxEntrySize || cs == 0 || cs >= size {
		return m, fmt.Errorf("%w: manifest of %d bytes in chunks of %d", errBadValue, size, cs)
	}
	m.size, m.chunkSize = int(size), int(cs)
	if enc := encodeManifest(m); string(enc[1:]) != string(b) {
		return manifest{}, fmt.Errorf("%w: manifest not in canonical form", errBadValue)
	}
	return m, nil
}

// value is a decoded entry value.
type value struct {
	kind byte
	data []byte   // kindData: aliases the encoded value
	man  manifest // kindChunked
}

func decodeValue(b []byte) (value, error) {
	if len(b) == 0 {
		return value{}, fmt.Errorf("%w: empty entry value", errBadValue)
	}
	v := value{kind: b[0]}
	switch b[0] {
	case kindData:
		v.data = b[1:]
	case kindJunk:
		if len(b) != 1 {
			return v, fmt.Errorf("%w: junk with %d bytes", errBadValue, len(b)-1)
		}
	case kindChunked:
		m, err := decodeManifest(b[1:])
		if err != nil {
			return v, err
		}
		v.man = m
	default:
		return v, fmt.Errorf("%w: entry kind %q", errBadValue, b[0])
	}
	return v, nil
}

// meta is what the log knows of its meta keys, each with the revision it
// was last modified at (0: the key does not exist yet).
type meta struct {
	tail, trim       uint64
	ahead            []uint64 // ascending
	tailRev, trimRev int64
	aheadRev         int64
}

// next is the tail as callers see it: positions below the trim point are
// never assigned.
func (m *meta) next() uint64 { return max(m.tail, m.trim) }

// junkAhead reports whether p was filled beyond the tail.
func (m *meta) junkAhead(p uint64) bool {
	_, ok := slices.BinarySearch(m.ahead, p)
	return ok
}

// set applies one meta key's value seen at rev, if it is newer than what is
// known. It reports whether anything changed.
func (m *meta) set(k keys, key string, val []byte, rev int64) (bool, error) {
	switch key {
	case k.tail():
		if rev <= m.tailRev {
			return false, nil
		}
		v, err := parseHex16(string(val))
		if err != nil {
			return false, err
		}
		m.tail, m.tailRev = v, rev
	case k.trim():
		if rev <= m.trimRev {
			return false, nil
		}
		v, err := parseHex16(string(val))
		if err != nil {
			return false, err
		}
		m.trim, m.trimRev = v, rev
	case k.ahead():
		if rev <= m.aheadRev {
			return false, nil
		}
		v, err := decodeAhead(string(val))
		if err != nil {
			return false, err
		}
		m.ahead, m.aheadRev = v, rev
	default:
		return false, nil
	}
	return true, nil
}
