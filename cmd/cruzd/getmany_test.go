package main

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPipelinedGetsMatchUnbatched: a pipeline of GETs mixed with other
// read commands (MGET, EXISTS, STRLEN, TYPE, HGET), GETs of missing keys,
// of keys of other types, of keys with an expiry (live and passed), of an
// empty and a binary value, of a key over the size limit and with the wrong
// arity, gets the same reply to every command as the same commands sent one
// at a time (where each GET runs alone, without GetMany); and the runs of
// GETs did go through GetMany.
func TestPipelinedGetsMatchUnbatched(t *testing.T) {
	r, keys := getManyFixture(t)
	bulk, cmd := bulkReply, respCommand
	rng := rand.New(rand.NewPCG(20, 1))
	var cmds []string
	for range 300 {
		k := keys[rng.IntN(len(keys))]
		switch x := rng.IntN(20); {
		case x < 14:
			cmds = append(cmds, cmd("GET", k))
		case x == 14:
			cmds = append(cmds, cmd("MGET", k, keys[rng.IntN(len(keys))]))
		case x == 15:
			cmds = append(cmds, cmd("EXISTS", k))
		case x == 16:
			cmds = append(cmds, cmd("STRLEN", k))
		case x == 17:
			cmds = append(cmds, cmd("TYPE", k))
		case x == 18:
			cmds = append(cmds, cmd("HGET", "h", "f"))
		default:
			cmds = append(cmds, cmd("GET")) // wrong arity
		}
	}
	// The unbatched replies: one command per round trip.
	want := make([]string, len(cmds))
	for i, c := range cmds {
		r.send(c)
		want[i] = r.reply()
	}
	runs := getManyRuns.Load()
	for round := range 2 {
		r.send(strings.Join(cmds, ""))
		for i, c := range cmds {
			if got := r.reply(); got != want[i] {
				t.Fatalf("round %d command %d %.60q: pipelined reply %.80q, alone %.80q", round, i, c, got, want[i])
			}
		}
	}
	if getManyRuns.Load() == runs {
		t.Fatal("no run of pipelined GETs went through GetMany")
	}
	// Every kind of reply was compared.
	joined := strings.Join(want, "")
	for _, w := range []string{"$-1\r\n", "WRONGTYPE", bulk("still here"), bulk(""), bulk("a\r\nb\x00c"), "wrong number of arguments", bulk(strings.Repeat("B", 2*keepValueScratch))} {
		if !strings.Contains(joined, w) {
			t.Fatalf("no reply %q among the compared ones", w)
		}
	}
}

// getManyFixture starts a server and writes keys of every kind a GET or an
// MGET may meet (missing, other types, expiries live and passed, empty,
// binary, over the kept value buffer); it returns a connection and the keys
// to read, including one over the size limit and the empty key.
func getManyFixture(t *testing.T) (*rawConn, []string) {
	t.Helper()
	s, clk := clockServer(t, nil)
	r := dialRaw(t, s)
	cmd := respCommand
	setup := []string{
		cmd("SET", "s0", "zero"), cmd("SET", "s1", "one"), cmd("SET", "empty", ""),
		cmd("SET", "bin", "a\r\nb\x00c"), cmd("HSET", "h", "f", "hv"), cmd("SADD", "st", "m"),
		cmd("SET", "live", "still here", "PX", "60000"), cmd("SET", "gone", "expired", "PX", "1000"),
		cmd("SET", "key:000000000001", strings.Repeat("v", 100)),
		// Over the value buffer a connection keeps (keepValueScratch):
		// runs with it drop the buffer, the next grow it again.
		cmd("SET", "big", strings.Repeat("B", 2*keepValueScratch)),
	}
	r.send(strings.Join(setup, ""))
	for range setup {
		if rep := r.reply(); rep != "+OK\r\n" && rep != ":1\r\n" {
			t.Fatalf("setup: %q", rep)
		}
	}
	clk.advance(2 * time.Second) // "gone" has expired; no sweep runs
	long := strings.Repeat("L", 20<<10)
	keys := []string{"s0", "s1", "empty", "bin", "h", "st", "live", "gone", "key:000000000001", "missing", "s0x", "", long, "big"}
	return r, keys
}

// TestMGetMatchesOneKeyMGets: an MGET of several keys (looked up with one
// GetMany) replies what the one-key MGETs of its keys reply, element by
// element (and the first one's error if any of them were an error),
// including keys of another type and over the size limit, which take the
// one-key path.
func TestMGetMatchesOneKeyMGets(t *testing.T) {
	r, keys := getManyFixture(t)
	one := make(map[string]string, len(keys))
	for _, k := range keys {
		r.send(respCommand("MGET", k))
		rep := r.reply()
		if e, ok := strings.CutPrefix(rep, "*1\r\n"); ok {
			rep = e
		} else if !strings.HasPrefix(rep, "-") {
			t.Fatalf("MGET %.20q: %.80q", k, rep)
		}
		one[k] = rep
	}
	rng := rand.New(rand.NewPCG(22, 2))
	runs := getManyRuns.Load()
	var fallbacks [2]int
	for range 200 {
		n := 2 + rng.IntN(6)
		args := []string{"MGET"}
		want, failed := "*"+strconv.Itoa(n)+"\r\n", ""
		for range n {
			k := keys[rng.IntN(len(keys))]
			args = append(args, k)
			switch {
			case k == "h":
				fallbacks[0]++
			case len(k) > maxRedisKey:
				fallbacks[1]++
			}
			if failed == "" && strings.HasPrefix(one[k], "-") {
				failed = one[k]
			}
			want += one[k]
		}
		if failed != "" {
			want = failed
		}
		r.send(respCommand(args...))
		if got := r.reply(); got != want {
			t.Fatalf("%.120q: reply %.120q, one key at a time %.120q", args, got, want)
		}
	}
	if getManyRuns.Load() == runs {
		t.Fatal("no MGET went through GetMany")
	}
	// Both fallbacks were met: a key of another type (that key alone
	// takes the one-key path) and the key over the size limit (GetMany
	// fails: every key takes it).
	if fallbacks[0] == 0 || fallbacks[1] == 0 {
		t.Fatalf("MGETs with a hash key %d, with the long key %d: a fallback was not compared", fallbacks[0], fallbacks[1])
	}
}
