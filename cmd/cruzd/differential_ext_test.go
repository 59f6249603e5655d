package main

import (
	"slices"
	"strconv"
	"strings"
)

// The differential stream's commands beyond the first string set:
// keyspace, expiry, hashes and sets. Replies without a defined order
// (SMEMBERS, HGETALL, ...) are sorted before comparing; TTL and PTTL
// replies that depend on when each server ran the command are reduced to
// their sign. Expiry cannot flake: relative expiries are long (hours), and
// expiries in the past are only those both servers delete at once (EXPIRE
// with a time in the past; not SET ... PXAT in the past, which Redis 7.0
// keeps until its expiry cycle runs).

var diffFields = []string{"f1", "f2", "f3", "1", "2", "-3", "", "x y"}

func (g *cmdGen) field() string { return diffFields[g.r.IntN(len(diffFields))] }

// farFuture is an EXPIREAT time both servers see as hours away.
var farFuture = []string{"4102444800", "4102444801", "4133980800"}

func (g *cmdGen) extCommand() []string {
	k, k2, v, f := g.key(), g.key(), g.value(), g.field()
	switch g.r.IntN(60) {
	// Keyspace.
	case 0:
		return []string{"RENAME", k, k2}
	case 1:
		return []string{"RENAMENX", k, k2}
	case 2:
		c := []string{"COPY", k, k2}
		if g.r.IntN(2) == 0 {
			c = append(c, "REPLACE")
		}
		if g.r.IntN(8) == 0 {
			c = append(c, "DB", []string{"0", "x"}[g.r.IntN(2)]) // cruzd has one database
		}
		return c
	case 3:
		return []string{"GETDEL", k}
	case 4:
		c := []string{"MSETNX"}
		for range 1 + g.r.IntN(3) {
			c = append(c, g.key(), g.value())
		}
		return c
	case 5:
		return g.withKeys("UNLINK", 3)
	case 6:
		return g.withKeys("TOUCH", 3)
	case 7:
		return []string{"SETRANGE", k, []string{"0", "1", "5", "-1", "x"}[g.r.IntN(5)], v}
	case 8:
		return []string{"GETRANGE", k, strconv.Itoa(g.r.IntN(9) - 4), strconv.Itoa(g.r.IntN(9) - 4)}
	case 9:
		return []string{"SUBSTR", k, strconv.Itoa(g.r.IntN(5)), strconv.Itoa(g.r.IntN(9) - 4)}
	case 10, 11:
		return []string{"INCRBYFLOAT", k, []string{"1", "0.1", "-1.1", "1.5", "1e3", "abc", " 1", "3.0e-2", "-0", "inf", "10.5"}[g.r.IntN(11)]}
	case 12:
		return []string{"OBJECT", "ENCODING", k}
	case 13:
		return []string{"TYPE", k}
	// Expiry.
	case 14:
		c := []string{[]string{"EXPIRE", "PEXPIRE"}[g.r.IntN(2)], k, []string{"36000", "36000000", "-1", "0", "x"}[g.r.IntN(5)]}
		if g.r.IntN(3) == 0 {
			c = append(c, []string{"NX", "XX", "GT", "LT", "nx", "BOGUS"}[g.r.IntN(6)])
		}
		return c
	case 15:
		c := []string{[]string{"EXPIREAT", "PEXPIREAT"}[g.r.IntN(2)], k, []string{farFuture[g.r.IntN(3)], "1", "100"}[g.r.IntN(3)]}
		if g.r.IntN(3) == 0 {
			c = append(c, []string{"NX", "XX", "GT", "LT"}[g.r.IntN(4)])
		}
		return c
	case 16:
		return []string{[]string{"TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"}[g.r.IntN(4)], k}
	case 17:
		return []string{"PERSIST", k}
	case 18:
		return []string{[]string{"SETEX", "PSETEX"}[g.r.IntN(2)], k, []string{"36000000", "0", "-5", "x"}[g.r.IntN(4)], v}
	case 19:
		c := []string{"GETEX", k}
		switch g.r.IntN(5) {
		case 0:
			c = append(c, "EX", "36000")
		case 1:
			c = append(c, "PERSIST")
		case 2:
			c = append(c, "EXAT", farFuture[0])
		case 3:
			c = append(c, "PX", "0")
		}
		return c
	case 20:
		c := []string{"SET", k, v}
		opts := [][]string{{"EX", "36000"}, {"PX", "36000000"}, {"EXAT", farFuture[1]}, {"KEEPTTL"}, {"EX", "0"}, {"KEEPTTL", "GET"}}
		c = append(c, opts[g.r.IntN(len(opts))]...)
		return c
	// Hashes.
	case 21, 22, 23:
		c := []string{"HSET", k}
		for range 1 + g.r.IntN(3) {
			c = append(c, g.field(), g.value())
		}
		return c
	case 24:
		return []string{"HSETNX", k, f, v}
	case 25, 26:
		return []string{"HGET", k, f}
	case 27:
		return []string{"HMGET", k, f, g.field()}
	case 28:
		return []string{"HDEL", k, f, g.field()}
	case 29:
		return []string{"HLEN", k}
	case 30:
		return []string{"HEXISTS", k, f}
	case 31:
		return []string{[]string{"HGETALL", "HKEYS", "HVALS"}[g.r.IntN(3)], k}
	case 32:
		return []string{"HSTRLEN", k, f}
	case 33:
		return []string{"HINCRBY", k, f, []string{"1", "-5", "9223372036854775807", "x"}[g.r.IntN(4)]}
	case 34:
		return []string{"HINCRBYFLOAT", k, f, []string{"1.5", "0.1", "-2", "x", "1e2"}[g.r.IntN(5)]}
	case 35:
		return []string{"HMSET", k, f, v}
	// Sets.
	case 36, 37, 38:
		c := []string{"SADD", k}
		for range 1 + g.r.IntN(3) {
			c = append(c, g.field())
		}
		return c
	case 39:
		return []string{"SREM", k, f, g.field()}
	case 40:
		return []string{"SISMEMBER", k, f}
	case 41:
		return []string{"SMISMEMBER", k, f, g.field()}
	case 42:
		return []string{"SCARD", k}
	case 43:
		return []string{"SMEMBERS", k}
	case 44:
		return []string{"SPOP", k, "100"}
	case 45:
		return []string{"SRANDMEMBER", k, "100"}
	case 46:
		return []string{"SMOVE", k, k2, f}
	case 47:
		return g.withKeys([]string{"SINTER", "SUNION", "SDIFF"}[g.r.IntN(3)], 3)
	case 48:
		c := g.withKeys([]string{"SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"}[g.r.IntN(3)], 3)
		return append(c, g.key())
	case 49:
		c := []string{"SINTERCARD", strconv.Itoa(1 + g.r.IntN(3)), g.key(), g.key(), g.key()}
		if g.r.IntN(2) == 0 {
			c = append(c, "LIMIT", []string{"0", "1", "-1"}[g.r.IntN(3)])
		}
		return c
	case 50:
		return []string{"EXISTS", k, k2}
	case 51:
		return []string{"DEL", k}
	case 52: // wrong arity and errors
		return [][]string{{"HSET", k, f}, {"HGET", k}, {"SADD", k}, {"RENAME", k}, {"EXPIRE", k},
			{"SINTERCARD", "0", k}, {"SINTERCARD", "5", k}, {"SPOP", k, "-1"}, {"COPY", k, k},
			{"SETRANGE", k, "536870912", "x"}, {"GETEX", k, "EX"}, {"EXPIRE", k, "1", "NX", "XX"},
			{"EXPIRE", k, "1", "GT", "LT"}, {"OBJECT", "BOGUS", k}}[g.r.IntN(14)]
	case 53:
		return []string{"SPOP", k, "0"}
	case 54:
		return []string{"INCR", k}
	case 55:
		return []string{"GET", k}
	case 56:
		return []string{"APPEND", k, v}
	default:
		return []string{"SET", k, v}
	}
}

// unorderedReplies are commands whose array reply has no defined order.
var unorderedReplies = map[string]bool{
	"KEYS": true, "SMEMBERS": true, "SINTER": true, "SUNION": true, "SDIFF": true,
	"HKEYS": true, "HVALS": true, "SPOP": true, "SRANDMEMBER": true,
}

// normalizeReply makes replies without a defined order or timing
// comparable.
func normalizeReply(cmd []string, r string) string {
	name := strings.ToUpper(cmd[0])
	switch {
	case unorderedReplies[name]:
		return sortedArray(r)
	case name == "HGETALL":
		return sortedPairs(r)
	case name == "OBJECT":
		// A string's encoding in Redis depends on how it was made (SET of
		// a number, APPEND, SETRANGE, a SET with an expiry...); cruzd
		// approximates it. Hashes' and sets' encodings are compared.
		switch r {
		case "$3\r\nint\r\n", "$6\r\nembstr\r\n", "$3\r\nraw\r\n":
			return "$6\r\nstring\r\n"
		}
	case name == "EXPIRETIME" || name == "PEXPIRETIME":
		// From a relative expiry, the time depends on when each server ran
		// it; from EXPIREAT it is one of farFuture.
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(r, ":"), "\r\n"), 10, 64)
		if err == nil && n > 0 && !slices.Contains(farFuture, strconv.FormatInt(n, 10)) && !slices.Contains(farFuture, strconv.FormatInt(n/1000, 10)) {
			return ":relative\r\n"
		}
	case name == "TTL" || name == "PTTL":
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(r, ":"), "\r\n"), 10, 64); err == nil && n > 0 {
			return ":positive\r\n"
		}
	}
	return r
}

// inTxnOK reports whether cmd's reply can be compared inside EXEC (whose
// nested replies are not normalized).
func inTxnOK(cmd []string) bool {
	name := strings.ToUpper(cmd[0])
	switch name {
	case "HGETALL", "TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME":
		return false
	case "OBJECT": // Redis refuses an unknown subcommand at queueing, cruzd at EXEC
		return false
	}
	return !unorderedReplies[name]
}

// sortedPairs sorts a RESP array of bulk strings by pairs (HGETALL).
func sortedPairs(r string) string {
	lines := strings.SplitAfter(r, "\r\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "*") {
		return r
	}
	var pairs []string
	for i := 1; i+3 < len(lines); i += 4 {
		pairs = append(pairs, lines[i]+lines[i+1]+lines[i+2]+lines[i+3])
	}
	slices.Sort(pairs)
	return lines[0] + strings.Join(pairs, "")
}
