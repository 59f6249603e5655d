package main

import (
	"errors"
	"math"
	"strconv"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/resp"
)

// String commands. A string is one metadata key holding its type, expiry
// and value (store.go).

// Limits of Redis keys and values: the database's, less the metadata's
// prefix byte and header (type byte and expiry).
const (
	maxRedisKey   = cruzdb.DefaultMaxKeySize - 1
	maxRedisValue = cruzdb.DefaultMaxValueSize - 9
)

// getString reads a string key: its value and whether it exists;
// errWrongType if it holds another type.
func (c *conn) getString(tx *cruzdb.Txn, key []byte) ([]byte, bool, error) {
	m, ok, err := c.loadTyped(tx, key, typeString)
	return m.value, ok, err
}

// putString writes a string key with an expiry (0: none), replying an
// error (and returning false) if it cannot.
func putString(c *conn, tx *cruzdb.Txn, key, value []byte, expireAt int64) bool {
	if msg := checkWrite(key, value); msg != "" {
		c.w.Err(msg)
		return false
	}
	if err := c.storeMeta(tx, key, meta{typ: typeString, value: value, expireAt: expireAt}); err != nil {
		c.w.Err(writeErrText(err))
		return false
	}
	return true
}

func writeErrText(err error) string {
	if errors.Is(err, cruzdb.ErrEmptyKey) {
		return errEmptyKey
	}
	return errText(err)
}

// checkWrite checks key and value against the limits before a write
// starts, so that a multi-key write fails whole or not at all.
func checkWrite(key, value []byte) string {
	switch {
	case len(key) == 0:
		return errEmptyKey
	case len(key) > maxRedisKey:
		return "ERR key too large: " + strconv.Itoa(len(key)) + " bytes, limit " + strconv.Itoa(maxRedisKey)
	case len(value) > maxRedisValue:
		return "ERR value too large: " + strconv.Itoa(len(value)) + " bytes, limit " + strconv.Itoa(maxRedisValue)
	}
	return ""
}

func cmdGet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	v, ok, err := c.getString(tx, args[1])
	switch {
	case err != nil:
		c.w.Err(errText(err))
	case !ok:
		c.w.Null()
	default:
		c.w.Bulk(v)
	}
}

// setOpts are SET's options.
type setOpts struct {
	nx, xx, get, keepTTL bool
	expireAt             int64 // unix ms; 0: none
}

// parseSetOpts parses SET's options after the value (args[3:]).
func (c *conn) parseSetOpts(opts [][]byte) (setOpts, string) {
	var o setOpts
	var unit byte // 's', 'm' (ms), 'S' (unix s), 'M' (unix ms)
	for i := 0; i < len(opts); i++ {
		a := opts[i]
		switch {
		case eqFold(a, "nx") && !o.xx:
			o.nx = true
		case eqFold(a, "xx") && !o.nx:
			o.xx = true
		case eqFold(a, "get"):
			o.get = true
		case eqFold(a, "keepttl") && unit == 0:
			o.keepTTL = true
		case (eqFold(a, "ex") || eqFold(a, "px") || eqFold(a, "exat") || eqFold(a, "pxat")) && unit == 0 && !o.keepTTL && i+1 < len(opts):
			switch {
			case eqFold(a, "ex"):
				unit = 's'
			case eqFold(a, "px"):
				unit = 'm'
			case eqFold(a, "exat"):
				unit = 'S'
			default:
				unit = 'M'
			}
			i++
			n, ok := resp.ParseInt(opts[i])
			if !ok {
				return o, errNotInt
			}
			at, ok := expireTime(c.s.now(), n, unit)
			if !ok {
				return o, "ERR invalid expire time in 'set' command"
			}
			o.expireAt = at
		default:
			return o, errSyntax
		}
	}
	return o, ""
}

// expireTime turns an expiry argument into unix ms: unit 's' or 'm' are
// relative seconds or milliseconds, 'S' or 'M' absolute. Zero or negative
// values and overflows are refused, as Redis's SET and GETEX do.
func expireTime(now, n int64, unit byte) (int64, bool) {
	if n <= 0 {
		return 0, false
	}
	if unit == 's' || unit == 'S' {
		if n > math.MaxInt64/1000 {
			return 0, false
		}
		n *= 1000
	}
	if unit == 's' || unit == 'm' {
		if n > math.MaxInt64-now {
			return 0, false
		}
		n += now
	}
	return n, true
}

func cmdSet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	o, msg := c.parseSetOpts(args[3:])
	if msg != "" {
		c.w.Err(msg)
		return
	}
	key, val := args[1], args[2]
	var old meta
	exists := false
	if o.nx || o.xx || o.get || o.keepTTL {
		var err error
		old, exists, err = c.loadMeta(tx, key)
		if err == nil && o.get && exists && old.typ != typeString {
			err = errWrongType
		}
		if err != nil {
			c.w.Err(errText(err))
			return
		}
	}
	doSet := (!o.nx || !exists) && (!o.xx || exists)
	if doSet {
		expireAt := o.expireAt
		if o.keepTTL && exists {
			expireAt = old.expireAt
		}
		if !c.writeString(tx, key, val, expireAt) {
			return
		}
	}
	switch {
	case o.get && exists:
		c.w.Bulk(old.value)
	case o.get:
		c.w.Null()
	case doSet:
		c.w.OK()
	default:
		c.w.Null()
	}
}

// writeString is putString, except that an expiry already past deletes the
// key (as Redis does for SET ... EXAT in the past).
func (c *conn) writeString(tx *cruzdb.Txn, key, val []byte, expireAt int64) bool {
	if expireAt != 0 && expireAt <= c.s.now() {
		if msg := checkWrite(key, val); msg != "" {
			c.w.Err(msg)
			return false
		}
		if err := deleteKey(tx, key); err != nil {
			c.w.Err(writeErrText(err))
			return false
		}
		return true
	}
	return putString(c, tx, key, val, expireAt)
}

func cmdSetNX(c *conn, tx *cruzdb.Txn, args [][]byte) {
	_, exists, err := c.loadMeta(tx, args[1])
	switch {
	case err != nil:
		c.w.Err(errText(err))
	case exists:
		c.w.Int(0)
	case putString(c, tx, args[1], args[2], 0):
		c.w.Int(1)
	}
}

func cmdGetSet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	old, exists, err := c.getString(tx, args[1])
	switch {
	case err != nil:
		c.w.Err(errText(err))
	case !putString(c, tx, args[1], args[2], 0):
	case exists:
		c.w.Bulk(old)
	default:
		c.w.Null()
	}
}

// cmdMGet replies to MGET. Two or more keys are looked up with one
// Txn.GetMany (lookupStrings); a key that is not a plain string without an
// expiry, or all of them if that lookup fails, take the one-key path.
func cmdMGet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	mark := len(c.w.B)
	c.w.ArrayLen(len(args) - 1)
	if len(args) > 2 {
		failed := false
		c.lookupStrings(tx, len(args)-1, func(i int) []byte { return args[1+i] },
			func(i int, v []byte, plain bool) {
				switch {
				case failed:
				case !plain:
					failed = !mgetOne(c, tx, args[1+i], mark)
				case v == nil:
					c.w.Null()
				default:
					c.w.Bulk(v)
				}
			})
		return
	}
	mgetOne(c, tx, args[1], mark)
}

// mgetOne replies to one key of an MGET whose reply started at mark. On an
// error it replaces the whole reply with it and returns false.
func mgetOne(c *conn, tx *cruzdb.Txn, k []byte, mark int) bool {
	v, ok, err := c.getString(tx, k)
	switch {
	case err == errWrongType:
		c.w.Null() // MGET answers nil for a key of another type
	case err != nil:
		c.w.B = c.w.B[:mark]
		c.w.Err(errText(err))
		return false
	case ok:
		c.w.Bulk(v)
	default:
		c.w.Null()
	}
	return true
}

func cmdMSet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	if len(args)%2 != 1 {
		c.w.Err(wrongArgs("mset"))
		return
	}
	for i := 1; i < len(args); i += 2 {
		if msg := checkWrite(args[i], args[i+1]); msg != "" {
			c.w.Err(msg)
			return
		}
	}
	for i := 1; i < len(args); i += 2 {
		if !putString(c, tx, args[i], args[i+1], 0) {
			return
		}
	}
	c.w.OK()
}

func cmdDel(c *conn, tx *cruzdb.Txn, args [][]byte) {
	n := int64(0)
	for _, k := range args[1:] {
		_, ok, err := c.loadMeta(tx, k)
		if err != nil {
			c.w.Err(errText(err))
			return
		}
		if !ok {
			continue
		}
		if err := deleteKey(tx, k); err != nil {
			c.w.Err(errText(err))
			return
		}
		n++
	}
	c.w.Int(n)
}

func cmdExists(c *conn, tx *cruzdb.Txn, args [][]byte) {
	n := int64(0)
	for _, k := range args[1:] {
		_, ok, err := c.loadMeta(tx, k)
		if err != nil {
			c.w.Err(errText(err))
			return
		}
		if ok {
			n++
		}
	}
	c.w.Int(n)
}

func cmdIncr(c *conn, tx *cruzdb.Txn, args [][]byte) { incrBy(c, tx, args[1], 1) }
func cmdDecr(c *conn, tx *cruzdb.Txn, args [][]byte) { incrBy(c, tx, args[1], -1) }

func cmdIncrBy(c *conn, tx *cruzdb.Txn, args [][]byte) {
	d, ok := resp.ParseInt(args[2])
	if !ok {
		c.w.Err(errNotInt)
		return
	}
	incrBy(c, tx, args[1], d)
}

func cmdDecrBy(c *conn, tx *cruzdb.Txn, args [][]byte) {
	d, ok := resp.ParseInt(args[2])
	if !ok {
		c.w.Err(errNotInt)
		return
	}
	if d == math.MinInt64 {
		c.w.Err("ERR decrement would overflow")
		return
	}
	incrBy(c, tx, args[1], -d)
}

// incrBy adds d to the integer in key, keeping its expiry.
func incrBy(c *conn, tx *cruzdb.Txn, key []byte, d int64) {
	m, exists, err := c.loadTyped(tx, key, typeString)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	var v int64
	if exists {
		var ok bool
		if v, ok = resp.ParseInt(m.value); !ok {
			c.w.Err(errNotInt)
			return
		}
	}
	if (d > 0 && v > math.MaxInt64-d) || (d < 0 && v < math.MinInt64-d) {
		c.w.Err(errOverflow)
		return
	}
	v += d
	var buf [20]byte
	if putString(c, tx, key, strconv.AppendInt(buf[:0], v, 10), m.expireAt) {
		c.w.Int(v)
	}
}

func cmdAppend(c *conn, tx *cruzdb.Txn, args [][]byte) {
	m, exists, err := c.loadTyped(tx, args[1], typeString)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	v := append(m.value, args[2]...)
	if msg := checkWrite(args[1], v); msg != "" {
		c.w.Err(msg)
		return
	}
	m.value, m.raw = v, exists // Redis appends to an existing string in place
	if err := storeMeta(tx, args[1], m); err != nil {
		c.w.Err(writeErrText(err))
		return
	}
	c.w.Int(int64(len(v)))
}

func cmdStrlen(c *conn, tx *cruzdb.Txn, args [][]byte) {
	v, _, err := c.getString(tx, args[1])
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	c.w.Int(int64(len(v)))
}

func cmdType(c *conn, tx *cruzdb.Txn, args [][]byte) {
	m, ok, err := c.loadMeta(tx, args[1])
	switch {
	case err != nil:
		c.w.Err(errText(err))
	case ok:
		c.w.Simple(m.typ.String())
	default:
		c.w.Simple("none")
	}
}
