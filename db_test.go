package cruzdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cruzlog/cruzdb/log/memlog"
)

func openMem(t testing.TB, l *memlog.Log) *DB {
	t.Helper()
	if l == nil {
		l = memlog.New(nil)
	}
	db, err := Open("", &Options{Log: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func put(t testing.TB, db *DB, k, v string) {
	t.Helper()
	if err := db.Update(context.Background(), func(tx *Txn) error { return tx.Put([]byte(k), []byte(v)) }); err != nil {
		t.Fatal(err)
	}
}

// putBatches puts keys 0..n-1 (key and value from kv) in transactions of
// batch puts each, failing on any error.
func putBatches(t testing.TB, db *DB, n, batch int, kv func(i int) (k, v []byte)) {
	t.Helper()
	for i := 0; i < n; i += batch {
		err := db.Update(context.Background(), func(tx *Txn) error {
			for j := i; j < min(i+batch, n); j++ {
				if err := tx.Put(kv(j)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func get(t testing.TB, db *DB, k string) (string, bool) {
	t.Helper()
	var v []byte
	err := db.View(context.Background(), func(tx *Txn) error {
		var err error
		v, err = tx.Get([]byte(k))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v), true
}

func TestBasic(t *testing.T) {
	db := openMem(t, nil)
	ctx := context.Background()
	put(t, db, "a", "1")
	if v, ok := get(t, db, "a"); !ok || v != "1" {
		t.Fatalf("get a = %q %v", v, ok)
	}
	if _, ok := get(t, db, "b"); ok {
		t.Fatal("b found")
	}
	err := db.Update(ctx, func(tx *Txn) error {
		if err := tx.Put([]byte("b"), []byte("2")); err != nil {
			return err
		}
		// Read your own writes.
		v, err := tx.Get([]byte("b"))
		if err != nil || string(v) != "2" {
			return fmt.Errorf("own write: %q %v", v, err)
		}
		return tx.Delete([]byte("a"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, db, "a"); ok {
		t.Fatal("a still there after delete")
	}
	// Read-only transactions never append.
	before := db.Stats().IntentionsAppended
	db.View(ctx, func(tx *Txn) error { tx.Get([]byte("b")); return nil })
	if db.Stats().IntentionsAppended != before {
		t.Fatal("read-only transaction appended")
	}
	// Errors.
	db.View(ctx, func(tx *Txn) error {
		if err := tx.Put([]byte("x"), nil); !errors.Is(err, ErrReadOnly) {
			t.Errorf("put in view: %v", err)
		}
		return nil
	})
	tx, _ := db.Begin(ctx, true)
	if err := tx.Put(nil, []byte("v")); !errors.Is(err, ErrEmptyKey) {
		t.Errorf("empty key: %v", err)
	}
	if err := tx.Put(make([]byte, DefaultMaxKeySize+1), nil); !errors.Is(err, ErrKeyTooLarge) {
		t.Errorf("big key: %v", err)
	}
	if err := tx.Put([]byte("k"), make([]byte, DefaultMaxValueSize+1)); !errors.Is(err, ErrValueTooLarge) {
		t.Errorf("big value: %v", err)
	}
	tx.Rollback()
	tx.Rollback()
	if err := tx.Commit(); !errors.Is(err, ErrTxnClosed) {
		t.Errorf("commit after rollback: %v", err)
	}
	if _, err := tx.Get([]byte("b")); !errors.Is(err, ErrTxnClosed) {
		t.Errorf("get after rollback: %v", err)
	}
}

func TestTxnTooLarge(t *testing.T) {
	db := openMem(t, nil)
	err := db.Update(context.Background(), func(tx *Txn) error {
		for i := range 3 {
			if err := tx.Put(fmt.Appendf(nil, "k%d", i), make([]byte, DefaultMaxValueSize)); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, ErrTxnTooLarge) {
		t.Fatalf("24 MiB transaction: %v", err)
	}
}

func TestWriteSkewAborts(t *testing.T) {
	db := openMem(t, nil)
	ctx := context.Background()
	put(t, db, "x", "0")
	put(t, db, "y", "0")
	t1, _ := db.Begin(ctx, true)
	t2, _ := db.Begin(ctx, true)
	t1.Get([]byte("x"))
	t1.Get([]byte("y"))
	t2.Get([]byte("x"))
	t2.Get([]byte("y"))
	t1.Put([]byte("x"), []byte("1"))
	t2.Put([]byte("y"), []byte("1"))
	if err := t1.Commit(); err != nil {
		t.Fatal(err)
	}
	err := t2.Commit()
	var ce *ConflictError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || string(ce.Key) != "x" {
		t.Fatalf("write skew committed or wrong error: %v", err)
	}
	if ce.WrittenAt <= ce.Snapshot || ce.Pos <= ce.WrittenAt {
		t.Fatalf("conflict positions: %+v", ce)
	}
}

func TestPhantomAborts(t *testing.T) {
	db := openMem(t, nil)
	ctx := context.Background()
	put(t, db, "a1", "x")
	put(t, db, "c1", "x")
	scan := func(tx *Txn, lo, hi string) int {
		n := 0
		for range tx.Range([]byte(lo), []byte(hi)) {
			n++
		}
		return n
	}
	t1, _ := db.Begin(ctx, true)
	t2, _ := db.Begin(ctx, true)
	t3, _ := db.Begin(ctx, true)
	if n := scan(t1, "a", "b"); n != 1 {
		t.Fatalf("scan saw %d", n)
	}
	t1.Put([]byte("count-a"), []byte("1"))
	scan(t3, "c", "d") // disjoint range
	t3.Put([]byte("count-c"), []byte("1"))
	t2.Put([]byte("a2"), []byte("phantom"))
	if err := t2.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := t1.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("phantom not detected: %v", err)
	}
	if err := t3.Commit(); err != nil {
		t.Fatalf("disjoint range aborted: %v", err)
	}
}

func TestRangeStoppedEarlyNarrowsReadSet(t *testing.T) {
	db := openMem(t, nil)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "d"} {
		put(t, db, k, "v")
	}
	t1, _ := db.Begin(ctx, true)
	for k := range t1.Range(nil, nil) {
		if string(k) == "b" {
			break
		}
	}
	t1.Put([]byte("z"), []byte("1"))
	put(t, db, "c", "changed") // beyond what t1 saw
	if err := t1.Commit(); err != nil {
		t.Fatalf("write beyond the iterated part aborted: %v", err)
	}
	t2, _ := db.Begin(ctx, true)
	for k := range t2.Range(nil, nil) {
		if string(k) == "b" {
			break
		}
	}
	t2.Put([]byte("z"), []byte("2"))
	put(t, db, "b", "changed") // inside what t2 saw
	if err := t2.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("write inside the iterated part: %v", err)
	}
}

func TestBlindWritesBothCommit(t *testing.T) {
	db := openMem(t, nil)
	ctx := context.Background()
	t1, _ := db.Begin(ctx, true)
	t2, _ := db.Begin(ctx, true)
	t1.Put([]byte("k"), []byte("1"))
	t2.Put([]byte("k"), []byte("2"))
	if err := t1.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := t2.Commit(); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, db, "k"); v != "2" {
		t.Fatalf("later blind write lost: %q", v)
	}
}

func TestLongReaderKeepsSnapshot(t *testing.T) {
	db := openMem(t, nil)
	ctx := context.Background()
	put(t, db, "k", "old")
	r, _ := db.Begin(ctx, false)
	defer r.Rollback()
	for i := range 50 {
		put(t, db, "k", fmt.Sprint(i))
		put(t, db, fmt.Sprint("new", i), "x")
	}
	v, err := r.Get([]byte("k"))
	if err != nil || string(v) != "old" {
		t.Fatalf("reader saw %q %v", v, err)
	}
	n := 0
	for range r.Range(nil, nil) {
		n++
	}
	if n != 1 {
		t.Fatalf("reader's range saw %d keys", n)
	}
}

func TestRangeMergesOwnWrites(t *testing.T) {
	db := openMem(t, nil)
	ctx := context.Background()
	for _, k := range []string{"b", "d", "f"} {
		put(t, db, k, "db")
	}
	tx, _ := db.Begin(ctx, true)
	defer tx.Rollback()
	tx.Put([]byte("a"), []byte("tx"))
	tx.Put([]byte("d"), []byte("tx"))
	tx.Delete([]byte("f"))
	tx.Put([]byte("g"), []byte("tx"))
	var got []string
	for k, v := range tx.Range([]byte("a"), []byte("g")) {
		got = append(got, string(k)+"="+string(v))
	}
	want := "a=tx b=db d=tx"
	if fmt.Sprint(got) != "["+want+"]" {
		t.Fatalf("range = %v, want [%s]", got, want)
	}
}

func TestRangeReverse(t *testing.T) {
	db := openMem(t, nil)
	ctx := context.Background()
	for _, k := range []string{"b", "d", "f", "h"} {
		put(t, db, k, "db")
	}
	tx, _ := db.Begin(ctx, true)
	defer tx.Rollback()
	tx.Put([]byte("a"), []byte("tx"))
	tx.Put([]byte("d"), []byte("tx"))
	tx.Delete([]byte("f"))
	tx.Put([]byte("g"), []byte("tx"))
	tx.Put([]byte("h"), []byte("tx")) // at hi: outside [lo, hi)
	var got []string
	for k, v := range tx.RangeReverse([]byte("a"), []byte("h")) {
		got = append(got, string(k)+"="+string(v))
	}
	if want := "[g=tx d=tx b=db a=tx]"; fmt.Sprint(got) != want {
		t.Fatalf("reverse range = %v, want %s", got, want)
	}
	got = got[:0]
	for k := range tx.KeysReverse(nil, nil) {
		got = append(got, string(k))
	}
	if want := "[h g d b a]"; fmt.Sprint(got) != want {
		t.Fatalf("reverse keys = %v, want %s", got, want)
	}
	if err := tx.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestRangeReverseReadSet: a reverse scan stopped early observed [last key
// yielded, hi): a write below that does not conflict, a write inside does,
// and a phantom inserted into a fully scanned reverse range does.
func TestRangeReverseReadSet(t *testing.T) {
	db := openMem(t, nil)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "d"} {
		put(t, db, k, "v")
	}
	stopAt := func(tx *Txn, at string) {
		for k := range tx.RangeReverse(nil, nil) {
			if string(k) == at {
				break
			}
		}
	}
	t1, _ := db.Begin(ctx, true)
	stopAt(t1, "c")
	t1.Put([]byte("z"), []byte("1"))
	put(t, db, "b", "changed") // below what t1 saw
	if err := t1.Commit(); err != nil {
		t.Fatalf("write below the iterated part aborted: %v", err)
	}
	t2, _ := db.Begin(ctx, true)
	stopAt(t2, "c")
	t2.Put([]byte("z"), []byte("2"))
	put(t, db, "c", "changed") // the last key t2 saw
	if err := t2.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("write inside the iterated part: %v", err)
	}
	t3, _ := db.Begin(ctx, true)
	for range t3.RangeReverse([]byte("a"), []byte("c")) {
	}
	t3.Put([]byte("z"), []byte("3"))
	put(t, db, "a5", "phantom")
	if err := t3.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("phantom in a reverse-scanned range: %v", err)
	}
}

// TestBank runs transfers between accounts while readers check the total in
// every snapshot.
func TestBank(t *testing.T) {
	l := memlog.New(nil)
	db := openMem(t, l)
	ctx := context.Background()
	bankSeed(ctx, db)
	var readerErr error
	var mu sync.Mutex
	stop := bankReaders(ctx, db, func(r int, tx *Txn, s int, err error) {
		if err == nil && s != bankAccounts*bankInitial {
			err = fmt.Errorf("reader %d: total %d at snapshot %d", r, s, tx.Snapshot())
		}
		if err != nil {
			mu.Lock()
			readerErr = err
			mu.Unlock()
		}
	})
	bankTransfers(t, ctx, db, 8, func(w int) *rand.Rand { return rand.New(rand.NewPCG(uint64(w), 7)) })
	stop()
	if readerErr != nil {
		t.Fatal(readerErr)
	}
	st := db.Stats()
	if st.Commits < 100 {
		t.Fatalf("only %d commits", st.Commits)
	}
	t.Logf("commits %d aborts %d", st.Commits, st.Aborts)
	db.Close()
	// Reopen on the same log: the total is intact.
	db2 := openMem(t, l)
	db2.View(ctx, func(tx *Txn) error {
		s, err := bankTotal(tx)
		if err != nil || s != bankAccounts*bankInitial {
			t.Fatalf("after reopen: total %d, %v", s, err)
		}
		return nil
	})
	if db2.SafePoint().Intention == 0 {
		t.Fatal("reopen found no safe point after a flushing close")
	}
}

func TestReopenBolt(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		put(t, db, fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	db.Update(ctx, func(tx *Txn) error { return tx.Delete([]byte("k7")) })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 100 {
		v, ok := get(t, db, fmt.Sprint("k", i))
		if i == 7 {
			if ok {
				t.Fatal("deleted key back after reopen")
			}
			continue
		}
		if !ok || v != fmt.Sprint("v", i) {
			t.Fatalf("k%d = %q %v after reopen", i, v, ok)
		}
	}
}

func TestTwoNodesConverge(t *testing.T) {
	l := memlog.New(nil)
	a := openMem(t, l)
	b := openMem(t, l)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, db := range []*DB{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				k := fmt.Appendf(nil, "k%d", j%13)
				err := db.Update(ctx, func(tx *Txn) error {
					v, _ := tx.Get(k)
					return tx.Put(k, append(v, byte('a'+i)))
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	dump := func(db *DB) string {
		var buf bytes.Buffer
		err := db.View(ctx, func(tx *Txn) error {
			buf.Reset() // View runs fn again after a peer's trim
			for k, v := range tx.Range(nil, nil) {
				fmt.Fprintf(&buf, "%s=%s\n", k, v)
			}
			return tx.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	if da, dbb := dump(a), dump(b); da != dbb {
		t.Fatalf("nodes diverged:\n%s\nvs\n%s", da, dbb)
	}
	total := 0
	a.View(ctx, func(tx *Txn) error {
		for _, v := range tx.Range(nil, nil) {
			total += len(v)
		}
		return nil
	})
	if total != 200 {
		t.Fatalf("%d increments survived, want 200", total)
	}
}

func TestCloseNamesLeakedTxn(t *testing.T) {
	db, err := Open("", &Options{Log: memlog.New(nil)})
	if err != nil {
		t.Fatal(err)
	}
	db.Begin(context.Background(), true)
	err = db.Close()
	if !errors.Is(err, ErrLeakedTxn) {
		t.Fatalf("close with an open txn: %v", err)
	}
	if _, err := db.Begin(context.Background(), false); !errors.Is(err, ErrClosed) {
		t.Fatalf("begin after close: %v", err)
	}
}

func TestOptionsValidated(t *testing.T) {
	if _, err := Open("", &Options{Log: memlog.New(nil), CacheBytes: -1}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("negative CacheBytes: %v", err)
	}
	if _, err := Open("", nil); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("no path, no log: %v", err)
	}
	o := &Options{Log: memlog.New(nil)}
	db, err := Open("", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if o.CacheBytes != 0 || o.Logger != nil {
		t.Fatal("Open modified the caller's options")
	}
}

func TestKeysAndLimits(t *testing.T) {
	db := openMem(t, nil)
	for _, k := range []string{"a", "b", "c"} {
		put(t, db, k, "v"+k)
	}
	var got []string
	db.View(context.Background(), func(tx *Txn) error {
		for k := range tx.Keys([]byte("b"), nil) {
			got = append(got, string(k))
		}
		return nil
	})
	if fmt.Sprint(got) != "[b c]" {
		t.Fatalf("keys = %v", got)
	}
	if k, v := db.Limits(); k != DefaultMaxKeySize || v != DefaultMaxValueSize {
		t.Fatalf("limits %d %d", k, v)
	}
	db.Flush(context.Background())
	if st := db.Stats(); st.FlushedThrough == 0 || st.FlushedThrough > st.Position {
		t.Fatalf("flushed through %d at position %d", st.FlushedThrough, st.Position)
	}
}
