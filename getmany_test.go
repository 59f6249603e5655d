package cruzdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestGetManyMatchesGet compares GetMany with Get key by key, in read-only
// and writable transactions over random committed states (puts, deletes,
// DeleteRange, empty values) with random pending puts and deletes: the
// same values, nil exactly where Get says ErrNotFound, and in writable
// transactions the same read set as the Gets leave.
func TestGetManyMatchesGet(t *testing.T) {
	ctx := context.Background()
	db := openMem(t, nil)
	r := rand.New(rand.NewPCG(20, 7))
	const nkeys = 80
	key := func() []byte { return fmt.Appendf(nil, "key:%012d", r.IntN(nkeys)) }
	value := func() []byte {
		if r.IntN(8) == 0 {
			return []byte{}
		}
		return fmt.Appendf(nil, "v%d", r.Uint32())
	}
	var found, pendingHits, compared int
	var abuf []byte // GetManyAppend's buffer, reused
	head := []byte("head")
	for round := range 30 {
		err := db.Update(ctx, func(tx *Txn) error {
			for range 1 + r.IntN(20) {
				var err error
				if r.IntN(4) == 0 {
					err = tx.Delete(key())
				} else {
					err = tx.Put(key(), value())
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if round%7 == 3 {
			lo := fmt.Appendf(nil, "key:%012d", r.IntN(nkeys))
			hi := fmt.Appendf(nil, "key:%012d", r.IntN(nkeys)+5)
			if err := db.DeleteRange(ctx, lo, hi); err != nil {
				t.Fatal(err)
			}
		}
		for _, writable := range []bool{false, true} {
			// Two transactions on one snapshot with the same pending
			// writes: one reads with Get, the other with GetMany.
			one, many := beginSameSnapshot(t, db, writable)
			if writable {
				for range r.IntN(15) {
					k := key()
					if r.IntN(3) == 0 {
						one.Delete(k)
						many.Delete(k)
					} else {
						v := value()
						one.Put(k, v)
						many.Put(k, v)
					}
				}
			}
			keys := make([][]byte, r.IntN(150))
			for i := range keys {
				switch {
				case i > 0 && r.IntN(6) == 0:
					keys[i] = keys[r.IntN(i)] // a duplicate
				case r.IntN(10) == 0:
					keys[i] = fmt.Appendf(nil, "absent%d", r.IntN(5))
				default:
					keys[i] = key()
				}
			}
			vals := make([][]byte, len(keys))
			for i := range vals {
				vals[i] = []byte("stale") // GetMany must overwrite every slot
			}
			if err := many.GetMany(keys, vals); err != nil {
				t.Fatal(err)
			}
			// GetManyAppend gives the same values, in the buffer of
			// earlier rounds, after bytes of it that must stay.
			avals := make([][]byte, len(keys))
			for i := range avals {
				avals[i] = []byte("stale")
			}
			abuf, err = many.GetManyAppend(append(abuf[:0], head...), keys, avals)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(abuf, head) {
				t.Fatalf("round %d: GetManyAppend changed the buffer's first bytes: %q", round, abuf[:len(head)])
			}
			for i := range keys {
				if (avals[i] == nil) != (vals[i] == nil) || !bytes.Equal(avals[i], vals[i]) {
					t.Fatalf("round %d key %q: GetManyAppend %q (nil %t), GetMany %q (nil %t)", round, keys[i], avals[i], avals[i] == nil, vals[i], vals[i] == nil)
				}
			}
			for i, k := range keys {
				want, err := one.Get(k)
				switch {
				case errors.Is(err, ErrNotFound):
					if vals[i] != nil {
						t.Fatalf("round %d key %q: GetMany %q, Get not found", round, k, vals[i])
					}
				case err != nil:
					t.Fatal(err)
				case vals[i] == nil || !bytes.Equal(vals[i], want):
					t.Fatalf("round %d key %q: GetMany %q (nil %t), Get %q", round, k, vals[i], vals[i] == nil, want)
				default:
					found++
					if writable {
						if _, ok := many.writes[string(k)]; ok {
							pendingHits++
						}
					}
				}
				compared++
			}
			if writable && !maps.Equal(one.reads, many.reads) {
				t.Fatalf("round %d: read sets differ: Get %d keys, GetMany %d", round, len(one.reads), len(many.reads))
			}
			one.Rollback()
			many.Rollback()
		}
	}
	if found == 0 || pendingHits == 0 || found == compared {
		t.Fatalf("%d of %d keys found, %d from pending writes: too little exercised", found, compared, pendingHits)
	}
}

// TestGetManyValuesAreCopies: the values are the caller's: writing to or
// appending to one changes neither another value nor the database.
func TestGetManyValuesAreCopies(t *testing.T) {
	db := openMem(t, nil)
	put(t, db, "a", "aaaa")
	put(t, db, "b", "bbbb")
	tx, _ := db.Begin(context.Background(), false)
	defer tx.Rollback()
	vals := make([][]byte, 3)
	if err := tx.GetMany([][]byte{[]byte("a"), []byte("b"), []byte("a")}, vals); err != nil {
		t.Fatal(err)
	}
	vals[0] = append(vals[0], "XX"...)
	vals[0][0] = 'Z'
	if string(vals[1]) != "bbbb" || string(vals[2]) != "aaaa" {
		t.Fatalf("values share bytes: %q %q", vals[1], vals[2])
	}
	if v, _ := get(t, db, "a"); v != "aaaa" {
		t.Fatalf("database value changed: %q", v)
	}
}

// TestGetManyAppendReuse: values appended to a buffer big enough cost no
// allocation; each value is capped, so appending to one leaves the next
// alone; a present empty value is non-nil, a missing key nil.
func TestGetManyAppendReuse(t *testing.T) {
	db := openMem(t, nil)
	put(t, db, "a", "aaaa")
	put(t, db, "b", "bbbb")
	put(t, db, "e", "")
	tx, _ := db.Begin(context.Background(), false)
	defer tx.Rollback()
	keys := [][]byte{[]byte("a"), []byte("b"), []byte("e"), []byte("x"), []byte("a")}
	vals := make([][]byte, len(keys))
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(20, func() {
		var err error
		if buf, err = tx.GetManyAppend(buf[:0], keys, vals); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("GetManyAppend into a buffer with room: %v allocations a call", allocs)
	}
	if string(buf) != "aaaabbbbaaaa" {
		t.Fatalf("buffer %q", buf)
	}
	if string(vals[0]) != "aaaa" || string(vals[1]) != "bbbb" || vals[2] == nil || len(vals[2]) != 0 || vals[3] != nil || string(vals[4]) != "aaaa" {
		t.Fatalf("values %q (empty value nil: %t)", vals, vals[2] == nil)
	}
	vals[0] = append(vals[0], "XX"...)
	if string(vals[1]) != "bbbb" {
		t.Fatalf("appending to a value changed the next: %q", vals[1])
	}
	// A buffer too small grows; what it held is kept.
	out, err := tx.GetManyAppend([]byte("kept"), keys, vals)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "keptaaaabbbbaaaa" || string(vals[4]) != "aaaa" {
		t.Fatalf("grown buffer %q, values %q", out, vals)
	}
}

func TestGetManyErrors(t *testing.T) {
	db := openMem(t, nil)
	put(t, db, "a", "1")
	ctx := context.Background()
	tx, _ := db.Begin(ctx, true)
	if err := tx.GetMany(nil, nil); err != nil {
		t.Fatalf("no keys: %v", err)
	}
	if err := tx.GetMany([][]byte{[]byte("a"), []byte("b")}, make([][]byte, 1)); !errors.Is(err, ErrShortSlice) {
		t.Fatalf("short vals: %v", err)
	}
	err := tx.GetMany([][]byte{[]byte("a"), {}}, make([][]byte, 2))
	if !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("empty key: %v", err)
	}
	if len(tx.reads) != 0 {
		t.Fatalf("a refused call read %d keys", len(tx.reads))
	}
	big := make([]byte, db.header.MaxKeySize+1)
	if err := tx.GetMany([][]byte{big}, make([][]byte, 1)); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("long key: %v", err)
	}
	tx.Rollback()
	if err := tx.GetMany([][]byte{[]byte("a")}, make([][]byte, 1)); !errors.Is(err, ErrTxnClosed) {
		t.Fatalf("closed transaction: %v", err)
	}
}

// TestGetManyConflicts: a key read with GetMany and overwritten by a
// commit after the snapshot aborts the transaction, as a Get read would;
// keys it did not read, and keys it had written itself, do not.
func TestGetManyConflicts(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		read     []string // read with GetMany
		own      string   // written by the transaction before the read
		other    string   // committed meanwhile
		conflict bool
	}{
		{name: "read key overwritten", read: []string{"y", "x", "absent"}, other: "x", conflict: true},
		{name: "absent key created", read: []string{"y", "absent"}, other: "absent", conflict: true},
		{name: "unread key", read: []string{"y", "absent"}, other: "x"},
		{name: "own write read back", read: []string{"x", "y"}, own: "x", other: "x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := openMem(t, nil)
			put(t, db, "x", "0")
			put(t, db, "y", "0")
			t1, _ := db.Begin(ctx, true)
			if c.own != "" {
				t1.Put([]byte(c.own), []byte("mine"))
			}
			keys := make([][]byte, len(c.read))
			for i, k := range c.read {
				keys[i] = []byte(k)
			}
			if err := t1.GetMany(keys, make([][]byte, len(keys))); err != nil {
				t.Fatal(err)
			}
			t1.Put([]byte("out"), []byte("1"))
			put(t, db, c.other, "theirs")
			err := t1.Commit()
			var ce *ConflictError
			switch {
			case c.conflict && (!errors.As(err, &ce) || string(ce.Key) != c.other):
				t.Fatalf("commit: %v, want a conflict on %q", err, c.other)
			case !c.conflict && err != nil:
				t.Fatalf("commit: %v, want success", err)
			}
		})
	}
}

// beginSameSnapshot begins two transactions on one snapshot. Two Begins in
// a row may see different ones: the processor may apply an entry between
// them (an afterimage, a checkpoint's), so it begins pairs until one
// matches.
func beginSameSnapshot(t *testing.T, db *DB, writable bool) (*Txn, *Txn) {
	t.Helper()
	ctx := context.Background()
	for attempt := 0; ; attempt++ {
		one, err := db.Begin(ctx, writable)
		if err != nil {
			t.Fatal(err)
		}
		two, err := db.Begin(ctx, writable)
		if err != nil {
			t.Fatal(err)
		}
		if one.Snapshot() == two.Snapshot() {
			return one, two
		}
		one.Rollback()
		two.Rollback()
		if attempt == 1000 {
			t.Fatal("1,000 pairs of Begins in a row read different snapshots")
		}
	}
}
