package main

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/resp"
)

// Hash commands. A hash is a metadata key and one key per field
// (store.go); every command is one transaction.

func init() {
	moreCommands = append(moreCommands, func() []*cmdSpec {
		pw := flagPoint | flagWrite
		return []*cmdSpec{
			{name: "hset", arity: -4, flags: pw, first: 1, last: 1, step: 1, run: hsetCmd("hset", false)},
			{name: "hmset", arity: -4, flags: pw, first: 1, last: 1, step: 1, run: hsetCmd("hmset", true)},
			{name: "hsetnx", arity: 4, flags: pw, first: 1, last: 1, step: 1, run: cmdHSetNX},
			{name: "hget", arity: 3, flags: flagPoint, first: 1, last: 1, step: 1, run: cmdHGet},
			{name: "hmget", arity: -3, flags: flagPoint, first: 1, last: 1, step: 1, run: cmdHMGet},
			{name: "hdel", arity: -3, flags: pw, first: 1, last: 1, step: 1, run: cmdHDel},
			{name: "hlen", arity: 2, flags: flagPoint, first: 1, last: 1, step: 1, run: collLen(typeHash)},
			{name: "hexists", arity: 3, flags: flagPoint, first: 1, last: 1, step: 1, run: cmdHExists},
			{name: "hgetall", arity: 2, flags: flagPoint, first: 1, last: 1, step: 1, run: hgetAll(true, true)},
			{name: "hkeys", arity: 2, flags: flagPoint, first: 1, last: 1, step: 1, run: hgetAll(true, false)},
			{name: "hvals", arity: 2, flags: flagPoint, first: 1, last: 1, step: 1, run: hgetAll(false, true)},
			{name: "hstrlen", arity: 3, flags: flagPoint, first: 1, last: 1, step: 1, run: cmdHStrlen},
			{name: "hincrby", arity: 4, flags: pw, first: 1, last: 1, step: 1, run: cmdHIncrBy},
			{name: "hincrbyfloat", arity: 4, flags: pw, first: 1, last: 1, step: 1, run: cmdHIncrByFloat},
			{name: "hrandfield", arity: -2, flags: flagPoint, first: 1, last: 1, step: 1, run: cmdHRandField},
			{name: "hscan", arity: -3, flags: flagPoint, first: 1, last: 1, step: 1, run: collScan(typeHash)},
		}
	})
}

// hashOp opens key as a hash, runs f and saves it, replying any error.
func (c *conn) hashOp(tx *cruzdb.Txn, key []byte, t keyType, f func(h *coll) error) {
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

func hsetCmd(name string, ok bool) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		if len(args)%2 != 0 {
			c.w.Err(wrongArgs(name))
			return
		}
		c.hashOp(tx, args[1], typeHash, func(h *coll) error {
			added := int64(0)
			for i := 2; i < len(args); i += 2 {
				isNew, err := h.put(tx, args[i], args[i+1])
				if err != nil {
					return err
				}
				if isNew {
					added++
				}
			}
			if ok {
				c.w.OK()
			} else {
				c.w.Int(added)
			}
			return nil
		})
	}
}

func cmdHSetNX(c *conn, tx *cruzdb.Txn, args [][]byte) {
	c.hashOp(tx, args[1], typeHash, func(h *coll) error {
		_, had, err := h.get(tx, args[2])
		if err != nil {
			return err
		}
		if had {
			c.w.Int(0)
			return nil
		}
		if _, err := h.put(tx, args[2], args[3]); err != nil {
			return err
		}
		c.w.Int(1)
		return nil
	})
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

func cmdHGet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	c.readColl(tx, args[1], typeHash, func(h *coll) error {
		v, ok, err := h.get(tx, args[2])
		if err != nil {
			return err
		}
		if ok {
			c.w.Bulk(v)
		} else {
			c.w.Null()
		}
		return nil
	})
}

func cmdHMGet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	c.readColl(tx, args[1], typeHash, func(h *coll) error {
		c.w.ArrayLen(len(args) - 2)
		for _, f := range args[2:] {
			v, ok, err := h.get(tx, f)
			if err != nil {
				return err
			}
			if ok {
				c.w.Bulk(v)
			} else {
				c.w.Null()
			}
		}
		return nil
	})
}

func cmdHDel(c *conn, tx *cruzdb.Txn, args [][]byte) {
	c.hashOp(tx, args[1], typeHash, func(h *coll) error {
		n := int64(0)
		for _, f := range args[2:] {
			ok, err := h.del(tx, f)
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		c.w.Int(n)
		return nil
	})
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

func cmdHExists(c *conn, tx *cruzdb.Txn, args [][]byte) {
	c.readColl(tx, args[1], typeHash, func(h *coll) error {
		_, ok, err := h.get(tx, args[2])
		if err != nil {
			return err
		}
		c.w.Int(b2i(ok))
		return nil
	})
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func hgetAll(fields, values bool) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		c.readColl(tx, args[1], typeHash, func(h *coll) error {
			fs, vs, err := h.all(tx)
			if err != nil {
				return err
			}
			n := len(fs)
			if fields && values {
				n *= 2
			}
			c.w.ArrayLen(n)
			for i := range fs {
				if fields {
					c.w.Bulk(fs[i])
				}
				if values {
					c.w.Bulk(vs[i])
				}
			}
			return nil
		})
	}
}

func cmdHStrlen(c *conn, tx *cruzdb.Txn, args [][]byte) {
	c.readColl(tx, args[1], typeHash, func(h *coll) error {
		v, _, err := h.get(tx, args[2])
		if err != nil {
			return err
		}
		c.w.Int(int64(len(v)))
		return nil
	})
}

func cmdHIncrBy(c *conn, tx *cruzdb.Txn, args [][]byte) {
	d, ok := resp.ParseInt(args[3])
	if !ok {
		c.w.Err(errNotInt)
		return
	}
	c.hashOp(tx, args[1], typeHash, func(h *coll) error {
		old, had, err := h.get(tx, args[2])
		if err != nil {
			return err
		}
		var v int64
		if had {
			if v, ok = resp.ParseInt(old); !ok {
				return replyError("ERR hash value is not an integer")
			}
		}
		if (d > 0 && v > math.MaxInt64-d) || (d < 0 && v < math.MinInt64-d) {
			return replyError(errOverflow)
		}
		v += d
		if _, err := h.put(tx, args[2], strconv.AppendInt(nil, v, 10)); err != nil {
			return err
		}
		c.w.Int(v)
		return nil
	})
}

func cmdHIncrByFloat(c *conn, tx *cruzdb.Txn, args [][]byte) {
	d, ok := parseLongDouble(args[3])
	if !ok {
		c.w.Err(errNotFloat)
		return
	}
	if d.IsInf() {
		c.w.Err("ERR value is NaN or Infinity")
		return
	}
	c.hashOp(tx, args[1], typeHash, func(h *coll) error {
		old, had, err := h.get(tx, args[2])
		if err != nil {
			return err
		}
		cur := new(big.Float).SetPrec(longDoublePrec)
		if had {
			if cur, ok = parseLongDouble(old); !ok {
				return replyError("ERR hash value is not a float")
			}
		}
		s, ok := addLongDouble(cur, d)
		if !ok {
			return replyError("ERR increment would produce NaN or Infinity")
		}
		if _, err := h.put(tx, args[2], []byte(s)); err != nil {
			return err
		}
		c.w.BulkString(s)
		return nil
	})
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

func cmdHRandField(c *conn, tx *cruzdb.Txn, args [][]byte) {
	withValues := false
	var count int64
	hasCount := len(args) >= 3
	if hasCount {
		var ok bool
		if count, ok = resp.ParseInt(args[2]); !ok {
			c.w.Err(errNotInt)
			return
		}
		if len(args) == 4 && eqFold(args[3], "withvalues") {
			withValues = true
		} else if len(args) > 3 {
			c.w.Err(errSyntax)
			return
		}
		if count < -math.MaxInt64/2 || count > math.MaxInt64/2 {
			c.w.Err("ERR value is out of range")
			return
		}
	}
	c.readColl(tx, args[1], typeHash, func(h *coll) error {
		if !hasCount {
			fs, _, err := h.all(tx)
			if err != nil {
				return err
			}
			if len(fs) == 0 {
				c.w.Null()
			} else {
				c.w.Bulk(fs[rand.IntN(len(fs))])
			}
			return nil
		}
		fs, vs, err := h.all(tx)
		if err != nil {
			return err
		}
		if len(fs) == 0 {
			c.w.ArrayLen(0)
			return nil
		}
		pick := randomPick(len(fs), count)
		if withValues {
			c.w.ArrayLen(2 * len(pick))
		} else {
			c.w.ArrayLen(len(pick))
		}
		for _, i := range pick {
			c.w.Bulk(fs[i])
			if withValues {
				c.w.Bulk(vs[i])
			}
		}
		return nil
	})
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
