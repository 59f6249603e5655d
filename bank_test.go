package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// The bank workload (seeds/001): bankAccounts accounts of bankInitial each,
// transfers between them, and readers that check the total in every
// snapshot. TestBank and TestBankWithCheckpoints run it.
const bankAccounts, bankInitial = 10, 100

// bankSeed creates the accounts.
func bankSeed(ctx context.Context, db *DB) {
	db.Update(ctx, func(tx *Txn) error {
		for i := range bankAccounts {
			tx.Put(fmt.Appendf(nil, "acct%02d", i), fmt.Append(nil, bankInitial))
		}
		return nil
	})
}

// bankTotal is the sum of the accounts in tx's snapshot.
func bankTotal(tx *Txn) (int, error) {
	sum := 0
	for _, v := range tx.Range([]byte("acct"), []byte("acct~")) {
		var n int
		fmt.Sscan(string(v), &n)
		sum += n
	}
	return sum, tx.Err()
}

// transfer moves a random amount (0-19) from account a to account b in one
// Update, as the bank's writers do.
func transfer(ctx context.Context, db *DB, rng *rand.Rand, a, b int) error {
	return db.Update(ctx, func(tx *Txn) error {
		ka, kb := fmt.Appendf(nil, "acct%02d", a), fmt.Appendf(nil, "acct%02d", b)
		va, err := tx.Get(ka)
		if err != nil {
			return err
		}
		vb, err := tx.Get(kb)
		if err != nil {
			return err
		}
		var na, nb int
		fmt.Sscan(string(va), &na)
		fmt.Sscan(string(vb), &nb)
		amt := rng.IntN(20)
		tx.Put(ka, fmt.Append(nil, na-amt))
		return tx.Put(kb, fmt.Append(nil, nb+amt))
	})
}

// bankReaders starts two readers that read the total in snapshot after
// snapshot and give each to check (from their own goroutines); the
// returned stop ends them and waits for them.
func bankReaders(ctx context.Context, db *DB, check func(reader int, tx *Txn, total int, err error)) (stop func()) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				db.View(ctx, func(tx *Txn) error {
					s, err := bankTotal(tx)
					check(r, tx, s, err)
					return nil
				})
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// bankTransfers runs writers goroutines of 40 random transfers each (writer
// w draws from rng(w)) and waits for them; conflicts are expected, any
// other error fails the test.
func bankTransfers(t *testing.T, ctx context.Context, db *DB, writers int, rng func(w int) *rand.Rand) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rng(w)
			for range 40 {
				a, b := r.IntN(bankAccounts), r.IntN(bankAccounts)
				if a == b {
					continue
				}
				err := transfer(ctx, db, r, a, b)
				if err != nil && !errors.Is(err, ErrConflict) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}
