package main

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cruzlog/cruzdb"
)

// How Redis keys of every type map onto cruzdb's ordered keys (Kvrocks
// style, see README.md, "Encoding"):
//
//	'k' key                               -> metadata of key
//	's' len(key):4 key version:8 field    -> one hash field's value, or one set member ("")
//
// Metadata: a type byte (bit 0x80: an expiry follows), the expiry as unix
// milliseconds (8 bytes, big-endian) if any, then for a string its value,
// for a hash or set its version (8 bytes) and element count (8 bytes).
// A hash's or set's elements live under its version: overwriting or deleting
// the key writes only its metadata, and elements of a version no metadata
// names any more are garbage the sweeper deletes.

const (
	metaPrefix = 'k'
	subPrefix  = 's'
)

type keyType byte

const (
	typeString keyType = 0
	typeHash   keyType = 1
	typeSet    keyType = 2

	typeMask  = 0x0f
	hasExpiry = 0x80
	// rawHint marks a string Redis would hold "raw" whatever its value
	// (one changed in place by APPEND or SETRANGE), for OBJECT ENCODING.
	rawHint = 0x40
)

func (t keyType) String() string {
	switch t {
	case typeString:
		return "string"
	case typeHash:
		return "hash"
	case typeSet:
		return "set"
	}
	return "none"
}

// meta is a Redis key's metadata.
type meta struct {
	typ      keyType
	expireAt int64  // unix milliseconds; 0: never
	value    []byte // a string's value
	version  uint64 // a hash's or set's element version
	count    int64  // a hash's or set's element count
	raw      bool   // a string's rawHint
}

var errBadMeta = errors.New("corrupt key metadata")

func metaKey(k []byte) []byte {
	b := make([]byte, 1+len(k))
	b[0] = metaPrefix
	copy(b[1:], k)
	return b
}

// metaRange is the cruzdb key range of every Redis key.
var metaLo, metaHi = []byte{metaPrefix}, []byte{metaPrefix + 1}

// subPrefixOf is the prefix of the elements of key's version.
func subPrefixOf(k []byte, version uint64) []byte {
	b := make([]byte, 0, 1+4+len(k)+8)
	b = append(b, subPrefix)
	b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
	b = append(b, k...)
	return binary.BigEndian.AppendUint64(b, version)
}

func subKey(prefix, field []byte) []byte {
	b := make([]byte, 0, len(prefix)+len(field))
	b = append(b, prefix...)
	return append(b, field...)
}

// parseSubKey splits an element key into its Redis key, version and field.
func parseSubKey(b []byte) (key []byte, version uint64, field []byte, ok bool) {
	if len(b) < 1+4+8 || b[0] != subPrefix {
		return nil, 0, nil, false
	}
	n := int(binary.BigEndian.Uint32(b[1:5]))
	if len(b) < 5+n+8 {
		return nil, 0, nil, false
	}
	return b[5 : 5+n], binary.BigEndian.Uint64(b[5+n : 13+n]), b[13+n:], true
}

func encodeMeta(m meta) []byte {
	return appendMeta(make([]byte, 0, metaLen(m)), m)
}

// appendMeta appends m's encoding to b.
func appendMeta(b []byte, m meta) []byte {
	t := byte(m.typ)
	if m.expireAt != 0 {
		t |= hasExpiry
	}
	if m.raw && m.typ == typeString {
		t |= rawHint
	}
	b = append(b, t)
	if m.expireAt != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(m.expireAt))
	}
	if m.typ == typeString {
		return append(b, m.value...)
	}
	b = binary.BigEndian.AppendUint64(b, m.version)
	return binary.BigEndian.AppendUint64(b, uint64(m.count))
}

func decodeMeta(b []byte) (meta, error) {
	if len(b) == 0 {
		return meta{}, errBadMeta
	}
	m := meta{typ: keyType(b[0] & typeMask), raw: b[0]&rawHint != 0}
	rest := b[1:]
	if b[0]&hasExpiry != 0 {
		if len(rest) < 8 {
			return meta{}, errBadMeta
		}
		m.expireAt = int64(binary.BigEndian.Uint64(rest))
		rest = rest[8:]
	}
	switch m.typ {
	case typeString:
		m.value = rest
	case typeHash, typeSet:
		if len(rest) != 16 {
			return meta{}, errBadMeta
		}
		m.version = binary.BigEndian.Uint64(rest)
		m.count = int64(binary.BigEndian.Uint64(rest[8:]))
	default:
		return meta{}, fmt.Errorf("%w: type %d", errBadMeta, m.typ)
	}
	return m, nil
}

// expired reports whether m's expiry has passed at now (unix ms).
func (m *meta) expired(now int64) bool { return m.expireAt != 0 && m.expireAt <= now }

// replyError is an error whose text is the whole error reply.
type replyError string

func (e replyError) Error() string { return string(e) }

const (
	errWrongType = replyError("WRONGTYPE Operation against a key holding the wrong kind of value")
)

// loadMeta reads key's metadata as of tx. A key whose expiry has passed by
// this server's clock is absent (and queued for deletion); so is a key
// that cannot exist (empty, or too long).
func (c *conn) loadMeta(tx *cruzdb.Txn, key []byte) (meta, bool, error) {
	// The key is built in the connection's scratch buffer: Txn.Get keeps
	// no reference to it (a writable transaction copies it into its read set).
	c.mkey = append(append(c.mkey[:0], metaPrefix), key...)
	v, err := tx.Get(c.mkey)
	if cap(c.mkey) > keepScratch {
		c.mkey = nil
	}
	switch {
	case err == nil:
	case errors.Is(err, cruzdb.ErrNotFound), errors.Is(err, cruzdb.ErrEmptyKey), errors.Is(err, cruzdb.ErrKeyTooLarge):
		return meta{}, false, nil
	default:
		return meta{}, false, err
	}
	m, err := decodeMeta(v)
	if err != nil {
		return meta{}, false, fmt.Errorf("key %q: %w", key, err)
	}
	if m.expireAt != 0 && m.expired(c.s.now()) { // the clock is read only for a key with an expiry
		c.s.expiredSeen(key)
		return meta{}, false, nil
	}
	return m, true, nil
}

// loadTyped is loadMeta for a command on type t: errWrongType if the key
// holds another type.
func (c *conn) loadTyped(tx *cruzdb.Txn, key []byte, t keyType) (meta, bool, error) {
	m, ok, err := c.loadMeta(tx, key)
	if err == nil && ok && m.typ != t {
		return meta{}, false, errWrongType
	}
	return m, ok, err
}

// storeMeta writes key's metadata.
func storeMeta(tx *cruzdb.Txn, key []byte, m meta) error {
	return tx.Put(metaKey(key), encodeMeta(m))
}

// keepScratch is the largest scratch buffer a connection keeps for the
// next command (conn.mkey, conn.mval).
const keepScratch = 4 << 10

// storeMeta is storeMeta with the key and the encoding built in memory
// the connection hands over to the transaction (Txn.PutOwned, no copies):
// small writes are carved out of the connection's owned chunk (see
// ownedBytes), larger ones built in its scratch buffers and copied by
// Txn.Put.
func (c *conn) storeMeta(tx *cruzdb.Txn, key []byte, m meta) error {
	n := metaLen(m)
	if b := c.owned(1 + len(key) + n); b != nil {
		b = append(append(b, metaPrefix), key...)
		k := b[:len(b):len(b)]
		v := appendMeta(b[len(b):len(b)], m)
		return tx.PutOwned(k, v[:len(v):len(v)])
	}
	c.mkey = append(append(c.mkey[:0], metaPrefix), key...)
	c.mval = appendMeta(c.mval[:0], m)
	err := tx.Put(c.mkey, c.mval)
	if cap(c.mval) > keepScratch {
		c.mval = nil
	}
	if cap(c.mkey) > keepScratch {
		c.mkey = nil
	}
	return err
}

const (
	// ownedChunk is the largest chunk a connection carves the keys and
	// values of its small writes out of; ownedMax the largest write (key
	// and value) taken from one; ownedPerCmd what a command's write may
	// take beyond its arguments' bytes (a metadata key's prefix and
	// header, an expiry).
	ownedChunk  = 16 << 10
	ownedMax    = 1 << 10
	ownedPerCmd = 16
)

// owned returns an empty slice with room for n bytes that no one has
// written or will write but its caller, who may hand what it writes
// there to Txn.PutOwned; nil if n is over ownedMax. The bytes come from
// the connection's chunk, allocated for the batch's writes (its
// arguments' bytes: a pipeline of 16 SETs allocates once instead of
// Txn.Put's three times a SET) and dropped after the batch; a chunk goes
// to the collector once the transactions holding its writes are gone.
func (c *conn) owned(n int) []byte {
	if n > ownedMax {
		return nil
	}
	if cap(c.own)-len(c.own) < n {
		c.own = make([]byte, 0, min(max(n, c.ownFor), ownedChunk))
	}
	c.ownFor -= n
	b := c.own[len(c.own) : len(c.own) : len(c.own)+n]
	c.own = c.own[:len(c.own)+n]
	return b
}

// metaLen is the length of m's encoding (appendMeta).
func metaLen(m meta) int {
	n := 1 + len(m.value)
	if m.expireAt != 0 {
		n += 8
	}
	if m.typ != typeString {
		n += 16
	}
	return n
}

// deleteKey removes key (its elements become garbage for the sweeper).
func deleteKey(tx *cruzdb.Txn, key []byte) error {
	return tx.Delete(metaKey(key))
}
