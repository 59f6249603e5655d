package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log/memlog"
)

// next is the README's increment: v+1, with a missing counter as 0.
func next(v []byte) []byte {
	n, _ := strconv.Atoi(string(v))
	return []byte(strconv.Itoa(n + 1))
}

// TestReadmeCounter runs the README's counter example from 4 goroutines,
// 1,000 increments each, on the embedded log with default options (but no
// fsync, to keep the test fast): Update keeps retrying conflicts, so no
// increment is lost.
func TestReadmeCounter(t *testing.T) {
	db, err := Open(t.TempDir(), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	const goroutines, increments = 4, 1000
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range increments {
				err := db.Update(ctx, func(tx *Txn) error { // retried on conflict
					v, err := tx.Get([]byte("counter"))
					if err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
					return tx.Put([]byte("counter"), next(v))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, _ := get(t, db, "counter"); got != strconv.Itoa(goroutines*increments) {
		t.Fatalf("counter = %s, want %d (conflicts %d)", got, goroutines*increments, db.Stats().Conflicts)
	}
	t.Logf("%d conflicts retried", db.Stats().Conflicts)
}

// conflicting returns an Update function that reads key k and, on its first
// n calls, has another transaction overwrite k before it commits, so those
// attempts conflict. calls counts the attempts.
func conflicting(t *testing.T, db *DB, k string, n int, calls *int) func(*Txn) error {
	return func(tx *Txn) error {
		*calls++
		if _, err := tx.Get([]byte(k)); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if *calls <= n {
			put(t, db, k, fmt.Sprint("other", *calls))
		}
		return tx.Put([]byte(k), []byte("mine"))
	}
}

func TestUpdateRetriesPastTheOldLimit(t *testing.T) {
	db := openMem(t, nil)
	calls := 0
	if err := db.Update(context.Background(), conflicting(t, db, "k", 15, &calls)); err != nil {
		t.Fatal(err)
	}
	if calls != 16 {
		t.Fatalf("fn ran %d times, want 16 (15 conflicts, then a commit)", calls)
	}
	if v, _ := get(t, db, "k"); v != "mine" {
		t.Fatalf("k = %q, want mine", v)
	}
}

func TestUpdateRetryLimit(t *testing.T) {
	for _, tc := range []struct{ limit, calls int }{{-1, 1}, {1, 2}, {3, 4}} {
		t.Run(fmt.Sprint("limit=", tc.limit), func(t *testing.T) {
			db, err := Open("", &Options{Log: memlog.New(nil), MaxConflictRetries: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			calls := 0
			err = db.Update(context.Background(), conflicting(t, db, "k", 100, &calls))
			var ce *ConflictError
			if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || string(ce.Key) != "k" {
				t.Fatalf("Update = %v, want a conflict on k", err)
			}
			if calls != tc.calls {
				t.Fatalf("fn ran %d times, want %d", calls, tc.calls)
			}
		})
	}
}

// TestUpdateStopsWhenContextEnds: with the default (no bound), a conflict
// that never clears is retried until the context ends.
func TestUpdateStopsWhenContextEnds(t *testing.T) {
	db := openMem(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	fn := conflicting(t, db, "k", 1<<30, &calls)
	err := db.Update(ctx, func(tx *Txn) error {
		if calls == 12 {
			cancel() // the 13th attempt's commit, or the wait after it, sees the end
		}
		return fn(tx)
	})
	if !errors.Is(err, context.Canceled) || !(errors.Is(err, ErrConflict) || errors.Is(err, ErrCommitUnknown)) {
		t.Fatalf("Update = %v, want context.Canceled with the conflict (or an unknown outcome)", err)
	}
	if calls != 13 {
		t.Fatalf("fn ran %d times, want 13", calls)
	}
}

func TestRetryBackoffGrowsWithJitter(t *testing.T) {
	if d := retryBackoff(1); d != 0 {
		t.Fatalf("first retry waits %v, want 0", d)
	}
	for _, tc := range []struct {
		n      int
		lo, hi time.Duration
	}{
		{2, 50 * time.Microsecond, 100 * time.Microsecond},
		{3, 100 * time.Microsecond, 200 * time.Microsecond},
		{10, 12800 * time.Microsecond, 25600 * time.Microsecond},
		{11, 25 * time.Millisecond, 50 * time.Millisecond}, // the cap
		{1000, 25 * time.Millisecond, 50 * time.Millisecond},
	} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := retryBackoff(tc.n)
			if d < tc.lo || d >= tc.hi {
				t.Fatalf("retry %d waits %v, want in [%v, %v)", tc.n, d, tc.lo, tc.hi)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Fatalf("retry %d: 50 waits all %v, want jitter", tc.n, retryBackoff(tc.n))
		}
	}
}
