package main

import (
	"math"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/resp"
)

// Expiry commands: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL,
// EXPIRETIME, PEXPIRETIME, PERSIST, SETEX, PSETEX, GETEX (expire.go has the
// model).

func init() {
	moreCommands = append(moreCommands, func() []*cmdSpec {
		pw := flagPoint | flagWrite
		return []*cmdSpec{
			keyCmd("expire", -3, pw, expireCmd("expire", 's')),
			keyCmd("pexpire", -3, pw, expireCmd("pexpire", 'm')),
			keyCmd("expireat", -3, pw, expireCmd("expireat", 'S')),
			keyCmd("pexpireat", -3, pw, expireCmd("pexpireat", 'M')),
			keyCmd("ttl", 2, flagPoint, ttlCmd(false, false)),
			keyCmd("pttl", 2, flagPoint, ttlCmd(true, false)),
			keyCmd("expiretime", 2, flagPoint, ttlCmd(false, true)),
			keyCmd("pexpiretime", 2, flagPoint, ttlCmd(true, true)),
			keyCmd("persist", 2, pw, cmdPersist),
			keyCmd("setex", 4, pw, setexCmd("setex", 's')),
			keyCmd("psetex", 4, pw, setexCmd("psetex", 'm')),
			keyCmd("getex", -2, pw, cmdGetEx),
		}
	})
}

// setExpiry writes m back with a new expiry, or deletes the key if the
// expiry has passed.
func (c *conn) setExpiry(tx *cruzdb.Txn, key []byte, m meta, at int64) error {
	if at != 0 && at <= c.s.now() {
		return deleteKey(tx, key)
	}
	m.expireAt = at
	return storeMeta(tx, key, m)
}

// expireTimeLoose is expireTime for EXPIRE and friends, which accept zero
// and negative times (the key is then deleted): unit 's' or 'm' relative,
// 'S' or 'M' absolute.
func expireTimeLoose(now, n int64, unit byte) (int64, bool) {
	if unit == 's' || unit == 'S' {
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			return 0, false
		}
		n *= 1000
	}
	if unit == 's' || unit == 'm' {
		if (n > 0 && now > math.MaxInt64-n) || (n < 0 && now < math.MinInt64-n) {
			return 0, false
		}
		n += now
	}
	return n, true
}

func expireCmd(name string, unit byte) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		var nx, xx, gt, lt bool
		for _, o := range args[3:] {
			switch {
			case eqFold(o, "nx"):
				nx = true
			case eqFold(o, "xx"):
				xx = true
			case eqFold(o, "gt"):
				gt = true
			case eqFold(o, "lt"):
				lt = true
			default:
				c.w.Err("ERR Unsupported option " + string(o))
				return
			}
		}
		if nx && (xx || gt || lt) {
			c.w.Err("ERR NX and XX, GT or LT options at the same time are not compatible")
			return
		}
		if gt && lt {
			c.w.Err("ERR GT and LT options at the same time are not compatible")
			return
		}
		n, ok := resp.ParseInt(args[2])
		if !ok {
			c.w.Err(errNotInt)
			return
		}
		at, ok := expireTimeLoose(c.s.now(), n, unit)
		if !ok {
			c.w.Err("ERR invalid expire time in '" + name + "' command")
			return
		}
		m, exists, err := c.loadMeta(tx, args[1])
		if err != nil {
			c.w.Err(errText(err))
			return
		}
		if !exists {
			c.w.Int(0)
			return
		}
		cur := m.expireAt // 0: none, which counts as infinite for GT and LT
		switch {
		case nx && cur != 0, xx && cur == 0,
			gt && (cur == 0 || at <= cur),
			lt && cur != 0 && at >= cur:
			c.w.Int(0)
			return
		}
		if err := c.setExpiry(tx, args[1], m, at); err != nil {
			c.w.Err(writeErrText(err))
			return
		}
		c.w.Int(1)
	}
}

// ttlCmd is TTL (ms false, abs false), PTTL, EXPIRETIME and PEXPIRETIME:
// -2 for a missing key, -1 for one without an expiry.
func ttlCmd(ms, abs bool) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		m, exists, err := c.loadMeta(tx, args[1])
		switch {
		case err != nil:
			c.w.Err(errText(err))
		case !exists:
			c.w.Int(-2)
		case m.expireAt == 0:
			c.w.Int(-1)
		default:
			v := m.expireAt
			if !abs {
				v = max(v-c.s.now(), 0)
			}
			if !ms {
				if abs {
					v /= 1000
				} else {
					v = (v + 500) / 1000
				}
			}
			c.w.Int(v)
		}
	}
}

func cmdPersist(c *conn, tx *cruzdb.Txn, args [][]byte) {
	m, exists, err := c.loadMeta(tx, args[1])
	switch {
	case err != nil:
		c.w.Err(errText(err))
	case !exists || m.expireAt == 0:
		c.w.Int(0)
	default:
		m.expireAt = 0
		if err := storeMeta(tx, args[1], m); err != nil {
			c.w.Err(writeErrText(err))
			return
		}
		c.w.Int(1)
	}
}

func setexCmd(name string, unit byte) handler {
	return func(c *conn, tx *cruzdb.Txn, args [][]byte) {
		n, ok := resp.ParseInt(args[2])
		if !ok {
			c.w.Err(errNotInt)
			return
		}
		at, ok := expireTime(c.s.now(), n, unit)
		if !ok {
			c.w.Err("ERR invalid expire time in '" + name + "' command")
			return
		}
		if putString(c, tx, args[1], args[3], at) {
			c.w.OK()
		}
	}
}

// GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST]: the options'
// syntax is checked first, then the key, then the time (Redis's order).
func cmdGetEx(c *conn, tx *cruzdb.Txn, args [][]byte) {
	var unit byte
	var timeArg []byte
	persist := false
	for i := 2; i < len(args); i++ {
		o := args[i]
		var u byte
		switch {
		case eqFold(o, "persist") && unit == 0 && !persist:
			persist = true
			continue
		case eqFold(o, "ex"):
			u = 's'
		case eqFold(o, "px"):
			u = 'm'
		case eqFold(o, "exat"):
			u = 'S'
		case eqFold(o, "pxat"):
			u = 'M'
		}
		if u == 0 || unit != 0 || persist || i+1 >= len(args) {
			c.w.Err(errSyntax)
			return
		}
		unit = u
		i++
		timeArg = args[i]
	}
	m, exists, err := c.loadTyped(tx, args[1], typeString)
	switch {
	case err != nil:
		c.w.Err(errText(err))
		return
	case !exists:
		c.w.Null()
		return
	}
	var at int64
	if unit != 0 {
		n, ok := resp.ParseInt(timeArg)
		if !ok {
			c.w.Err(errNotInt)
			return
		}
		if at, ok = expireTime(c.s.now(), n, unit); !ok {
			c.w.Err("ERR invalid expire time in 'getex' command")
			return
		}
	}
	switch {
	case persist && m.expireAt != 0:
		err = c.setExpiry(tx, args[1], m, 0)
	case at != 0:
		err = c.setExpiry(tx, args[1], m, at)
	}
	if err != nil {
		c.w.Err(writeErrText(err))
		return
	}
	c.w.Bulk(m.value)
}
