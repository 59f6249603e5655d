package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %q", want)
	}
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got error %q, want %q", err.Error(), want)
	}
}

func must[T any](t *testing.T, cmd interface {
	Result() (T, error)
}) T {
	t.Helper()
	v, err := cmd.Result()
	if err != nil {
		t.Fatalf("%v: %v", cmd, err)
	}
	return v
}

func TestConnectionCommands(t *testing.T) {
	s := testServer(t, nil)
	c := client(t, s)
	ctx := ctxT(t)

	if v := must[string](t, c.Ping(ctx)); v != "PONG" {
		t.Fatalf("PING = %q", v)
	}
	if v := must[any](t, c.Do(ctx, "PING", "hi")); v != "hi" {
		t.Fatalf("PING hi = %q", v)
	}
	wantErr(t, c.Do(ctx, "PING", "a", "b").Err(), "ERR wrong number of arguments for 'ping' command")
	if v := must[string](t, c.Echo(ctx, "hello\r\nworld")); v != "hello\r\nworld" {
		t.Fatalf("ECHO = %q", v)
	}
	if v := must[any](t, c.Do(ctx, "SELECT", "0")); v != "OK" {
		t.Fatalf("SELECT 0 = %v", v)
	}
	wantErr(t, c.Do(ctx, "SELECT", "1").Err(), "ERR DB index is out of range")
	wantErr(t, c.Do(ctx, "SELECT", "x").Err(), "ERR value is not an integer or out of range")

	// COMMAND, CONFIG GET: what redis-cli and redis-benchmark ask for.
	if n := mustInt(t, c.Do(ctx, "COMMAND", "COUNT")); n != int64(len(s.specs)) {
		t.Fatalf("COMMAND COUNT = %d, want %d", n, len(s.specs))
	}
	if v := must[any](t, c.Do(ctx, "COMMAND", "DOCS")); len(v.([]any)) != 2*len(s.specs) {
		t.Fatalf("COMMAND DOCS = %v", v)
	}
	all := must[any](t, c.Do(ctx, "COMMAND")).([]any)
	if len(all) != len(s.specs) {
		t.Fatalf("COMMAND gave %d entries, want %d", len(all), len(s.specs))
	}
	info := must[any](t, c.Do(ctx, "COMMAND", "INFO", "get", "nosuch")).([]any)
	if len(info) != 2 || info[0].([]any)[0] != "get" || info[0].([]any)[1] != int64(2) || info[1] != nil {
		t.Fatalf("COMMAND INFO get nosuch = %v", info)
	}
	wantErr(t, c.Do(ctx, "COMMAND", "FOO").Err(), "ERR unknown subcommand 'FOO'. Try COMMAND HELP.")
	cfg := must[map[string]string](t, c.ConfigGet(ctx, "save"))
	if v, ok := cfg["save"]; !ok || v != "" {
		t.Fatalf("CONFIG GET save = %v", cfg)
	}
	cfg = must[map[string]string](t, c.ConfigGet(ctx, "append*"))
	if cfg["appendonly"] != "yes" || cfg["appendfsync"] != "no" {
		t.Fatalf("CONFIG GET append* = %v", cfg)
	}
	if cfg := must[map[string]string](t, c.ConfigGet(ctx, "nosuchparam")); len(cfg) != 0 {
		t.Fatalf("CONFIG GET nosuchparam = %v", cfg)
	}
	wantErr(t, c.ConfigSet(ctx, "maxmemory", "1").Err(), "ERR CONFIG SET maxmemory is not supported by cruzd")
	// Tunables of Redis's encodings are accepted, remembered and ignored.
	if err := c.ConfigSet(ctx, "hash-max-listpack-entries", "16").Err(); err != nil {
		t.Fatal(err)
	}
	if cfg := must[map[string]string](t, c.ConfigGet(ctx, "hash-max-listpack-entries")); cfg["hash-max-listpack-entries"] != "16" {
		t.Fatalf("CONFIG GET after CONFIG SET = %v", cfg)
	}
	wantErr(t, c.Do(ctx, "CONFIG", "FOO").Err(), "ERR unknown subcommand or wrong number of arguments for 'FOO'")

	// CLIENT, HELLO, AUTH.
	if v := must[any](t, c.Do(ctx, "CLIENT", "SETNAME", "me")); v != "OK" {
		t.Fatal(v)
	}
	wantErr(t, c.Do(ctx, "HELLO", "3").Err(), "NOPROTO")
	wantErr(t, c.Do(ctx, "AUTH", "pw").Err(), "ERR AUTH <password> called without any password configured")
	hello := must[any](t, c.Do(ctx, "HELLO", "2")).([]any)
	if hello[0] != "server" || hello[5] != int64(2) {
		t.Fatalf("HELLO 2 = %v", hello)
	}

	// INFO: every section asked for, the cruzdb one included.
	must[string](t, c.Set(ctx, "k", "v", 0))
	inf := must[string](t, c.Info(ctx))
	for _, want := range []string{"# Server", "redis_version:", "# Keyspace", "db0:keys=1,expires=0", "# Cruzdb", "log_tail:", "processor_position:", "commits:", "aborts:", "afterimage_bytes:", "unflushed_bytes:", "cached_bytes:", "backpressure_waits:0", "node_loads:0", "node_evictions:0"} {
		if !strings.Contains(inf, want) {
			t.Errorf("INFO lacks %q:\n%s", want, inf)
		}
	}
	inf = must[string](t, c.Info(ctx, "cruzdb"))
	if strings.Contains(inf, "# Server") || !strings.Contains(inf, "# Cruzdb") {
		t.Fatalf("INFO cruzdb:\n%s", inf)
	}
	if n := must[int64](t, c.DBSize(ctx)); n != 1 {
		t.Fatalf("DBSIZE = %d", n)
	}
	if v := must[any](t, c.Do(ctx, "QUIT")); v != "OK" {
		t.Fatalf("QUIT = %v", v)
	}
}

func TestStringCommands(t *testing.T) {
	s := testServer(t, nil)
	c := client(t, s)
	ctx := ctxT(t)

	// GET / SET and options.
	if err := c.Get(ctx, "missing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET missing: %v", err)
	}
	must[string](t, c.Set(ctx, "a", "1", 0))
	if v := must[string](t, c.Get(ctx, "a")); v != "1" {
		t.Fatalf("GET a = %q", v)
	}
	if ok := must[bool](t, c.SetNX(ctx, "a", "2", 0)); ok {
		t.Fatal("SET NX on an existing key succeeded")
	}
	if ok := must[bool](t, c.SetNX(ctx, "b", "2", 0)); !ok {
		t.Fatal("SET NX on a new key failed")
	}
	if ok := must[bool](t, c.SetXX(ctx, "nope", "x", 0)); ok {
		t.Fatal("SET XX on a missing key succeeded")
	}
	if ok := must[bool](t, c.SetXX(ctx, "a", "3", 0)); !ok {
		t.Fatal("SET XX on an existing key failed")
	}
	if v := must[any](t, c.Do(ctx, "SET", "a", "4", "GET")); v != "3" {
		t.Fatalf("SET GET = %v", v)
	}
	if v, err := c.Do(ctx, "SET", "fresh", "1", "GET").Result(); !errors.Is(err, redis.Nil) || v != nil {
		t.Fatalf("SET GET on a new key = %v, %v", v, err)
	}
	if v := must[any](t, c.Do(ctx, "SET", "a", "5", "NX", "GET")); v != "4" {
		t.Fatalf("SET NX GET = %v", v)
	}
	if v := must[string](t, c.Get(ctx, "a")); v != "4" {
		t.Fatalf("SET NX GET wrote: a = %q", v)
	}
	wantErr(t, c.Do(ctx, "SET", "a", "1", "NX", "XX").Err(), "ERR syntax error")
	wantErr(t, c.Do(ctx, "SET", "a", "1", "BOGUS").Err(), "ERR syntax error")
	for _, opt := range [][]any{{"EX", "0"}, {"PX", "-1"}, {"EXAT", "0"}, {"PXAT", "-5"}, {"EX", "9223372036854775"}} {
		args := append([]any{"SET", "a", "1"}, opt...)
		wantErr(t, c.Do(ctx, args...).Err(), "ERR invalid expire time in 'set' command")
	}
	for _, opt := range [][]any{{"EX", "1", "PX", "1"}, {"KEEPTTL", "EX", "1"}, {"EX"}} {
		args := append([]any{"SET", "a", "1"}, opt...)
		wantErr(t, c.Do(ctx, args...).Err(), "ERR syntax error")
	}
	if v := must[string](t, c.Get(ctx, "a")); v != "4" {
		t.Fatalf("a failed SET changed a: %q", v)
	}
	wantErr(t, c.Set(ctx, "", "x", 0).Err(), "ERR empty keys are not supported")
	if err := c.Get(ctx, "").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET '' = %v", err)
	}
	wantErr(t, c.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command")
	wantErr(t, c.Do(ctx, "GET", "a", "b").Err(), "ERR wrong number of arguments for 'get' command")

	// SETNX, GETSET.
	if v := mustInt(t, c.Do(ctx, "SETNX", "n1", "x")); v != 1 {
		t.Fatalf("SETNX new = %d", v)
	}
	if v := mustInt(t, c.Do(ctx, "SETNX", "n1", "y")); v != 0 {
		t.Fatalf("SETNX existing = %d", v)
	}
	if v := must[string](t, c.GetSet(ctx, "n1", "z")); v != "x" {
		t.Fatalf("GETSET = %q", v)
	}
	if err := c.GetSet(ctx, "n2", "z").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GETSET new = %v", err)
	}

	// MSET, MGET.
	must[string](t, c.MSet(ctx, "m1", "1", "m2", "2", "m3", "3"))
	got := must[[]any](t, c.MGet(ctx, "m1", "nope", "m3"))
	if !slices.Equal(got, []any{"1", nil, "3"}) {
		t.Fatalf("MGET = %v", got)
	}
	wantErr(t, c.Do(ctx, "MSET", "a", "1", "b").Err(), "ERR wrong number of arguments for 'mset' command")
	wantErr(t, c.Do(ctx, "MSET", "ok", "1", "", "2").Err(), "ERR empty keys")
	if err := c.Get(ctx, "ok").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("a failed MSET wrote part of its keys: %v", err)
	}

	// DEL, EXISTS.
	if n := must[int64](t, c.Exists(ctx, "m1", "m2", "nope", "m1")); n != 3 {
		t.Fatalf("EXISTS = %d", n)
	}
	if n := must[int64](t, c.Del(ctx, "m1", "m2", "nope", "m1")); n != 2 {
		t.Fatalf("DEL = %d", n)
	}
	if n := must[int64](t, c.Exists(ctx, "m1", "m2")); n != 0 {
		t.Fatalf("EXISTS after DEL = %d", n)
	}

	// INCR family.
	if v := must[int64](t, c.Incr(ctx, "ctr")); v != 1 {
		t.Fatalf("INCR new = %d", v)
	}
	if v := must[int64](t, c.IncrBy(ctx, "ctr", 10)); v != 11 {
		t.Fatalf("INCRBY = %d", v)
	}
	if v := must[int64](t, c.Decr(ctx, "ctr")); v != 10 {
		t.Fatalf("DECR = %d", v)
	}
	if v := must[int64](t, c.DecrBy(ctx, "ctr", 15)); v != -5 {
		t.Fatalf("DECRBY = %d", v)
	}
	if v := must[string](t, c.Get(ctx, "ctr")); v != "-5" {
		t.Fatalf("GET ctr = %q", v)
	}
	must[string](t, c.Set(ctx, "str", "abc", 0))
	wantErr(t, c.Incr(ctx, "str").Err(), "ERR value is not an integer or out of range")
	for _, bad := range []string{" 1", "+1", "01", "-0", "1.5", "", "99999999999999999999"} {
		must[string](t, c.Set(ctx, "bad", bad, 0))
		wantErr(t, c.Incr(ctx, "bad").Err(), "ERR value is not an integer or out of range")
	}
	wantErr(t, c.Do(ctx, "INCRBY", "ctr", "x").Err(), "ERR value is not an integer or out of range")
	must[string](t, c.Set(ctx, "big", "9223372036854775807", 0))
	wantErr(t, c.Incr(ctx, "big").Err(), "ERR increment or decrement would overflow")
	must[string](t, c.Set(ctx, "small", "-9223372036854775808", 0))
	wantErr(t, c.Decr(ctx, "small").Err(), "ERR increment or decrement would overflow")
	wantErr(t, c.Do(ctx, "DECRBY", "ctr", "-9223372036854775808").Err(), "ERR decrement would overflow")

	// APPEND, STRLEN, TYPE.
	if n := must[int64](t, c.Append(ctx, "ap", "hello")); n != 5 {
		t.Fatalf("APPEND new = %d", n)
	}
	if n := must[int64](t, c.Append(ctx, "ap", " world")); n != 11 {
		t.Fatalf("APPEND = %d", n)
	}
	if v := must[string](t, c.Get(ctx, "ap")); v != "hello world" {
		t.Fatalf("GET ap = %q", v)
	}
	if n := must[int64](t, c.StrLen(ctx, "ap")); n != 11 {
		t.Fatalf("STRLEN = %d", n)
	}
	if n := must[int64](t, c.StrLen(ctx, "nope")); n != 0 {
		t.Fatalf("STRLEN missing = %d", n)
	}
	if v := must[string](t, c.Type(ctx, "ap")); v != "string" {
		t.Fatalf("TYPE = %q", v)
	}
	if v := must[string](t, c.Type(ctx, "nope")); v != "none" {
		t.Fatalf("TYPE missing = %q", v)
	}

	// Binary-safe keys and values.
	key, val := "k\x00\r\n\xff", "v\x00\r\n\xfe"
	must[string](t, c.Set(ctx, key, val, 0))
	if v := must[string](t, c.Get(ctx, key)); v != val {
		t.Fatalf("binary value = %q", v)
	}

	// Unknown command.
	wantErr(t, c.Do(ctx, "FOO", "a", "b").Err(), "ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
}

func TestKeysAndScan(t *testing.T) {
	s := testServer(t, nil)
	c := client(t, s)
	ctx := ctxT(t)
	var want []string
	for i := range 50 {
		k := "user:" + string(rune('a'+i%26)) + strings.Repeat("x", i%9)
		want = append(want, k)
	}
	want = append(want, "other", "u", "user?", "user*x")
	pairs := []any{}
	for _, k := range want {
		pairs = append(pairs, k, "v")
	}
	must[string](t, c.MSet(ctx, pairs...))
	slices.Sort(want)
	want = slices.Compact(want)

	keys := must[[]string](t, c.Keys(ctx, "*"))
	if !slices.Equal(keys, want) {
		t.Fatalf("KEYS * = %v, want %v", keys, want)
	}
	keys = must[[]string](t, c.Keys(ctx, "user:[a-c]x*"))
	for _, k := range keys {
		if !strings.HasPrefix(k, "user:a") && !strings.HasPrefix(k, "user:b") && !strings.HasPrefix(k, "user:c") {
			t.Fatalf("KEYS user:[a-c]x* returned %q", k)
		}
	}
	if len(keys) == 0 {
		t.Fatal("KEYS user:[a-c]x* returned nothing")
	}
	keys = must[[]string](t, c.Keys(ctx, `user\?`))
	if !slices.Equal(keys, []string{"user?"}) {
		t.Fatalf(`KEYS user\? = %v`, keys)
	}

	// SCAN with small counts walks everything exactly once when nothing
	// changes.
	for _, count := range []int64{1, 3, 10, 1000} {
		var got []string
		var cur uint64
		calls := 0
		for {
			ks, next := must2(t, c.Scan(ctx, cur, "", count))
			got = append(got, ks...)
			calls++
			if next == 0 {
				break
			}
			cur = next
			if calls > 1000 {
				t.Fatal("SCAN does not end")
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("SCAN COUNT %d = %v, want %v", count, got, want)
		}
	}
	// MATCH filters; TYPE string is everything, other types nothing.
	var got []string
	var cur uint64
	for {
		ks, next := must2(t, c.Scan(ctx, cur, "user:a*", 2))
		got = append(got, ks...)
		if cur = next; cur == 0 {
			break
		}
	}
	for _, k := range got {
		if !strings.HasPrefix(k, "user:a") {
			t.Fatalf("SCAN MATCH user:a* returned %q", k)
		}
	}
	if len(got) == 0 {
		t.Fatal("SCAN MATCH user:a* returned nothing")
	}
	if ks, _ := must2(t, c.ScanType(ctx, 0, "", 1000, "hash")); len(ks) != 0 {
		t.Fatalf("SCAN TYPE hash = %v", ks)
	}
	if ks, _ := must2(t, c.ScanType(ctx, 0, "", 1000, "string")); len(ks) != len(want) {
		t.Fatalf("SCAN TYPE string gave %d keys", len(ks))
	}
	wantErr(t, c.Do(ctx, "SCAN", "x").Err(), "ERR invalid cursor")
	wantErr(t, c.Do(ctx, "SCAN", "0", "COUNT", "0").Err(), "ERR syntax error")
	wantErr(t, c.Do(ctx, "SCAN", "0", "COUNT", "x").Err(), "ERR value is not an integer or out of range")
	wantErr(t, c.Do(ctx, "SCAN", "0", "MATCH").Err(), "ERR syntax error")
}

func mustInt(t *testing.T, cmd *redis.Cmd) int64 {
	t.Helper()
	v, err := cmd.Int64()
	if err != nil {
		t.Fatalf("%v: %v", cmd, err)
	}
	return v
}

func must2(t *testing.T, cmd *redis.ScanCmd) ([]string, uint64) {
	t.Helper()
	ks, cur, err := cmd.Result()
	if err != nil {
		t.Fatal(err)
	}
	return ks, cur
}

func TestLargeValues(t *testing.T) {
	s := testServer(t, nil)
	c := client(t, s)
	ctx := ctxT(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16) // 4 MiB
	big[12345] = 0
	must[string](t, c.Set(ctx, "big", big, 0))
	v := must[string](t, c.Get(ctx, "big"))
	if v != string(big) {
		t.Fatalf("4 MiB value came back as %d bytes, different", len(v))
	}
	if n := must[int64](t, c.Append(ctx, "big", "x")); n != 4<<20+1 {
		t.Fatalf("APPEND to 4 MiB = %d", n)
	}
	// A pipeline of two more 4 MiB SETs (the daemon runs big commands in
	// batches of their own).
	p := c.Pipeline()
	for i := range 2 {
		p.Set(ctx, "big"+string(rune('0'+i)), big, 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatalf("pipeline of 4 MiB SETs: %v", err)
	}
	for i := range 2 {
		if n := must[int64](t, c.StrLen(ctx, "big"+string(rune('0'+i)))); n != 4<<20 {
			t.Fatalf("STRLEN big%d = %d", i, n)
		}
	}
	// One transaction over the log's entry limit (16 MiB): an error, and
	// nothing written.
	wantErr(t, c.MSet(ctx, "t1", big, "t2", big, "t3", big, "t4", big, "t5", big).Err(), "ERR transaction too large")
	if n := must[int64](t, c.Exists(ctx, "t1", "t5")); n != 0 {
		t.Fatal("part of a too large MSET was written")
	}
	// Over the database's value limit (8 MiB): an error, nothing written.
	huge := make([]byte, 8<<20+1)
	wantErr(t, c.Set(ctx, "huge", huge, 0).Err(), "ERR value too large")
	if n := must[int64](t, c.Exists(ctx, "huge")); n != 0 {
		t.Fatal("a too large value was written")
	}
}
