package main

import (
	"bytes"
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/resp"
)

// Keyspace and string commands beyond the first set: RENAME, COPY, GETDEL,
// MSETNX, RANDOMKEY, UNLINK, TOUCH, SETRANGE, GETRANGE, SUBSTR,
// INCRBYFLOAT, OBJECT, FLUSHALL, FLUSHDB.

func init() {
	moreCommands = append(moreCommands, func() []*cmdSpec {
		pw := flagPoint | flagWrite
		return []*cmdSpec{
			{name: "rename", arity: 3, flags: pw, first: 1, last: 2, step: 1, run: cmdRename},
			{name: "renamenx", arity: 3, flags: pw, first: 1, last: 2, step: 1, run: cmdRenameNX},
			{name: "copy", arity: -3, flags: pw, first: 1, last: 2, step: 1, run: cmdCopy},
			keyCmd("getdel", 2, pw, cmdGetDel),
			{name: "msetnx", arity: -3, flags: pw, first: 1, last: -1, step: 2, run: cmdMSetNX},
			{name: "unlink", arity: -2, flags: pw, first: 1, last: -1, step: 1, run: cmdDel},
			{name: "touch", arity: -2, flags: flagPoint, first: 1, last: -1, step: 1, run: cmdExists},
			keyCmd("setrange", 4, pw, cmdSetRange),
			keyCmd("getrange", 4, flagPoint, cmdGetRange),
			keyCmd("substr", 4, flagPoint, cmdGetRange),
			keyCmd("incrbyfloat", 3, pw, cmdIncrByFloat),
			{name: "object", arity: -2, flags: flagPoint, first: 2, last: 2, step: 1, run: cmdObject},
			{name: "randomkey", arity: 1, run: cmdRandomKey},
			{name: "flushall", arity: -1, flags: flagWrite, run: cmdFlush},
			{name: "flushdb", arity: -1, flags: flagWrite, run: cmdFlush},
		}
	})
}

const errNoSuchKey = "ERR no such key"

// newVersion is a fresh element version for a new hash or set: random, so
// that it differs from every version whose elements may still await the
// sweeper.
func newVersion() uint64 { return rand.Uint64() | 1 }

// copyKey writes src's value (metadata m) to dst with a new element
// version, copying a hash's or set's elements.
func copyKey(tx *cruzdb.Txn, src, dst []byte, m meta) error {
	if m.typ == typeString {
		return storeMeta(tx, dst, m)
	}
	from := subPrefixOf(src, m.version)
	nm := m
	nm.version = newVersion()
	to := subPrefixOf(dst, nm.version)
	for k, v := range tx.Range(from, prefixEnd(from)) {
		if err := tx.Put(subKey(to, k[len(from):]), v); err != nil {
			return err
		}
	}
	if err := tx.Err(); err != nil {
		return err
	}
	return storeMeta(tx, dst, nm)
}

func rename(c *conn, tx *cruzdb.Txn, args [][]byte, nx bool) {
	src, dst := args[1], args[2]
	m, ok, err := c.loadMeta(tx, src)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	if !ok {
		c.w.Err(errNoSuchKey)
		return
	}
	if bytes.Equal(src, dst) {
		if nx {
			c.w.Int(0)
		} else {
			c.w.OK()
		}
		return
	}
	if nx {
		_, exists, err := c.loadMeta(tx, dst)
		if err != nil {
			c.w.Err(errText(err))
			return
		}
		if exists {
			c.w.Int(0)
			return
		}
	}
	if msg := checkWrite(dst, nil); msg != "" {
		c.w.Err(msg)
		return
	}
	err = copyKey(tx, src, dst, m)
	if err == nil {
		err = deleteKey(tx, src)
	}
	if err != nil {
		c.w.Err(writeErrText(err))
		return
	}
	if nx {
		c.w.Int(1)
	} else {
		c.w.OK()
	}
}

func cmdRename(c *conn, tx *cruzdb.Txn, args [][]byte)   { rename(c, tx, args, false) }
func cmdRenameNX(c *conn, tx *cruzdb.Txn, args [][]byte) { rename(c, tx, args, true) }

func cmdCopy(c *conn, tx *cruzdb.Txn, args [][]byte) {
	src, dst := args[1], args[2]
	replace := false
	for i := 3; i < len(args); i++ {
		switch {
		case eqFold(args[i], "replace"):
			replace = true
		case eqFold(args[i], "db") && i+1 < len(args):
			i++
			n, ok := resp.ParseInt(args[i])
			if !ok {
				c.w.Err(errNotInt)
				return
			}
			if n != 0 {
				c.w.Err("ERR DB index is out of range")
				return
			}
		default:
			c.w.Err(errSyntax)
			return
		}
	}
	if bytes.Equal(src, dst) {
		c.w.Err("ERR source and destination objects are the same")
		return
	}
	m, ok, err := c.loadMeta(tx, src)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	if !ok {
		c.w.Int(0)
		return
	}
	_, exists, err := c.loadMeta(tx, dst)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	if exists && !replace {
		c.w.Int(0)
		return
	}
	if msg := checkWrite(dst, nil); msg != "" {
		c.w.Err(msg)
		return
	}
	if err := copyKey(tx, src, dst, m); err != nil {
		c.w.Err(writeErrText(err))
		return
	}
	c.w.Int(1)
}

func cmdGetDel(c *conn, tx *cruzdb.Txn, args [][]byte) {
	v, ok, err := c.getString(tx, args[1])
	switch {
	case err != nil:
		c.w.Err(errText(err))
	case !ok:
		c.w.Null()
	default:
		if err := deleteKey(tx, args[1]); err != nil {
			c.w.Err(errText(err))
			return
		}
		c.w.Bulk(v)
	}
}

func cmdMSetNX(c *conn, tx *cruzdb.Txn, args [][]byte) {
	if len(args)%2 != 1 {
		c.w.Err(wrongArgs("msetnx"))
		return
	}
	for i := 1; i < len(args); i += 2 {
		if msg := checkWrite(args[i], args[i+1]); msg != "" {
			c.w.Err(msg)
			return
		}
	}
	for i := 1; i < len(args); i += 2 {
		_, exists, err := c.loadMeta(tx, args[i])
		if err != nil {
			c.w.Err(errText(err))
			return
		}
		if exists {
			c.w.Int(0)
			return
		}
	}
	for i := 1; i < len(args); i += 2 {
		if !putString(c, tx, args[i], args[i+1], 0) {
			return
		}
	}
	c.w.Int(1)
}

const maxStringSize = 512 << 20 // Redis's proto-max-bulk-len default

func cmdSetRange(c *conn, tx *cruzdb.Txn, args [][]byte) {
	off, ok := resp.ParseInt(args[2])
	if !ok {
		c.w.Err(errNotInt)
		return
	}
	if off < 0 {
		c.w.Err("ERR offset is out of range")
		return
	}
	val := args[3]
	m, exists, err := c.loadTyped(tx, args[1], typeString)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	if len(val) == 0 {
		c.w.Int(int64(len(m.value)))
		return
	}
	if off > maxStringSize-int64(len(val)) {
		c.w.Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
		return
	}
	if !exists {
		m = meta{typ: typeString}
	}
	n := max(int64(len(m.value)), off+int64(len(val)))
	if n > maxRedisValue {
		c.w.Err(checkWrite(args[1], make([]byte, n)))
		return
	}
	v := make([]byte, n)
	copy(v, m.value)
	copy(v[off:], val)
	m.value, m.raw = v, true // Redis changes the string in place
	if err := storeMeta(tx, args[1], m); err != nil {
		c.w.Err(writeErrText(err))
		return
	}
	c.w.Int(n)
}

func cmdGetRange(c *conn, tx *cruzdb.Txn, args [][]byte) {
	start, ok1 := resp.ParseInt(args[2])
	end, ok2 := resp.ParseInt(args[3])
	if !ok1 || !ok2 {
		c.w.Err(errNotInt)
		return
	}
	v, _, err := c.getString(tx, args[1])
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	c.w.Bulk(strRange(v, start, end))
}

// strRange is GETRANGE's substring: negative indexes count from the end,
// both ends inclusive and clamped.
func strRange(v []byte, start, end int64) []byte {
	n := int64(len(v))
	if start < 0 && end < 0 && start > end {
		return nil
	}
	if start < 0 {
		start = max(n+start, 0)
	}
	if end < 0 {
		end = max(n+end, 0)
	}
	end = min(end, n-1)
	if n == 0 || start > end {
		return nil
	}
	return v[start : end+1]
}

func cmdIncrByFloat(c *conn, tx *cruzdb.Txn, args [][]byte) {
	m, exists, err := c.loadTyped(tx, args[1], typeString)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	d, ok := parseLongDouble(args[2])
	if !ok {
		c.w.Err(errNotFloat)
		return
	}
	cur := new(big.Float).SetPrec(longDoublePrec)
	if exists {
		if cur, ok = parseLongDouble(m.value); !ok {
			c.w.Err(errNotFloat)
			return
		}
	}
	s, ok := addLongDouble(cur, d)
	if !ok {
		c.w.Err("ERR increment would produce NaN or Infinity")
		return
	}
	if putString(c, tx, args[1], []byte(s), m.expireAt) {
		c.w.BulkString(s)
	}
}

const errNotFloat = "ERR value is not a valid float"

// Redis computes INCRBYFLOAT and HINCRBYFLOAT in C's long double (x87
// extended precision, a 64-bit mantissa on amd64) and prints the result
// with "%.17Lf", trailing zeros removed. big.Float with 64 bits of
// mantissa, rounding to nearest even, gives the same digits.
const longDoublePrec = 64

// maxLongDouble is the largest finite x87 extended value, about 1.19e4932.
var maxLongDouble = func() *big.Float {
	f := new(big.Float).SetPrec(longDoublePrec).SetMantExp(big.NewFloat(1), 16384)
	return f
}()

// parseLongDouble parses a float as Redis's string2ld does: no spaces, the
// whole string, not NaN; infinity only as a word.
func parseLongDouble(b []byte) (*big.Float, bool) {
	if len(b) == 0 || len(b) > 5*1024 || isSpaceByte(b[0]) || isSpaceByte(b[len(b)-1]) {
		return nil, false
	}
	s := string(b)
	ls := strings.ToLower(strings.TrimLeft(s, "+-"))
	if ls == "inf" || ls == "infinity" {
		f := new(big.Float).SetPrec(longDoublePrec).SetInf(s[0] == '-')
		return f, true
	}
	if ls == "nan" || strings.HasPrefix(ls, "0x") || strings.ContainsAny(s, "_ ") {
		return nil, false
	}
	f, _, err := new(big.Float).SetPrec(longDoublePrec).SetMode(big.ToNearestEven).Parse(s, 10)
	if err != nil {
		return nil, false
	}
	return f, true
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// addLongDouble returns a+b printed as Redis prints it, or false if the
// sum is infinite (or NaN: inf + -inf).
func addLongDouble(a, b *big.Float) (string, bool) {
	if a.IsInf() || b.IsInf() {
		return "", false
	}
	sum := new(big.Float).SetPrec(longDoublePrec).SetMode(big.ToNearestEven).Add(a, b)
	if new(big.Float).Abs(sum).Cmp(maxLongDouble) >= 0 {
		return "", false
	}
	return formatLongDouble(sum), true
}

// formatLongDouble is "%.17Lf" with trailing zeros (and a trailing dot)
// removed.
func formatLongDouble(f *big.Float) string {
	s := f.Text('f', 17)
	if strings.IndexByte(s, '.') >= 0 {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

func cmdObject(c *conn, tx *cruzdb.Txn, args [][]byte) {
	sub := args[1]
	known := eqFold(sub, "encoding") || eqFold(sub, "refcount") || eqFold(sub, "idletime") || eqFold(sub, "freq")
	if !known || len(args) != 3 {
		c.w.Err("ERR unknown subcommand '" + string(sub) + "'. Try OBJECT HELP.")
		return
	}
	m, ok, err := c.loadMeta(tx, args[2])
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	switch {
	case !ok:
		c.w.Null()
		return
	case eqFold(sub, "refcount"):
		c.w.Int(1) // nothing is shared
		return
	case eqFold(sub, "idletime"):
		c.w.Int(0) // access times are not tracked
		return
	case eqFold(sub, "freq"):
		c.w.Err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
		return
	}
	enc, err := encodingOf(tx, args[2], m)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	c.w.BulkString(enc)
}

// encodingOf names the encoding Redis 7.0 would use for the value: what a
// client inspecting OBJECT ENCODING expects (cruzd stores every type the
// same way, see store.go).
func encodingOf(tx *cruzdb.Txn, key []byte, m meta) (string, error) {
	switch m.typ {
	case typeString:
		if m.raw {
			return "raw", nil
		}
		if _, ok := resp.ParseInt(m.value); ok && len(m.value) <= 20 {
			return "int", nil
		}
		if len(m.value) <= 44 {
			return "embstr", nil
		}
		return "raw", nil
	case typeHash:
		if m.count > 128 {
			return "hashtable", nil
		}
		p := subPrefixOf(key, m.version)
		for k, v := range tx.Range(p, prefixEnd(p)) {
			if len(k)-len(p) > 64 || len(v) > 64 {
				return "hashtable", nil
			}
		}
		return "listpack", tx.Err()
	default:
		if m.count > 512 {
			return "hashtable", nil
		}
		p := subPrefixOf(key, m.version)
		for k := range tx.Keys(p, prefixEnd(p)) {
			if _, ok := resp.ParseInt(k[len(p):]); !ok {
				return "hashtable", nil
			}
		}
		return "intset", tx.Err()
	}
}

// randomKeyWindow is how many live keys RANDOMKEY gathers from a random
// point before choosing one: a database of at most that many keys is
// chosen from uniformly; a larger one is chosen from near a random point
// (biased by the gaps between keys, as Redis's is by its hash buckets).
const randomKeyWindow = 64

func cmdRandomKey(c *conn, tx *cruzdb.Txn, _ [][]byte) {
	now := c.s.now()
	var seek [8]byte
	for i := range seek {
		seek[i] = byte(rand.Uint32())
	}
	c.withTxn(tx, func(tx *cruzdb.Txn) error {
		// Up to randomKeyWindow live keys at or after a random point,
		// wrapping around to the first key.
		var keys [][]byte
		start := metaKey(seek[:])
		for _, r := range [][2][]byte{{start, metaHi}, {metaLo, start}} {
			for mk, v := range tx.Range(r[0], r[1]) {
				if len(keys) == randomKeyWindow {
					break
				}
				if !metaExpired(v, now) {
					keys = append(keys, mk[1:])
				}
			}
			if err := tx.Err(); err != nil {
				return err
			}
		}
		if len(keys) == 0 {
			c.w.Null()
		} else {
			c.w.Bulk(keys[rand.IntN(len(keys))])
		}
		return nil
	})
}

// withWriteTxn runs f in tx, or in a writable transaction of its own if
// tx is nil, committed and re-run on a conflict like a plain command.
func (c *conn) withWriteTxn(tx *cruzdb.Txn, f func(tx *cruzdb.Txn) error) {
	if tx != nil {
		if err := f(tx); err != nil {
			c.w.Err(errText(err))
		}
		return
	}
	mark := len(c.w.B)
	for attempt := 0; ; attempt++ {
		tx, err := c.s.db.Begin(c.s.ctx, true)
		if err == nil {
			if err = f(tx); err == nil {
				err = tx.Commit()
			} else {
				tx.Rollback()
			}
		}
		if err == nil {
			return
		}
		c.w.B = c.w.B[:mark]
		if errors.Is(err, cruzdb.ErrConflict) && attempt < c.s.cfg.MaxConflictRetries {
			c.s.metrics.retries.Inc()
			continue
		}
		c.w.Err(errText(err))
		return
	}
}

// FLUSHALL / FLUSHDB [ASYNC|SYNC] deletes every key: alone, in one
// intention holding one range delete (DB.DeleteRange), which the processor
// applies to the keys that exist at its position; inside MULTI, as point
// deletes in EXEC's transaction (a transaction cannot hold a range delete).
func cmdFlush(c *conn, tx *cruzdb.Txn, args [][]byte) {
	if len(args) > 2 || (len(args) == 2 && !eqFold(args[1], "async") && !eqFold(args[1], "sync")) {
		c.w.Err(errSyntax)
		return
	}
	if tx != nil {
		if err := deleteAll(tx); err != nil {
			c.w.Err(errText(err))
			return
		}
		c.w.OK()
		return
	}
	if err := c.s.db.DeleteRange(c.s.ctx, nil, nil); err != nil {
		c.w.Err(errText(err))
		return
	}
	c.w.OK()
}

// deleteAll deletes every key of every kind in tx.
func deleteAll(tx *cruzdb.Txn) error {
	var keys [][]byte
	for k := range tx.Keys(nil, nil) {
		keys = append(keys, k)
	}
	if err := tx.Err(); err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
