package main

import (
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

// keyCmd is the spec of a command whose one key is its first argument.
func keyCmd(name string, arity int, flags cmdFlags, run handler) *cmdSpec {
	return &cmdSpec{name: name, arity: arity, flags: flags, first: 1, last: 1, step: 1, run: run}
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
		{name: "bgrewriteaof", arity: 1, run: cmdBgRewriteAOF},

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
	for _, more := range moreCommands {
		list = append(list, more()...)
	}
	t := make(map[string]*cmdSpec, len(list))
	for _, sp := range list {
		sp.calls = m.commands.WithLabelValues(sp.name)
		sp.dur = m.commandDuration.WithLabelValues(sp.name)
		t[sp.name] = sp
	}
	addHelp(t)
	return t
}

// moreCommands are the command groups defined in other files, each
// registered by its file's init. A group returns new specs on every call:
// each server sets its own metrics in them.
var moreCommands []func() []*cmdSpec

// Replies shared by several commands.
const (
	errSyntax   = "ERR syntax error"
	errNotInt   = "ERR value is not an integer or out of range"
	errOverflow = "ERR increment or decrement would overflow"
	errEmptyKey = "ERR empty keys are not supported by cruzd"
)

func wrongArgs(name string) string {
	return "ERR wrong number of arguments for '" + name + "' command"
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
			if !validClientName(args[i+1]) {
				c.w.Err(errClientName)
				return
			}
			c.setName(string(args[i+1]))
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
		if !validClientName(args[2]) {
			c.w.Err(errClientName)
			return
		}
		c.setName(string(args[2]))
		c.w.OK()
	case eqFold(sub, "list"):
		c.clientList(args[2:])
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
