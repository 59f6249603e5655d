package main

import (
	"bufio"
	"net"
	"strconv"
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

// TestOwnedWrites: small writes are built in chunks the connection hands
// over to the transaction (conn.owned, Txn.PutOwned). A pipelined batch of
// SETs of values around and over ownedMax, many per chunk and across chunk
// ends, some keys twice, must read back every key's last value: no write
// shares bytes with another.
func TestOwnedWrites(t *testing.T) {
	s := testServer(t, nil)
	r := dialRaw(t, s)
	const keys = 300
	val := func(i, round int) string {
		return strings.Repeat(string(rune('a'+(i+round)%26)), (i*37+round*11)%(ownedMax+200))
	}
	var batch strings.Builder
	var want []string
	for round := range 2 {
		for i := range keys {
			if round == 1 && i%3 != 0 {
				continue
			}
			batch.WriteString(respCommand("SET", "k"+strconv.Itoa(i), val(i, round)))
			want = append(want, "+OK\r\n")
		}
	}
	r.send(batch.String())
	r.expect(want...)
	batch.Reset()
	want = want[:0]
	for i := range keys {
		batch.WriteString(respCommand("GET", "k"+strconv.Itoa(i)))
		if i%3 == 0 {
			want = append(want, bulkReply(val(i, 1)))
		} else {
			want = append(want, bulkReply(val(i, 0)))
		}
	}
	r.send(batch.String())
	r.expect(want...)
}

// TestStoreMetaAllocs: a small write hands the transaction bytes from the
// connection's chunk, allocated once for its batch's writes (readBatch
// sets ownFor to their arguments' bytes); the write allocates nothing of
// its own (Txn.Put's copies of key and value are what it saves).
func TestStoreMetaAllocs(t *testing.T) {
	s := testServer(t, nil)
	c := &conn{s: s, ownFor: 200 * (ownedPerCmd + 120)} // a batch of 200 SETs
	tx, err := s.db.Begin(ctxT(t), true)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	key, value := []byte("key:000000012345"), []byte(strings.Repeat("v", 100))
	m := meta{typ: typeString, value: value}
	if err := c.storeMeta(tx, key, m); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := c.storeMeta(tx, key, m); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("storeMeta of a 100-byte value allocates %v times a write, want 0", n)
	}
	got, ok, err := c.loadMeta(tx, key)
	if err != nil || !ok || string(got.value) != string(value) {
		t.Fatalf("loadMeta after storeMeta: %q %v %v, want the value", got.value, ok, err)
	}
}

// TestIdleConnHoldsNoChunk: a connection drops its owned chunk after each
// batch, so an idle connection keeps no memory of its writes. (net.Pipe
// orders the server's work before its reply with the test's read of it.)
func TestIdleConnHoldsNoChunk(t *testing.T) {
	s := testServer(t, nil)
	client, server := net.Pipe()
	defer client.Close()
	c := newConn(s, server)
	s.mu.Lock() // registered as the accept loop registers its connections
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.serve()
	}()
	br := bufio.NewReader(client)
	if _, err := client.Write([]byte(respCommand("SET", "k", "v") + respCommand("SET", "l", "w"))); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if line, err := br.ReadString('\n'); err != nil || line != "+OK\r\n" {
			t.Fatalf("SET replied %q, %v", line, err)
		}
	}
	if c.own != nil {
		t.Fatalf("after its batch the connection holds a chunk of %d bytes", cap(c.own))
	}
	client.Close()
	<-done
}
