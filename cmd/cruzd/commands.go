package main

import (
	"bytes"
	"errors"
	"math"
	"strconv"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/internal/resp"
	"github.com/prometheus/client_golang/prometheus"
)

type cmdFlags uint8

const (
	// flagPoint: a command on the keys named in its arguments only; runs of
	// them in a pipeline batch share one transaction.
	flagPoint cmdFlags = 1 << iota
	// flagWrite: may write, so needs a writable transaction.
	flagWrite
	// flagNoQueue: runs at once even inside MULTI (MULTI, EXEC, DISCARD,
	// WATCH, QUIT).
	flagNoQueue
	// flagBlind: writes its keys without reading them (SET without
	// options, MSET): it takes shared key locks.
	flagBlind
)

// handler runs a command. tx is the transaction it runs in: the batch's for
// point commands, EXEC's for queued commands, nil for a command run on its
// own (which opens a transaction itself if it needs one). It writes exactly
// one reply to c.w.
type handler func(c *conn, tx *cruzdb.Txn, args [][]byte)

type cmdSpec struct {
	name  string
	arity int // Redis convention: n exact, -n at least n (the name counts)
	flags cmdFlags
	// Keys: args[first], args[first+step], ... up to args[last] (last < 0:
	// from the end). first 0: no keys.
	first, last, step int
	run               handler

	calls prometheus.Counter
	dur   prometheus.Observer
}

func (sp *cmdSpec) arityOK(n int) bool {
	if sp.arity >= 0 {
		return n == sp.arity
	}
	return n >= -sp.arity
}

// keys calls f for each key of the command.
func (sp *cmdSpec) keys(args [][]byte, f func(key []byte)) {
	if sp.first == 0 {
		return
	}
	last := sp.last
	if last < 0 {
		last = len(args) + last
	}
	for i := sp.first; i <= last && i < len(args); i += sp.step {
		f(args[i])
	}
}

// appendLocks appends the key locks the command needs in a writing
// transaction.
func (sp *cmdSpec) appendLocks(l *keyLocks, dst []lockReq, args [][]byte) []lockReq {
	if sp.first == 0 {
		return dst
	}
	blind := sp.flags&flagBlind != 0
	if sp.name == "set" && len(args) > 3 {
		blind = false // NX, XX, GET read the key
	}
	last := sp.last
	if last < 0 {
		last = len(args) + last
	}
	for i := sp.first; i <= last && i < len(args); i += sp.step {
		dst = append(dst, l.req(args[i], !blind))
	}
	return dst
}

func commandTable(m *metrics) map[string]*cmdSpec {
	list := []*cmdSpec{
		// Connection and server.
		{name: "ping", arity: -1, run: cmdPing},
		{name: "echo", arity: 2, run: cmdEcho},
		{name: "quit", arity: -1, flags: flagNoQueue, run: cmdQuit},
		{name: "select", arity: 2, run: cmdSelect},
		{name: "hello", arity: -1, flags: flagNoQueue, run: cmdHello},
		{name: "auth", arity: -2, flags: flagNoQueue, run: cmdAuth},
		{name: "client", arity: -2, run: cmdClient},
		{name: "command", arity: -1, run: cmdCommand},
		{name: "config", arity: -2, run: cmdConfig},
		{name: "info", arity: -1, run: cmdInfo},
		{name: "dbsize", arity: 1, run: cmdDBSize},

		// Strings: point commands.
		{name: "get", arity: 2, flags: flagPoint, first: 1, last: 1, step: 1, run: cmdGet},
		{name: "set", arity: -3, flags: flagPoint | flagWrite | flagBlind, first: 1, last: 1, step: 1, run: cmdSet},
		{name: "setnx", arity: 3, flags: flagPoint | flagWrite, first: 1, last: 1, step: 1, run: cmdSetNX},
		{name: "getset", arity: 3, flags: flagPoint | flagWrite, first: 1, last: 1, step: 1, run: cmdGetSet},
		{name: "mget", arity: -2, flags: flagPoint, first: 1, last: -1, step: 1, run: cmdMGet},
		{name: "mset", arity: -3, flags: flagPoint | flagWrite | flagBlind, first: 1, last: -1, step: 2, run: cmdMSet},
		{name: "del", arity: -2, flags: flagPoint | flagWrite, first: 1, last: -1, step: 1, run: cmdDel},
		{name: "exists", arity: -2, flags: flagPoint, first: 1, last: -1, step: 1, run: cmdExists},
		{name: "incr", arity: 2, flags: flagPoint | flagWrite, first: 1, last: 1, step: 1, run: cmdIncr},
		{name: "decr", arity: 2, flags: flagPoint | flagWrite, first: 1, last: 1, step: 1, run: cmdDecr},
		{name: "incrby", arity: 3, flags: flagPoint | flagWrite, first: 1, last: 1, step: 1, run: cmdIncrBy},
		{name: "decrby", arity: 3, flags: flagPoint | flagWrite, first: 1, last: 1, step: 1, run: cmdDecrBy},
		{name: "append", arity: 3, flags: flagPoint | flagWrite, first: 1, last: 1, step: 1, run: cmdAppend},
		{name: "strlen", arity: 2, flags: flagPoint, first: 1, last: 1, step: 1, run: cmdStrlen},
		{name: "type", arity: 2, flags: flagPoint, first: 1, last: 1, step: 1, run: cmdType},

		// Key space.
		{name: "scan", arity: -2, run: cmdScan},
		{name: "keys", arity: 2, run: cmdKeys},

		// Transactions.
		{name: "multi", arity: 1, flags: flagNoQueue, run: cmdMulti},
		{name: "exec", arity: 1, flags: flagNoQueue, run: cmdExec},
		{name: "discard", arity: 1, flags: flagNoQueue, run: cmdDiscard},
		{name: "watch", arity: -2, flags: flagNoQueue, first: 1, last: -1, step: 1, run: cmdWatch},
		{name: "unwatch", arity: 1, run: cmdUnwatch},
	}
	t := make(map[string]*cmdSpec, len(list))
	for _, sp := range list {
		sp.calls = m.commands.WithLabelValues(sp.name)
		sp.dur = m.commandDuration.WithLabelValues(sp.name)
		t[sp.name] = sp
	}
	return t
}

// Replies shared by several commands.
const (
	errSyntax   = "ERR syntax error"
	errNotInt   = "ERR value is not an integer or out of range"
	errOverflow = "ERR increment or decrement would overflow"
	errEmptyKey = "ERR empty keys are not supported by cruzd"
	errNoExpiry = "ERR expiry options (EX, PX, EXAT, PXAT, KEEPTTL) are not supported by cruzd: keys never expire"
)

func wrongArgs(name string) string {
	return "ERR wrong number of arguments for '" + name + "' command"
}

// get reads key: its value and whether it exists. A key that cannot exist
// (empty, or longer than the database allows) does not.
func get(tx *cruzdb.Txn, key []byte) ([]byte, bool, error) {
	v, err := tx.Get(key)
	switch {
	case err == nil:
		return v, true, nil
	case errors.Is(err, cruzdb.ErrNotFound), errors.Is(err, cruzdb.ErrEmptyKey), errors.Is(err, cruzdb.ErrKeyTooLarge):
		return nil, false, nil
	}
	return nil, false, err
}

// put writes key, replying an error (and returning false) if it cannot.
func put(c *conn, tx *cruzdb.Txn, key, value []byte) bool {
	if err := tx.Put(key, value); err != nil {
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

// checkWrite checks key and value against the database's limits before a
// multi-key write starts, so that it fails whole or not at all.
func checkWrite(key, value []byte) string {
	switch {
	case len(key) == 0:
		return errEmptyKey
	case len(key) > cruzdb.DefaultMaxKeySize:
		return "ERR key too large: " + strconv.Itoa(len(key)) + " bytes, limit " + strconv.Itoa(cruzdb.DefaultMaxKeySize)
	case len(value) > cruzdb.DefaultMaxValueSize:
		return "ERR value too large: " + strconv.Itoa(len(value)) + " bytes, limit " + strconv.Itoa(cruzdb.DefaultMaxValueSize)
	}
	return ""
}

// eqFold reports whether b equals the lower-case ASCII word s, ignoring case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }

// --- connection and server ---

func cmdPing(c *conn, _ *cruzdb.Txn, args [][]byte) {
	switch len(args) {
	case 1:
		c.w.Simple("PONG")
	case 2:
		c.w.Bulk(args[1])
	default:
		c.w.Err(wrongArgs("ping"))
	}
}

func cmdEcho(c *conn, _ *cruzdb.Txn, args [][]byte) { c.w.Bulk(args[1]) }

func cmdQuit(c *conn, _ *cruzdb.Txn, _ [][]byte) {
	c.w.OK()
	c.quit = true
}

func cmdSelect(c *conn, _ *cruzdb.Txn, args [][]byte) {
	n, ok := resp.ParseInt(args[1])
	switch {
	case !ok:
		c.w.Err(errNotInt)
	case n != 0:
		c.w.Err("ERR DB index is out of range")
	default:
		c.w.OK()
	}
}

func cmdHello(c *conn, _ *cruzdb.Txn, args [][]byte) {
	if !c.helloAllowed(args) {
		return
	}
	if len(args) >= 2 {
		v, ok := resp.ParseInt(args[1])
		if !ok {
			c.w.Err("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 {
			c.w.Err("NOPROTO unsupported protocol version: cruzd speaks RESP2 only")
			return
		}
	}
	for i := 2; i < len(args); i++ {
		switch {
		case eqFold(args[i], "auth") && i+2 < len(args):
			if !c.helloAuth(args[i+1], args[i+2]) {
				return
			}
			i += 2
		case eqFold(args[i], "setname") && i+1 < len(args):
			c.name = string(args[i+1])
			i++
		default:
			c.w.Err("ERR Syntax error in HELLO option '" + string(args[i]) + "'")
			return
		}
	}
	c.w.ArrayLen(14)
	c.w.BulkString("server")
	c.w.BulkString("redis")
	c.w.BulkString("version")
	c.w.BulkString(redisVersion)
	c.w.BulkString("proto")
	c.w.Int(2)
	c.w.BulkString("id")
	c.w.Int(c.id)
	c.w.BulkString("mode")
	c.w.BulkString("standalone")
	c.w.BulkString("role")
	c.w.BulkString("master")
	c.w.BulkString("modules")
	c.w.ArrayLen(0)
}

const errNoAuth = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"

func cmdAuth(c *conn, _ *cruzdb.Txn, args [][]byte) {
	c.authCommand(args)
}

func cmdClient(c *conn, _ *cruzdb.Txn, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "setname") && len(args) == 3:
		c.name = string(args[2])
		c.w.OK()
	case eqFold(sub, "getname") && len(args) == 2:
		if c.name == "" {
			c.w.Null()
		} else {
			c.w.BulkString(c.name)
		}
	case eqFold(sub, "id") && len(args) == 2:
		c.w.Int(c.id)
	case eqFold(sub, "setinfo") && len(args) == 4:
		c.w.OK()
	case eqFold(sub, "info") && len(args) == 2:
		c.w.BulkString(c.clientInfo() + "\n")
	default:
		c.w.Err("ERR unknown subcommand or wrong number of arguments for '" + string(sub) + "'. Try CLIENT HELP.")
	}
}

func (c *conn) clientInfo() string {
	return "id=" + strconv.FormatInt(c.id, 10) + " addr=" + c.nc.RemoteAddr().String() +
		" laddr=" + c.nc.LocalAddr().String() + " name=" + c.name + " db=0"
}

// --- strings ---

func cmdGet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	v, ok, err := get(tx, args[1])
	switch {
	case err != nil:
		c.w.Err(errText(err))
	case !ok:
		c.w.Null()
	default:
		c.w.Bulk(v)
	}
}

func cmdSet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	var nx, xx, getOld bool
	for _, o := range args[3:] {
		switch {
		case eqFold(o, "nx"):
			nx = true
		case eqFold(o, "xx"):
			xx = true
		case eqFold(o, "get"):
			getOld = true
		case eqFold(o, "ex"), eqFold(o, "px"), eqFold(o, "exat"), eqFold(o, "pxat"), eqFold(o, "keepttl"):
			c.w.Err(errNoExpiry)
			return
		default:
			c.w.Err(errSyntax)
			return
		}
	}
	if nx && xx {
		c.w.Err(errSyntax)
		return
	}
	key, val := args[1], args[2]
	var old []byte
	exists := false
	if nx || xx || getOld {
		var err error
		old, exists, err = get(tx, key)
		if err != nil {
			c.w.Err(errText(err))
			return
		}
	}
	doSet := (!nx || !exists) && (!xx || exists)
	if doSet && !put(c, tx, key, val) {
		return
	}
	switch {
	case getOld && exists:
		c.w.Bulk(old)
	case getOld:
		c.w.Null()
	case doSet:
		c.w.OK()
	default:
		c.w.Null()
	}
}

func cmdSetNX(c *conn, tx *cruzdb.Txn, args [][]byte) {
	_, exists, err := get(tx, args[1])
	switch {
	case err != nil:
		c.w.Err(errText(err))
	case exists:
		c.w.Int(0)
	case put(c, tx, args[1], args[2]):
		c.w.Int(1)
	}
}

func cmdGetSet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	old, exists, err := get(tx, args[1])
	switch {
	case err != nil:
		c.w.Err(errText(err))
	case !put(c, tx, args[1], args[2]):
	case exists:
		c.w.Bulk(old)
	default:
		c.w.Null()
	}
}

func cmdMGet(c *conn, tx *cruzdb.Txn, args [][]byte) {
	mark := len(c.w.B)
	c.w.ArrayLen(len(args) - 1)
	for _, k := range args[1:] {
		v, ok, err := get(tx, k)
		switch {
		case err != nil:
			c.w.B = c.w.B[:mark]
			c.w.Err(errText(err))
			return
		case ok:
			c.w.Bulk(v)
		default:
			c.w.Null()
		}
	}
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
		if !put(c, tx, args[i], args[i+1]) {
			return
		}
	}
	c.w.OK()
}

func cmdDel(c *conn, tx *cruzdb.Txn, args [][]byte) {
	n := int64(0)
	for _, k := range args[1:] {
		_, ok, err := get(tx, k)
		if err != nil {
			c.w.Err(errText(err))
			return
		}
		if !ok {
			continue
		}
		if err := tx.Delete(k); err != nil {
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
		_, ok, err := get(tx, k)
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

func incrBy(c *conn, tx *cruzdb.Txn, key []byte, d int64) {
	old, exists, err := get(tx, key)
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	var v int64
	if exists {
		var ok bool
		if v, ok = resp.ParseInt(old); !ok {
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
	if put(c, tx, key, strconv.AppendInt(buf[:0], v, 10)) {
		c.w.Int(v)
	}
}

func cmdAppend(c *conn, tx *cruzdb.Txn, args [][]byte) {
	old, _, err := get(tx, args[1])
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	v := append(old, args[2]...)
	if put(c, tx, args[1], v) {
		c.w.Int(int64(len(v)))
	}
}

func cmdStrlen(c *conn, tx *cruzdb.Txn, args [][]byte) {
	v, _, err := get(tx, args[1])
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	c.w.Int(int64(len(v)))
}

func cmdType(c *conn, tx *cruzdb.Txn, args [][]byte) {
	_, ok, err := get(tx, args[1])
	switch {
	case err != nil:
		c.w.Err(errText(err))
	case ok:
		c.w.Simple("string")
	default:
		c.w.Simple("none")
	}
}

// --- key space ---

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
		n, err := countKeys(tx)
		if err != nil {
			return err
		}
		c.w.Int(n)
		return nil
	})
}

// countKeys counts the keys of tx's snapshot. It walks them all.
func countKeys(tx *cruzdb.Txn) (int64, error) {
	n := int64(0)
	for range tx.Range(nil, nil) {
		n++
	}
	return n, tx.Err()
}

func cmdKeys(c *conn, tx *cruzdb.Txn, args [][]byte) {
	pat := args[1]
	lo := literalPrefix(pat)
	var hi []byte
	if len(lo) > 0 {
		hi = prefixEnd(lo)
	}
	all := len(pat) == 1 && pat[0] == '*'
	c.withTxn(tx, func(tx *cruzdb.Txn) error {
		var keys [][]byte
		for k := range tx.Range(lo, hi) {
			if all || globMatch(pat, k) {
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

func cmdScan(c *conn, tx *cruzdb.Txn, args [][]byte) {
	cur, ok := parseCursor(args[1])
	if !ok {
		c.w.Err("ERR invalid cursor")
		return
	}
	var pat []byte
	count := int64(10)
	typeOK := true
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			c.w.Err(errSyntax)
			return
		}
		switch v := args[i+1]; {
		case eqFold(args[i], "match"):
			pat = v
		case eqFold(args[i], "count"):
			n, ok := resp.ParseInt(v)
			if !ok {
				c.w.Err(errNotInt)
				return
			}
			if n < 1 {
				c.w.Err(errSyntax)
				return
			}
			count = n
		case eqFold(args[i], "type"):
			typeOK = eqFold(v, "string")
		default:
			c.w.Err(errSyntax)
			return
		}
	}
	lo, ok := c.s.cursors.decode(cur)
	if !ok {
		c.w.Err("ERR invalid cursor")
		return
	}
	var hi []byte
	if pfx := literalPrefix(pat); len(pfx) > 0 {
		if bytes.Compare(lo, pfx) < 0 {
			lo = pfx
		}
		hi = prefixEnd(pfx)
	}
	c.withTxn(tx, func(tx *cruzdb.Txn) error {
		var keys [][]byte
		var next []byte
		examined := int64(0)
		for k := range tx.Range(lo, hi) {
			if examined == count {
				next = k
				break
			}
			examined++
			if typeOK && (pat == nil || globMatch(pat, k)) {
				keys = append(keys, k)
			}
		}
		if err := tx.Err(); err != nil {
			return err
		}
		c.w.ArrayLen(2)
		var nb [20]byte
		c.w.Bulk(strconv.AppendUint(nb[:0], c.s.cursors.encode(next), 10))
		c.w.ArrayLen(len(keys))
		for _, k := range keys {
			c.w.Bulk(k)
		}
		return nil
	})
}
