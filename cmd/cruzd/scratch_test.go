package main

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestScratchBuffers: a connection builds metadata keys and encodings in
// buffers it reuses from command to command (loadMeta, storeMeta). Keys and
// values of very different sizes, pipelined in one batch (one transaction)
// and in read-only batches, must each read and write their own bytes: no
// command sees a neighbour's key or value, and a big key or value does not
// stay in the next command's.
func TestScratchBuffers(t *testing.T) {
	s := testServer(t, nil)
	r := dialRaw(t, s)
	long := strings.Repeat("k", 3*keepScratch)
	big := strings.Repeat("v", 5*keepScratch)
	bulk, cmd := bulkReply, respCommand
	// One writing batch: every SET, INCR and GET in one transaction.
	r.send(cmd("SET", long, "1") + cmd("SET", "a", big) + cmd("SET", "b", "2") +
		cmd("INCR", long) + cmd("GET", "a") + cmd("GET", long) + cmd("SET", "a", "x") + cmd("GET", "b") + cmd("GET", "a"))
	r.expect("+OK\r\n", "+OK\r\n", "+OK\r\n", ":2\r\n", bulk(big), bulk("2"), "+OK\r\n", bulk("2"), bulk("x"))
	// Read-only batches, long and short keys alternating, absent keys among them.
	for range 3 {
		r.send(cmd("GET", long) + cmd("GET", "b") + cmd("GET", long+"x") + cmd("GET", "a") + cmd("GET", "c") + cmd("MGET", "a", long, "b"))
		r.expect(bulk("2"), bulk("2"), "$-1\r\n", bulk("x"), "$-1\r\n", "*3\r\n"+bulk("x")+bulk("2")+bulk("2"))
	}
}

// TestGetReadsNoClock: reading a key without an expiry does not read the
// clock (loadMeta reads it only for a key that has one), and a key with one
// still expires by it.
func TestGetReadsNoClock(t *testing.T) {
	var reads atomic.Int64
	clk := &fakeClock{}
	clk.ms.Store(1_700_000_000_000)
	s := testServer(t, func(c *config) {
		c.clock = func() int64 { reads.Add(1); return clk.now() }
		c.sweepInterval = -1
	})
	r := dialRaw(t, s)
	r.send("SET plain 1\r\nSET timed 2 PX 1000\r\n")
	r.expect("+OK\r\n", "+OK\r\n")
	before := reads.Load()
	r.send(strings.Repeat("GET plain\r\n", 50))
	for range 50 {
		r.expect("$1\r\n1\r\n")
	}
	if n := reads.Load() - before; n != 0 {
		t.Fatalf("50 GETs of a key without an expiry read the clock %d times", n)
	}
	r.send("GET timed\r\n")
	r.expect("$1\r\n2\r\n")
	if reads.Load() == before {
		t.Fatal("GET of a key with an expiry did not read the clock")
	}
	clk.advance(time.Second)
	r.send("GET timed\r\nGET plain\r\n")
	r.expect("$-1\r\n", "$1\r\n1\r\n")
}
