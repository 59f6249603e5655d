package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestPutOwned: PutOwned writes as Put does (the transaction reads its own
// write, a later write of the key wins, the commit stores the value, an
// empty value is a put), with Put's checks, and keeps the caller's bytes
// instead of copying them: it allocates nothing for a key already written.
func TestPutOwned(t *testing.T) {
	db := openMem(t, nil)
	ctx := context.Background()
	tx, err := db.Begin(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.PutOwned([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Put([]byte("b"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := tx.PutOwned([]byte("b"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	if err := tx.PutOwned([]byte("e"), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := tx.Get([]byte("b")); err != nil || string(v) != "3" {
		t.Fatalf("Get(b) in the transaction = %q, %v; want 3", v, err)
	}
	if err := tx.PutOwned(nil, []byte("x")); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("PutOwned of an empty key: %v, want ErrEmptyKey", err)
	}
	if err := tx.PutOwned([]byte("k"), make([]byte, DefaultMaxValueSize+1)); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("PutOwned of a too large value: %v, want ErrValueTooLarge", err)
	}
	key, value := []byte("c"), []byte("v")
	if n := testing.AllocsPerRun(100, func() {
		if err := tx.PutOwned(key, value); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("PutOwned of a key already written allocates %v times, want 0", n)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a": "1", "b": "3", "c": "v", "e": ""} {
		if v, ok := get(t, db, k); !ok || v != want {
			t.Fatalf("after commit %s = %q (found %v), want %q", k, v, ok, want)
		}
	}

	ro, err := db.Begin(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Rollback()
	if err := ro.PutOwned([]byte("a"), []byte("1")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("PutOwned in a read-only transaction: %v, want ErrReadOnly", err)
	}
}

// TestReserveWrites: a write set reserved for n writes takes them without
// growing (no allocation), keeps the writes made before the reservation,
// and the commit stores them all.
func TestReserveWrites(t *testing.T) {
	db := openMem(t, nil)
	tx, err := db.Begin(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Put([]byte("before"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	const n = 600
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key:%06d", i)
	}
	tx.ReserveWrites(n)
	// AllocsPerRun runs the function twice (a warm-up, then the run it
	// counts): half the keys each time.
	next := 0
	if allocs := testing.AllocsPerRun(1, func() {
		for range n / 2 {
			if err := tx.PutOwned(keys[next], keys[next]); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}); allocs != 0 {
		t.Fatalf("%d writes into a write set reserved for them allocate %v times, want 0", n/2, allocs)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if v, ok := get(t, db, "before"); !ok || v != "1" {
		t.Fatalf("before = %q (found %v), want 1", v, ok)
	}
	for _, k := range keys[:next] {
		if v, ok := get(t, db, string(k)); !ok || v != string(k) {
			t.Fatalf("%s = %q (found %v), want its key", k, v, ok)
		}
	}
}
