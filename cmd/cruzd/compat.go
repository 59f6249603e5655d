package main

import (
	"strings"

	"github.com/cruzlog/cruzdb"
)

// Commands and parameters clients and Redis's own test suite send that have
// no effect on cruzd: FUNCTION FLUSH (cruzd runs no functions), and
// CONFIG SET of Redis's encoding and memory tunables (cruzd stores every
// type the same way), which are remembered for CONFIG GET.

func init() {
	moreCommands = append(moreCommands, func() []*cmdSpec {
		return []*cmdSpec{
			{name: "function", arity: -2, run: cmdFunction},
			{name: "memory", arity: -2, flags: flagPoint, first: 2, last: 2, step: 1, run: cmdMemory},
		}
	})
}

// ignoredTunables are the parameters CONFIG SET accepts and ignores, with
// Redis 7.0's defaults.
var ignoredTunables = map[string]string{
	"hash-max-listpack-entries": "128", "hash-max-listpack-value": "64",
	"hash-max-ziplist-entries": "128", "hash-max-ziplist-value": "64",
	"set-max-intset-entries": "512", "set-max-listpack-entries": "128", "set-max-listpack-value": "64",
	"zset-max-listpack-entries": "128", "zset-max-listpack-value": "64",
	"zset-max-ziplist-entries": "128", "zset-max-ziplist-value": "64",
	"list-max-listpack-size": "-2", "list-max-ziplist-size": "-2", "list-compress-depth": "0",
	"active-expire-effort": "1", "lazyfree-lazy-user-del": "no", "lazyfree-lazy-user-flush": "no",
	"latency-tracking": "yes", "slowlog-log-slower-than": "10000", "slowlog-max-len": "128",
	"save": "", // cruzd persists every write; there are no snapshots to schedule
}

func (c *conn) configSet(args [][]byte) {
	if len(args)%2 != 0 {
		c.w.Err(wrongArgs("config|set"))
		return
	}
	for i := 0; i < len(args); i += 2 {
		name := strings.ToLower(string(args[i]))
		if _, ok := ignoredTunables[name]; !ok {
			c.w.Err("ERR CONFIG SET " + name + " is not supported by cruzd: restart it with other flags")
			return
		}
	}
	for i := 0; i < len(args); i += 2 {
		c.s.tuning.Store(strings.ToLower(string(args[i])), string(args[i+1]))
	}
	c.w.OK()
}

func cmdFunction(c *conn, _ *cruzdb.Txn, args [][]byte) {
	switch sub := args[1]; {
	case eqFold(sub, "flush") && len(args) <= 3:
		c.w.OK()
	case eqFold(sub, "list"):
		c.w.ArrayLen(0)
	default:
		c.w.Err("ERR FUNCTION " + strings.ToUpper(string(sub)) + " is not supported by cruzd")
	}
}

// MEMORY USAGE key [SAMPLES n]: the bytes cruzd stores for the key, its
// metadata and elements with their cruzdb keys (not Redis's allocator
// figures). Other subcommands are refused.
func cmdMemory(c *conn, tx *cruzdb.Txn, args [][]byte) {
	if !eqFold(args[1], "usage") || len(args) < 3 {
		c.w.Err("ERR MEMORY " + strings.ToUpper(string(args[1])) + " is not supported by cruzd")
		return
	}
	m, ok, err := c.loadMeta(tx, args[2])
	if err != nil {
		c.w.Err(errText(err))
		return
	}
	if !ok {
		c.w.Null()
		return
	}
	n := int64(1 + len(args[2]) + len(encodeMeta(m)))
	if m.typ != typeString {
		p := subPrefixOf(args[2], m.version)
		for k, v := range tx.Range(p, prefixEnd(p)) {
			n += int64(len(k) + len(v))
		}
		if err := tx.Err(); err != nil {
			c.w.Err(errText(err))
			return
		}
	}
	c.w.Int(n)
}
