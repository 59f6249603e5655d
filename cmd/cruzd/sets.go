package main

import (
	"math/rand/v2"
	"slices"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/resp"
)

// Set commands. A set is a metadata key and one key per member, whose value
// is empty (store.go); every command is one transaction.

func init() {
	moreCommands = append(moreCommands, func() []*cmdSpec {
		pw := flagPoint | flagWrite
		return []*cmdSpec{
			keyCmd("sadd", -3, pw, cmdSAdd),
			keyCmd("srem", -3, pw, collDel(typeSet)),
			keyCmd("sismember", 3, flagPoint, collHas(typeSet)),
			keyCmd("smismember", -3, flagPoint, cmdSMIsMember),
			keyCmd("scard", 2, flagPoint, collLen(typeSet)),
			keyCmd("smembers", 2, flagPoint, cmdSMembers),
			keyCmd("spop", -2, pw, cmdSPop),
			keyCmd("srandmember", -2, flagPoint, cmdSRandMember),
			{name: "smove", arity: 4, flags: pw, first: 1, last: 2, step: 1, run: cmdSMove},
			{name: "sinter", arity: -2, flags: flagPoint, first: 1, last: -1, step: 1, run: setAlgebra(opInter, false)},
			{name: "sunion", arity: -2, flags: flagPoint, first: 1, last: -1, step: 1, run: setAlgebra(opUnion, false)},
			{name: "sdiff", arity: -2, flags: flagPoint, first: 1, last: -1, step: 1, run: setAlgebra(opDiff, false)},
			{name: "sinterstore", arity: -3, flags: pw, first: 1, last: -1, step: 1, run: setAlgebra(opInter, true)},
			{name: "sunionstore", arity: -3, flags: pw, first: 1, last: -1, step: 1, run: setAlgebra(opUnion, true)},
			{name: "sdiffstore", arity: -3, flags: pw, first: 1, last: -1, step: 1, run: setAlgebra(opDiff, true)},
			{name: "sintercard", arity: -3, flags: flagPoint, first: 2, last: -1, step: 1, run: cmdSInterCard},
			keyCmd("sscan", -3, flagPoint, collScan(typeSet)),
		}
	})
}

func cmdSAdd(c *conn, tx *cruzdb.Txn, args [][]byte) {
	c.writeColl(tx, args[1], typeSet, func(h *coll) error {
		n := int64(0)
		for _, m := range args[2:] {
			added, err := h.add(tx, m)
			if err != nil {
				return err
			}
			n += b2i(added)
		}
		c.w.Int(n)
		return nil
	})
}

func cmdSMIsMember(c *conn, tx *cruzdb.Txn, args [][]byte) {
	c.readColl(tx, args[1], typeSet, func(h *coll) error {
		c.w.ArrayLen(len(args) - 2)
		for _, m := range args[2:] {
			_, ok, err := h.get(tx, m)
			if err != nil {
				return err
			}
			c.w.Int(b2i(ok))
		}
		return nil
	})
}

func cmdSMembers(c *conn, tx *cruzdb.Txn, args [][]byte) {
	c.readColl(tx, args[1], typeSet, func(h *coll) error {
		ms, _, err := h.all(tx)
		if err != nil {
			return err
		}
		c.bulkArray(ms)
		return nil
	})
}

func cmdSPop(c *conn, tx *cruzdb.Txn, args [][]byte) {
	count, hasCount := int64(1), len(args) == 3
	if len(args) > 3 {
		c.w.Err(errSyntax)
		return
	}
	if hasCount {
		n, ok := resp.ParseInt(args[2])
		if !ok || n < 0 {
			c.w.Err("ERR value is out of range, must be positive")
			return
		}
		count = n
	}
	c.writeColl(tx, args[1], typeSet, func(h *coll) error {
		if !h.exists {
			if hasCount {
				c.w.ArrayLen(0)
			} else {
				c.w.Null()
			}
			return nil
		}
		ms, _, err := h.all(tx)
		if err != nil {
			return err
		}
		pick := randomPick(len(ms), count)
		popped := make([][]byte, 0, len(pick))
		for _, i := range pick {
			if _, err := h.del(tx, ms[i]); err != nil {
				return err
			}
			popped = append(popped, ms[i])
		}
		if hasCount {
			c.bulkArray(popped)
		} else {
			c.w.Bulk(popped[0])
		}
		return nil
	})
}

func cmdSRandMember(c *conn, tx *cruzdb.Txn, args [][]byte) {
	var count int64
	hasCount := len(args) == 3
	if len(args) > 3 {
		c.w.Err(errSyntax)
		return
	}
	if hasCount {
		n, ok := resp.ParseInt(args[2])
		if !ok {
			c.w.Err(errNotInt)
			return
		}
		if n < -(1<<62) || n > 1<<62 {
			c.w.Err("ERR value is out of range")
			return
		}
		count = n
	}
	c.readColl(tx, args[1], typeSet, func(h *coll) error {
		ms, _, err := h.all(tx)
		if err != nil {
			return err
		}
		switch {
		case !hasCount && len(ms) == 0:
			c.w.Null()
		case !hasCount:
			c.w.Bulk(ms[rand.IntN(len(ms))])
		case len(ms) == 0:
			c.w.ArrayLen(0)
		default:
			pick := randomPick(len(ms), count)
			c.w.ArrayLen(len(pick))
			for _, i := range pick {
				c.w.Bulk(ms[i])
			}
		}
		return nil
	})
}

func cmdSMove(c *conn, tx *cruzdb.Txn, args [][]byte) {
	_, srcExists, err := c.loadMeta(tx, args[1])
	if err != nil || !srcExists {
		if err != nil {
			c.w.Err(errText(err))
		} else {
			c.w.Int(0)
		}
		return
	}
	src, err := c.openColl(tx, args[1], typeSet)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	dst, err := c.openColl(tx, args[2], typeSet)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	member := args[3]
	_, ok, err := src.get(tx, member)
	if err != nil || !ok {
		if err != nil {
			c.w.Err(errText(err))
		} else {
			c.w.Int(0)
		}
		return
	}
	if string(args[1]) == string(args[2]) {
		c.w.Int(1)
		return
	}
	_, err = src.del(tx, member)
	if err == nil {
		_, err = dst.add(tx, member)
	}
	if err == nil {
		err = src.save(tx)
	}
	if err == nil {
		err = dst.save(tx)
	}
	if err != nil {
		c.w.Err(writeErrText(err))
		return
	}
	c.w.Int(1)
}

const (
	opInter = iota
	opUnion
	opDiff
)

// members reads every member of each key, as sets (errWrongType for a key
// of another type); a missing key is an empty set.
func (c *conn) members(tx *cruzdb.Txn, keys [][]byte) ([][][]byte, error) {
	out := make([][][]byte, len(keys))
	for i, k := range keys {
		h, err := c.openColl(tx, k, typeSet)
		if err != nil {
			return nil, err
		}
		if out[i], _, err = h.all(tx); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// combine computes the intersection, union or difference of sorted sets.
func combine(op int, sets [][][]byte) [][]byte {
	if len(sets) == 0 {
		return nil
	}
	in := func(set [][]byte, m []byte) bool {
		_, ok := slices.BinarySearchFunc(set, m, func(a, b []byte) int { return compareBytes(a, b) })
		return ok
	}
	var out [][]byte
	switch op {
	case opUnion:
		seen := map[string]bool{}
		for _, s := range sets {
			for _, m := range s {
				if !seen[string(m)] {
					seen[string(m)] = true
					out = append(out, m)
				}
			}
		}
		slices.SortFunc(out, compareBytes)
	case opInter:
	outer:
		for _, m := range sets[0] {
			for _, s := range sets[1:] {
				if !in(s, m) {
					continue outer
				}
			}
			out = append(out, m)
		}
	default:
	diff:
		for _, m := range sets[0] {
			for _, s := range sets[1:] {
				if in(s, m) {
					continue diff
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func compareBytes(a, b []byte) int {
	switch {
	case string(a) < string(b):
		return -1
	case string(a) > string(b):
		return 1
	}
	return 0
}

func setAlgebra(op int, store bool) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		keys := args[1:]
		if store {
			keys = args[2:]
		}
		sets, err := c.members(tx, keys)
		if err != nil {
			c.w.Err(errText(err))
			return
		}
		res := combine(op, sets)
		if !store {
			c.bulkArray(res)
			return
		}
		if err := c.storeSet(tx, args[1], res); err != nil {
			c.w.Err(writeErrText(err))
			return
		}
		c.w.Int(int64(len(res)))
	}
}

// storeSet overwrites key (of any type) with a set of members; none
// deletes it.
func (c *conn) storeSet(tx *cruzdb.Txn, key []byte, members [][]byte) error {
	if len(members) == 0 {
		return deleteKey(tx, key)
	}
	if len(key) > maxRedisKey || len(key) == 0 {
		return checkKeyErr(key)
	}
	h := &coll{key: key, m: meta{typ: typeSet, version: newVersion()}, exists: true}
	h.prefix = subPrefixOf(key, h.m.version)
	for _, m := range members {
		if err := tx.Put(subKey(h.prefix, m), nil); err != nil {
			return err
		}
	}
	h.m.count = int64(len(members))
	return storeMeta(tx, key, h.m)
}

// SINTERCARD numkeys key [key ...] [LIMIT limit]
func cmdSInterCard(c *conn, tx *cruzdb.Txn, args [][]byte) {
	n, ok := resp.ParseInt(args[1])
	if !ok || n <= 0 {
		c.w.Err("ERR numkeys should be greater than 0")
		return
	}
	if n > int64(len(args)-2) {
		c.w.Err("ERR Number of keys can't be greater than number of args")
		return
	}
	keys := args[2 : 2+n]
	limit := int64(0)
	for i := 2 + int(n); i < len(args); i++ {
		if eqFold(args[i], "limit") && i+1 < len(args) {
			i++
			l, ok := resp.ParseInt(args[i])
			if !ok || l < 0 {
				c.w.Err("ERR LIMIT can't be negative")
				return
			}
			limit = l
			continue
		}
		c.w.Err(errSyntax)
		return
	}
	sets, err := c.members(tx, keys)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	res := int64(len(combine(opInter, sets)))
	if limit > 0 {
		res = min(res, limit)
	}
	c.w.Int(res)
}
