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
			keyCmd("hset", -4, pw, hsetCmd("hset", false)),
			keyCmd("hmset", -4, pw, hsetCmd("hmset", true)),
			keyCmd("hsetnx", 4, pw, cmdHSetNX),
			keyCmd("hget", 3, flagPoint, cmdHGet),
			keyCmd("hmget", -3, flagPoint, cmdHMGet),
			keyCmd("hdel", -3, pw, collDel(typeHash)),
			keyCmd("hlen", 2, flagPoint, collLen(typeHash)),
			keyCmd("hexists", 3, flagPoint, collHas(typeHash)),
			keyCmd("hgetall", 2, flagPoint, hgetAll(true, true)),
			keyCmd("hkeys", 2, flagPoint, hgetAll(true, false)),
			keyCmd("hvals", 2, flagPoint, hgetAll(false, true)),
			keyCmd("hstrlen", 3, flagPoint, cmdHStrlen),
			keyCmd("hincrby", 4, pw, cmdHIncrBy),
			keyCmd("hincrbyfloat", 4, pw, cmdHIncrByFloat),
			keyCmd("hrandfield", -2, flagPoint, cmdHRandField),
			keyCmd("hscan", -3, flagPoint, collScan(typeHash)),
		}
	})
}

func hsetCmd(name string, ok bool) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		if len(args)%2 != 0 {
			c.w.Err(wrongArgs(name))
			return
		}
		c.writeColl(tx, args[1], typeHash, func(h *coll) error {
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
	c.writeColl(tx, args[1], typeHash, func(h *coll) error {
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
	c.writeColl(tx, args[1], typeHash, func(h *coll) error {
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
	c.writeColl(tx, args[1], typeHash, func(h *coll) error {
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
