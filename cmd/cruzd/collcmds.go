package main

import (
	"math/rand/v2"

	"github.com/cruzlog/cruzdb"
)

// What hash and set commands share: a hash and a set are both a metadata
// key and one key per element (store.go), opened as a coll; every command
// is one transaction.

// writeColl opens key as a collection of type t, runs f and saves it,
// replying any error.
func (c *conn) writeColl(tx *cruzdb.Txn, key []byte, t keyType, f func(h *coll) error) {
	h, err := c.openColl(tx, key, t)
	if err == nil {
		mark := len(c.w.B)
		if err = f(h); err == nil {
			if err = h.save(tx); err != nil {
				c.w.B = c.w.B[:mark]
			}
		}
	}
	if err != nil {
		c.w.Err(writeErrText(err))
	}
}

// readColl opens key as a collection of type t for reading.
func (c *conn) readColl(tx *cruzdb.Txn, key []byte, t keyType, f func(h *coll) error) {
	h, err := c.openColl(tx, key, t)
	if err == nil {
		mark := len(c.w.B)
		if err = f(h); err != nil {
			c.w.B = c.w.B[:mark]
		}
	}
	if err != nil {
		c.w.Err(errText(err))
	}
}

// collLen is HLEN and SCARD.
func collLen(t keyType) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		c.readColl(tx, args[1], t, func(h *coll) error {
			c.w.Int(h.m.count)
			return nil
		})
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// randomPick is SRANDMEMBER's and HRANDFIELD's choice of n indexes among
// size: distinct if n >= 0 (at most size), with repeats if n < 0.
func randomPick(size int, n int64) []int {
	if n < 0 {
		out := make([]int, -n)
		for i := range out {
			out[i] = rand.IntN(size)
		}
		return out
	}
	if n >= int64(size) {
		out := make([]int, size)
		for i := range out {
			out[i] = i
		}
		return out
	}
	perm := rand.Perm(size)[:n]
	return perm
}

// collScan is HSCAN and SSCAN: key cursor [MATCH pattern] [COUNT n]; the
// cursor is a field, as SCAN's is a key.
func collScan(t keyType) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		cur, ok := parseCursor(args[2])
		if !ok {
			c.w.Err("ERR invalid cursor")
			return
		}
		pat, count, _, msg := parseScanOpts(args[3:], false)
		if msg != "" {
			c.w.Err(msg)
			return
		}
		from, ok := c.s.cursors.decode(cur)
		if !ok {
			c.w.Err("ERR invalid cursor")
			return
		}
		c.readColl(tx, args[1], t, func(h *coll) error {
			var out [][]byte
			var next []byte
			examined := int64(0)
			lo := h.prefix
			if from != nil {
				lo = subKey(h.prefix, from)
			}
			if h.exists {
				for k, v := range tx.Range(lo, prefixEnd(h.prefix)) {
					f := k[len(h.prefix):]
					if examined == count {
						next = f
						break
					}
					examined++
					if pat == nil || globMatch(pat, f) {
						out = append(out, f)
						if t == typeHash {
							out = append(out, v)
						}
					}
				}
				if err := tx.Err(); err != nil {
					return err
				}
			}
			c.scanReply(next, out)
			return nil
		})
	}
}

func (c *conn) bulkArray(items [][]byte) {
	c.w.ArrayLen(len(items))
	for _, it := range items {
		c.w.Bulk(it)
	}
}

// collDel is HDEL and SREM: it deletes the elements named and replies how
// many there were.
func collDel(t keyType) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		c.writeColl(tx, args[1], t, func(h *coll) error {
			n := int64(0)
			for _, f := range args[2:] {
				ok, err := h.del(tx, f)
				if err != nil {
					return err
				}
				n += b2i(ok)
			}
			c.w.Int(n)
			return nil
		})
	}
}

// collHas is HEXISTS and SISMEMBER: 1 if the element is there, else 0.
func collHas(t keyType) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		c.readColl(tx, args[1], t, func(h *coll) error {
			_, ok, err := h.get(tx, args[2])
			if err != nil {
				return err
			}
			c.w.Int(b2i(ok))
			return nil
		})
	}
}
