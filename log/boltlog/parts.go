package boltlog

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cruzlog/cruzdb/log"
	bolt "go.etcd.io/bbolt"
)

// partSize is the largest value of an entry's key in a file of pageSize
// pages: two such elements fill a leaf page exactly (16-byte page header,
// 16-byte element headers, part keys). bbolt copies a dirty leaf whole into
// new pages at every commit, and a leaf holds at least two elements however
// large they are, so an entry stored as one value of 100 KB would be written
// again by the next commit or two that append after it (about 8 bytes
// written per byte appended, one append per commit); in parts, only the
// last, partly filled leaf is written again.
func partSize(pageSize int) int { return (pageSize-16)/2 - 16 - partKeySize }

// partKey is the key of part i (from 1) of the entry at p.
func partKey(dst []byte, p uint64, i uint32) []byte {
	return binary.BigEndian.AppendUint32(posKey(dst, p), i)
}

// ReadRange implements log.RangeReader: of an entry stored in parts, it
// reads only the parts that hold the range.
func (l *Log) ReadRange(ctx context.Context, pos log.Position, off, n int) ([]byte, int, error) {
	if off < 0 || n < 0 {
		return nil, 0, fmt.Errorf("boltlog: read position %d: range of %d bytes at %d", pos, n, off)
	}
	var out []byte
	var size int
	err := l.view(ctx, pos, func(b *bolt.Bucket, v []byte) (err error) {
		if v[0] == tagData {
			data := v[1:]
			size = len(data)
			lo := min(off, size)
			out = append([]byte{}, data[lo:lo+min(n, size-lo)]...)
			return nil
		}
		out, size, err = l.readPartsRange(b, uint64(pos), v, off, n)
		return err
	})
	return out, size, err
}

// partsSize returns the length of the parted entry at pos whose first value
// is head.
func partsSize(pos uint64, head []byte) (int, error) {
	if len(head) < partsHeader {
		return 0, fmt.Errorf("boltlog: read position %d: corrupt entry (parted entry head of %d bytes)", pos, len(head))
	}
	n := int(binary.BigEndian.Uint32(head[1:partsHeader]))
	if n > log.MaxEntrySize || n < len(head)-partsHeader {
		return 0, fmt.Errorf("boltlog: read position %d: corrupt entry (parted entry of %d bytes with a head of %d)", pos, n, len(head))
	}
	return n, nil
}

// readPartsRange copies bytes [off, off+n) of the parted entry at pos whose
// first value is head, reading only the parts that hold them (every part
// but the last is l.part bytes), and returns them and the entry's length.
func (l *Log) readPartsRange(b *bolt.Bucket, pos uint64, head []byte, off, n int) ([]byte, int, error) {
	size, err := partsSize(pos, head)
	if err != nil {
		return nil, 0, err
	}
	lo := min(off, size)
	hi := lo + min(n, size-lo)
	out := make([]byte, 0, hi-lo)
	first := len(head) - partsHeader // bytes of the entry in the head
	if lo < first {
		out = append(out, head[partsHeader+lo:partsHeader+min(hi, first)]...)
	}
	if hi <= first {
		return out, size, nil
	}
	i := uint32(1 + (max(lo, first)-first)/l.part)
	at := first + int(i-1)*l.part // where part i starts in the entry
	var kb [partKeySize]byte
	c := b.Cursor()
	k, v := c.Seek(partKey(kb[:0], pos, i))
	for ; at < hi; i++ {
		if len(k) != partKeySize || binary.BigEndian.Uint64(k) != pos || binary.BigEndian.Uint32(k[posKeySize:]) != i {
			return nil, 0, fmt.Errorf("boltlog: read position %d: corrupt entry (part %d of a %d-byte entry missing)", pos, i, size)
		}
		if end := at + len(v); end > size || (len(v) != l.part && end != size) {
			return nil, 0, fmt.Errorf("boltlog: read position %d: corrupt entry (part %d of %d bytes at byte %d of a %d-byte entry, parts of %d)", pos, i, len(v), at, size, l.part)
		}
		s, e := max(lo, at)-at, min(hi, at+len(v))-at
		if s < e {
			out = append(out, v[s:e]...)
		}
		at += len(v)
		k, v = c.Next()
	}
	return out, size, nil
}

// putEntry writes data at pos, whole or in parts, taking keys (and the head's
// value) from buf, which must have room for them: Put keeps references
// until the commit. It returns buf extended by what it used.
func (l *Log) putEntry(entries, meta *bolt.Bucket, buf []byte, pos uint64, data []byte) ([]byte, error) {
	start := len(buf)
	buf = posKey(buf, pos)
	key := buf[start:len(buf):len(buf)]
	start = len(buf)
	if 1+len(data) <= l.part {
		buf = append(buf, tagData)
		buf = append(buf, data...)
		return buf, entries.Put(key, buf[start:len(buf):len(buf)])
	}
	if l.version < formatVersion {
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], formatVersion)
		if err := meta.Put(keyVersion, v[:]); err != nil {
			return buf, err
		}
		l.version = formatVersion // if the commit fails, the log refuses writes until reopened
	}
	first := l.part - partsHeader
	buf = append(buf, tagParts)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(data)))
	buf = append(buf, data[:first]...)
	if err := entries.Put(key, buf[start:len(buf):len(buf)]); err != nil {
		return buf, err
	}
	for i, off := uint32(1), first; off < len(data); i, off = i+1, off+l.part {
		start = len(buf)
		buf = partKey(buf, pos, i)
		if err := entries.Put(buf[start:len(buf):len(buf)], data[off:min(off+l.part, len(data)):min(off+l.part, len(data))]); err != nil {
			return buf, err
		}
	}
	return buf, nil
}
