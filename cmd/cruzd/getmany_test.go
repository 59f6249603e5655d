package main

import (
	"math/rand/v2"
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
	s, clk := clockServer(t, nil)
	r := dialRaw(t, s)
	bulk, cmd := bulkReply, respCommand
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
