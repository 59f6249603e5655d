package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb"
	"github.com/cruzlog/cruzdb/log/memlog"
	"github.com/redis/go-redis/v9"
)

// fakeClock is a settable clock in unix milliseconds.
type fakeClock struct{ ms atomic.Int64 }

func (f *fakeClock) now() int64              { return f.ms.Load() }
func (f *fakeClock) advance(d time.Duration) { f.ms.Add(d.Milliseconds()) }

// clockServer is a test server on a fake clock whose sweeper runs only when
// the test calls s.sweep.once.
func clockServer(t *testing.T, mod func(*config)) (*server, *fakeClock) {
	clk := &fakeClock{}
	clk.ms.Store(1_700_000_000_000)
	s := testServer(t, func(c *config) {
		c.clock = clk.now
		c.sweepInterval = -1
		if mod != nil {
			mod(c)
		}
	})
	return s, clk
}

// rawKeys counts the cruzdb keys with a prefix byte.
func rawKeys(t *testing.T, s *server, prefix byte) int {
	t.Helper()
	n := 0
	err := s.db.View(context.Background(), func(tx *cruzdb.Txn) error {
		n = 0 // View runs fn again after a peer's trim
		for range tx.Keys([]byte{prefix}, []byte{prefix + 1}) {
			n++
		}
		return tx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestExpiry: keys vanish for readers at their expiry by the server's
// clock, are deleted by intentions (lazily when seen, and by the sweep),
// and a hash's or set's elements are collected after it expires.
func TestExpiry(t *testing.T) {
	s, clk := clockServer(t, nil)
	c := client(t, s)
	ctx := ctxT(t)
	if v := must[any](t, c.Do(ctx, "SET", "a", "1", "EX", "10")); v != "OK" {
		t.Fatal(v)
	}
	c.Set(ctx, "keep", "x", 0)
	if v := mustInt(t, c.Do(ctx, "TTL", "a")); v != 10 {
		t.Fatalf("TTL = %d", v)
	}
	if v := mustInt(t, c.Do(ctx, "PEXPIRETIME", "a")); v != clk.now()+10_000 {
		t.Fatalf("PEXPIRETIME = %d, want %d", v, clk.now()+10_000)
	}
	clk.advance(9999 * time.Millisecond)
	if v := must[string](t, c.Get(ctx, "a")); v != "1" {
		t.Fatalf("GET a 1 ms before its expiry = %q", v)
	}
	clk.advance(time.Millisecond)
	if err := c.Get(ctx, "a").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET a at its expiry: %v", err)
	}
	if v := mustInt(t, c.Do(ctx, "TTL", "a")); v != -2 {
		t.Fatalf("TTL of an expired key = %d", v)
	}
	if keys := must[[]string](t, c.Keys(ctx, "*")); !slices.Equal(keys, []string{"keep"}) {
		t.Fatalf("KEYS * = %q", keys)
	}
	// Still in the database (as in Redis's DBSIZE) until an intention
	// deletes it: the sweep does, for the key a read found expired.
	if n := rawKeys(t, s, metaPrefix); n != 2 {
		t.Fatalf("%d keys before the sweep, want 2", n)
	}
	commits := s.db.Stats().Commits
	s.sweep.once()
	if n := rawKeys(t, s, metaPrefix); n != 1 {
		t.Fatalf("%d keys after the sweep, want 1", n)
	}
	if got := s.db.Stats().Commits - commits; got != 1 {
		t.Fatalf("the sweep committed %d intentions, want 1", got)
	}
	if s.sweep.expired.Load() != 1 {
		t.Fatalf("expired_keys = %d", s.sweep.expired.Load())
	}

	// A key no read finds expired is found by the sweep's walk.
	c.Set(ctx, "b", "1", 0)
	if v := mustInt(t, c.Do(ctx, "PEXPIRE", "b", "5")); v != 1 {
		t.Fatal(v)
	}
	clk.advance(time.Second)
	s.sweep.once()
	if n := rawKeys(t, s, metaPrefix); n != 1 {
		t.Fatalf("%d keys after sweeping an expired key nobody read, want 1", n)
	}

	// SET NX on an expired key writes; the expired hash's elements are
	// not seen by the new hash of the same name, and are collected.
	c.HSet(ctx, "h", "f", "v", "g", "w")
	c.Do(ctx, "EXPIRE", "h", "5")
	clk.advance(time.Minute)
	if v := mustInt(t, c.Do(ctx, "HLEN", "h")); v != 0 {
		t.Fatalf("HLEN of an expired hash = %d", v)
	}
	c.HSet(ctx, "h", "z", "1")
	if v := must[map[string]string](t, c.HGetAll(ctx, "h")); len(v) != 1 || v["z"] != "1" {
		t.Fatalf("HGETALL of a hash made after the old one expired = %v", v)
	}
	if n := rawKeys(t, s, subPrefix); n != 3 {
		t.Fatalf("%d elements before collection, want 3 (2 orphans)", n)
	}
	s.sweep.once()
	if n := rawKeys(t, s, subPrefix); n != 1 {
		t.Fatalf("%d elements after the sweep, want 1", n)
	}
	// DEL leaves the elements to the sweep too.
	c.SAdd(ctx, "s", "1", "2", "3")
	c.Del(ctx, "s")
	s.sweep.once()
	if n := rawKeys(t, s, subPrefix); n != 1 {
		t.Fatalf("%d elements after DEL and a sweep, want 1", n)
	}
}

// TestExpiryAcrossNodes: two servers on one log whose clocks disagree by
// two hours. Each decides expiry by its own clock when it reads; what it
// then writes is in its intention, so both end in the same state.
func TestExpiryAcrossNodes(t *testing.T) {
	ml := memlog.New(nil)
	t.Cleanup(func() { ml.Close() })
	a, clkA := clockServer(t, func(c *config) { c.log = ml })
	b, clkB := clockServer(t, func(c *config) { c.log = ml })
	clkB.ms.Store(clkA.now() + 2*time.Hour.Milliseconds())
	ca, cb := client(t, a), client(t, b)
	ctx := ctxT(t)
	if err := ca.Set(ctx, "k", "from-a", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// B's clock is past the expiry: for B the key is gone, and SET NX writes.
	if err := cb.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("B: GET k = %v, want nil (expired by B's clock)", err)
	}
	if ok := must[bool](t, cb.SetNX(ctx, "k", "from-b", 0)); !ok {
		t.Fatal("B: SET NX on a key expired by B's clock did not write")
	}
	if err := a.db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if v := must[string](t, ca.Get(ctx, "k")); v != "from-b" {
		t.Fatalf("A after B's SET NX: GET k = %q", v)
	}
	if v := mustInt(t, ca.Do(ctx, "TTL", "k")); v != -1 {
		t.Fatalf("A: TTL k = %d, want -1 (SET NX wrote no expiry)", v)
	}
	// Byte for byte the same state on both.
	dump := func(s *server) []byte {
		var out []byte
		err := s.db.View(ctx, func(tx *cruzdb.Txn) error {
			out = out[:0] // View runs fn again after a peer's trim
			for k, v := range tx.Range(nil, nil) {
				out = append(append(append(out, k...), 0), v...)
			}
			return tx.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if da, db := dump(a), dump(b); !bytes.Equal(da, db) {
		t.Fatalf("states differ:\nA %q\nB %q", da, db)
	}
}

// TestTypes: WRONGTYPE as Redis words it, TYPE, SCAN TYPE, and DEL,
// EXISTS, RENAME, COPY and EXPIRE on every type.
func TestTypes(t *testing.T) {
	s := testServer(t, nil)
	c := client(t, s)
	ctx := ctxT(t)
	c.Set(ctx, "str", "v", 0)
	c.HSet(ctx, "hash", "f1", "1", "f2", "2")
	c.SAdd(ctx, "set", "a", "b", "c")
	const wrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"
	wantErr(t, c.Get(ctx, "hash").Err(), wrongType)
	wantErr(t, c.Incr(ctx, "set").Err(), wrongType)
	wantErr(t, c.HGet(ctx, "str", "f").Err(), wrongType)
	wantErr(t, c.SAdd(ctx, "hash", "x").Err(), wrongType)
	wantErr(t, c.SInter(ctx, "set", "hash").Err(), wrongType)
	for k, want := range map[string]string{"str": "string", "hash": "hash", "set": "set", "none": "none"} {
		if got := must[string](t, c.Type(ctx, k)); got != want {
			t.Errorf("TYPE %s = %q", k, got)
		}
	}
	for typ, want := range map[string][]string{"string": {"str"}, "hash": {"hash"}, "set": {"set"}, "list": nil} {
		keys, _ := must2(t, c.ScanType(ctx, 0, "", 100, typ))
		if !slices.Equal(keys, want) {
			t.Errorf("SCAN TYPE %s = %q", typ, keys)
		}
	}
	if n := must[int64](t, c.Exists(ctx, "str", "hash", "set", "none")); n != 3 {
		t.Fatalf("EXISTS = %d", n)
	}
	// RENAME and COPY move a hash's fields; the old name is gone.
	if err := c.Rename(ctx, "hash", "hash2").Err(); err != nil {
		t.Fatal(err)
	}
	if v := must[map[string]string](t, c.HGetAll(ctx, "hash2")); len(v) != 2 || v["f2"] != "2" {
		t.Fatalf("renamed hash = %v", v)
	}
	if n := must[int64](t, c.Exists(ctx, "hash")); n != 0 {
		t.Fatal("RENAME left the old key")
	}
	if n := must[int64](t, c.Copy(ctx, "set", "set2", 0, false)); n != 1 {
		t.Fatal("COPY of a set")
	}
	c.SAdd(ctx, "set2", "d")
	if n := must[int64](t, c.SCard(ctx, "set")); n != 3 {
		t.Fatalf("a COPY shares members with its source: SCARD %d", n)
	}
	if ok := must[bool](t, c.Expire(ctx, "set2", time.Hour)); !ok {
		t.Fatal("EXPIRE on a set")
	}
	if d := must[time.Duration](t, c.TTL(ctx, "set2")); d != time.Hour {
		t.Fatalf("TTL of a set = %v", d)
	}
	if n := must[int64](t, c.Del(ctx, "str", "hash2", "set", "set2")); n != 4 {
		t.Fatalf("DEL of every type = %d", n)
	}
	if n := must[int64](t, c.DBSize(ctx)); n != 0 {
		t.Fatalf("DBSIZE after DEL = %d", n)
	}
}

// TestRandomAndScanCommands covers what the differential test cannot
// compare: random choices and element scans.
func TestRandomAndScanCommands(t *testing.T) {
	s := testServer(t, nil)
	c := client(t, s)
	ctx := ctxT(t)
	if err := c.RandomKey(ctx).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("RANDOMKEY of an empty database: %v", err)
	}
	var members []any
	for i := range 50 {
		members = append(members, string(rune('a'+i%26))+string(rune('A'+i/26)))
	}
	c.SAdd(ctx, "s", members...)
	c.Set(ctx, "x", "1", 0)
	seen := map[string]bool{}
	for range 50 {
		seen[must[string](t, c.RandomKey(ctx))] = true
	}
	// Two keys, 50 draws: each is drawn (a small database is chosen from
	// uniformly; missing one has probability 2^-49).
	if len(seen) != 2 || !seen["s"] || !seen["x"] {
		t.Fatalf("RANDOMKEY = %v", seen)
	}
	if m := must[string](t, c.SRandMember(ctx, "s")); !slices.Contains(members, any(m)) {
		t.Fatalf("SRANDMEMBER = %q", m)
	}
	if ms := must[[]string](t, c.SRandMemberN(ctx, "s", 10)); len(ms) != 10 || len(slices.Compact(slices.Sorted(slices.Values(ms)))) != 10 {
		t.Fatalf("SRANDMEMBER 10 = %q (want 10 distinct)", ms)
	}
	if ms := must[[]string](t, c.SRandMemberN(ctx, "s", -100)); len(ms) != 100 {
		t.Fatalf("SRANDMEMBER -100 gave %d", len(ms))
	}
	popped := must[[]string](t, c.SPopN(ctx, "s", 20))
	if len(popped) != 20 || must[int64](t, c.SCard(ctx, "s")) != 30 {
		t.Fatalf("SPOP 20: %d popped, %d left", len(popped), c.SCard(ctx, "s").Val())
	}
	for _, m := range popped {
		if must[bool](t, c.SIsMember(ctx, "s", m)) {
			t.Fatalf("popped %q is still a member", m)
		}
	}
	// SSCAN and HSCAN with a small COUNT visit every element once.
	var all []string
	for cur := uint64(0); ; {
		keys, next := must2(t, c.SScan(ctx, "s", cur, "", 7))
		all = append(all, keys...)
		if cur = next; cur == 0 {
			break
		}
	}
	if len(all) != 30 {
		t.Fatalf("SSCAN visited %d members, want 30", len(all))
	}
	for i := range 40 {
		c.HSet(ctx, "h", "field"+string(rune('0'+i/10))+string(rune('0'+i%10)), i)
	}
	var pairs []string
	for cur := uint64(0); ; {
		kv, next := must2(t, c.HScan(ctx, "h", cur, "field1*", 5))
		pairs = append(pairs, kv...)
		if cur = next; cur == 0 {
			break
		}
	}
	if len(pairs) != 20 || pairs[0] != "field10" || pairs[1] != "10" {
		t.Fatalf("HSCAN MATCH field1* = %q", pairs)
	}
	if f := must[[]string](t, c.HRandField(ctx, "h", 3)); len(f) != 3 {
		t.Fatalf("HRANDFIELD 3 = %q", f)
	}
	kv, err := c.Do(ctx, "HRANDFIELD", "h", "-5", "WITHVALUES").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	if len(kv) != 10 {
		t.Fatalf("HRANDFIELD -5 WITHVALUES = %q", kv)
	}
	// FLUSHALL deletes every key and its elements.
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n := rawKeys(t, s, metaPrefix) + rawKeys(t, s, subPrefix); n != 0 {
		t.Fatalf("%d keys left after FLUSHALL", n)
	}
}

// TestFlushAllOneIntention: FLUSHALL is one intention however many keys
// there are, and it touches watched keys (EXEC after it replies nil).
func TestFlushAllOneIntention(t *testing.T) {
	s := testServer(t, nil)
	c := client(t, s)
	ctx := ctxT(t)
	for i := range 300 {
		c.Set(ctx, "k"+itoa(i), "v", 0)
		c.HSet(ctx, "h"+itoa(i%10), "f"+itoa(i), "v")
	}
	w := dialRaw(t, s)
	w.send("WATCH k7\r\n")
	if got := w.reply(); got != "+OK\r\n" {
		t.Fatal(got)
	}
	before := s.db.Stats().IntentionsAppended
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n := s.db.Stats().IntentionsAppended - before; n != 1 {
		t.Fatalf("FLUSHALL of 610 keys appended %d intentions, want 1", n)
	}
	if n := rawKeys(t, s, metaPrefix) + rawKeys(t, s, subPrefix); n != 0 {
		t.Fatalf("%d keys left after FLUSHALL", n)
	}
	w.send("MULTI\r\nSET k7 x\r\nEXEC\r\n")
	for _, want := range []string{"+OK\r\n", "+QUEUED\r\n", "*-1\r\n"} {
		if got := w.reply(); got != want {
			t.Fatalf("EXEC watching a key FLUSHALL deleted: %q, want %q", got, want)
		}
	}
	// Inside MULTI it is part of the transaction.
	c.Set(ctx, "a", "1", 0)
	w.send("MULTI\r\nSET b 2\r\nFLUSHDB\r\nSET c 3\r\nEXEC\r\nKEYS *\r\n")
	for _, want := range []string{"+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "*3\r\n+OK\r\n+OK\r\n+OK\r\n", "*1\r\n$1\r\nc\r\n"} {
		if got := w.reply(); got != want {
			t.Fatalf("FLUSHDB in MULTI: %q, want %q", got, want)
		}
	}
}
