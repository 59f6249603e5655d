package cruzdb

import (
	"bytes"
	"context"
	"fmt"

	"github.com/cruzlog/cruzdb/intention"
)

// DeleteRange deletes every key in [lo, hi) (nil lo: from the smallest key;
// nil hi: to the end) in one intention holding one range-delete op, whatever
// the number of keys. The processor removes the keys that exist when it
// applies the intention (one tombstone each), so a transaction that read
// any of them conflicts with it. It reads nothing, so it never conflicts
// itself; it is retried by nobody.
func (db *DB) DeleteRange(ctx context.Context, lo, hi []byte) error {
	if lo == nil {
		lo = []byte{0} // the smallest key: keys are at least one byte
	}
	if len(lo) == 0 {
		return fmt.Errorf("cruzdb: delete range: %w", ErrEmptyKey)
	}
	if hi != nil && bytes.Compare(lo, hi) >= 0 {
		return nil // an empty range
	}
	tx, err := db.Begin(ctx, true)
	if err != nil {
		return err
	}
	tx.rangeDels = append(tx.rangeDels, intention.Op{Kind: intention.OpDeleteRange, Key: bytes.Clone(lo), Value: bytes.Clone(hi)})
	return tx.Commit()
}
