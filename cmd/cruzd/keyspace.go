package main

import (
	"bytes"
	"strconv"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/resp"
)

// withTxn runs f in tx, or in a read-only transaction of its own if tx is
// nil, replying an error if that cannot begin.
func (c *conn) withTxn(tx *cruzdb.Txn, f func(tx *cruzdb.Txn) error) {
	if tx != nil {
		if err := f(tx); err != nil {
			c.w.Err(errText(err))
		}
		return
	}
	mark := len(c.w.B)
	err := c.s.db.View(c.s.ctx, f)
	if err != nil {
		c.w.B = c.w.B[:mark]
		c.w.Err(errText(err))
	}
}

func cmdDBSize(c *conn, tx *cruzdb.Txn, _ [][]byte) {
	c.withTxn(tx, func(tx *cruzdb.Txn) error {
		n, _, err := countKeys(tx)
		if err != nil {
			return err
		}
		c.w.Int(n)
		return nil
	})
}

// countKeys counts the Redis keys of tx's snapshot (expired ones not yet
// deleted included, as Redis's DBSIZE does) and those with an expiry. It
// walks them all.
func countKeys(tx *cruzdb.Txn) (n, expires int64, err error) {
	for _, v := range tx.Range(metaLo, metaHi) {
		n++
		if len(v) > 0 && v[0]&hasExpiry != 0 {
			expires++
		}
	}
	return n, expires, tx.Err()
}

// keyRange is the cruzdb range of the Redis keys starting with prefix.
func keyRange(prefix []byte) (lo, hi []byte) {
	if len(prefix) == 0 {
		return metaLo, metaHi
	}
	lo = metaKey(prefix)
	return lo, prefixEnd(lo)
}

func cmdKeys(c *conn, tx *cruzdb.Txn, args [][]byte) {
	pat := args[1]
	lo, hi := keyRange(literalPrefix(pat))
	all := len(pat) == 1 && pat[0] == '*'
	now := c.s.now()
	c.withTxn(tx, func(tx *cruzdb.Txn) error {
		var keys [][]byte
		for mk, v := range tx.Range(lo, hi) {
			k := mk[1:]
			if (all || globMatch(pat, k)) && !metaExpired(v, now) {
				keys = append(keys, k)
			}
		}
		if err := tx.Err(); err != nil {
			return err
		}
		c.w.ArrayLen(len(keys))
		for _, k := range keys {
			c.w.Bulk(k)
		}
		return nil
	})
}

// metaExpired reports whether encoded metadata has an expiry at or before
// now, without decoding the rest.
func metaExpired(v []byte, now int64) bool {
	if len(v) < 9 || v[0]&hasExpiry == 0 {
		return false
	}
	m, err := decodeMeta(v)
	return err == nil && m.expired(now)
}

func cmdScan(c *conn, tx *cruzdb.Txn, args [][]byte) {
	cur, ok := parseCursor(args[1])
	if !ok {
		c.w.Err("ERR invalid cursor")
		return
	}
	pat, count, typeArg, msg := parseScanOpts(args[2:], true)
	if msg != "" {
		c.w.Err(msg)
		return
	}
	wantType := keyType(0xff) // any
	if typeArg != nil {
		wantType = 0xfe // a type no key has
		for _, t := range []keyType{typeString, typeHash, typeSet} {
			if eqFold(typeArg, t.String()) {
				wantType = t
			}
		}
	}
	from, ok := c.s.cursors.decode(cur)
	if !ok {
		c.w.Err("ERR invalid cursor")
		return
	}
	lo, hi := keyRange(literalPrefix(pat))
	if from != nil {
		if fk := metaKey(from); bytes.Compare(lo, fk) < 0 {
			lo = fk
		}
	}
	now := c.s.now()
	c.withTxn(tx, func(tx *cruzdb.Txn) error {
		var keys [][]byte
		var next []byte
		examined := int64(0)
		for mk, v := range tx.Range(lo, hi) {
			k := mk[1:]
			if examined == count {
				next = k
				break
			}
			examined++
			if wantType != 0xff && (len(v) == 0 || keyType(v[0]&typeMask) != wantType) {
				continue
			}
			if (pat == nil || globMatch(pat, k)) && !metaExpired(v, now) {
				keys = append(keys, k)
			}
		}
		if err := tx.Err(); err != nil {
			return err
		}
		c.scanReply(next, keys)
		return nil
	})
}

// parseScanOpts parses SCAN's (withType) or HSCAN's and SSCAN's options:
// MATCH pattern, COUNT n, TYPE name. msg is the error reply, if any.
func parseScanOpts(opts [][]byte, withType bool) (pat []byte, count int64, typeArg []byte, msg string) {
	count = 10
	for i := 0; i < len(opts); i += 2 {
		if i+1 >= len(opts) {
			return nil, 0, nil, errSyntax
		}
		switch v := opts[i+1]; {
		case eqFold(opts[i], "match"):
			pat = v
		case eqFold(opts[i], "count"):
			n, ok := resp.ParseInt(v)
			if !ok {
				return nil, 0, nil, errNotInt
			}
			if n < 1 {
				return nil, 0, nil, errSyntax
			}
			count = n
		case withType && eqFold(opts[i], "type"):
			typeArg = v
		default:
			return nil, 0, nil, errSyntax
		}
	}
	return pat, count, typeArg, ""
}

// scanReply is a SCAN-family reply: the cursor of next (0 at the end) and
// the items.
func (c *conn) scanReply(next []byte, items [][]byte) {
	c.w.ArrayLen(2)
	var nb [20]byte
	c.w.Bulk(strconv.AppendUint(nb[:0], c.s.cursors.encode(next), 10))
	c.bulkArray(items)
}
