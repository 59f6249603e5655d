package cruzdb

import (
	"fmt"
	"unsafe"
)

// PutOwned sets key to value in the transaction, as Put does, but keeps
// key and value instead of copying them: the caller hands both over and
// must never change either again (the transaction's intention may still be
// read after Commit returns; treat the bytes as immutable). It is for
// callers that build many writes in memory of their own that they never
// reuse (cmd/cruzd carves its keys and values out of buffers it allocates
// once per batch of writes), and saves Put's copy of the value and its
// allocation of the key's string.
func (tx *Txn) PutOwned(key, value []byte) error {
	if err := tx.checkWrite(key); err != nil {
		return err
	}
	if len(value) > int(tx.db.header.MaxValueSize) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(value), tx.db.header.MaxValueSize)
	}
	if value == nil {
		value = []byte{} // a put, never a nil value (as Put's copy)
	}
	// checkWrite refused an empty key, so key[0] exists.
	tx.writes[unsafe.String(&key[0], len(key))] = pending{value: value}
	return nil
}

// ReserveWrites sizes the transaction's write set for about n more writes,
// so that a transaction that is about to write many keys does not grow it
// step by step (each step rehashes every write so far). It is a hint: a
// transaction may write more or fewer. It does nothing in a read-only or
// ended transaction.
func (tx *Txn) ReserveWrites(n int) {
	if !tx.writable || tx.closed || n <= 0 {
		return
	}
	if len(tx.writes) > 0 {
		// A map does not grow on request: rebuild it at the size.
		w := make(map[string]pending, len(tx.writes)+n)
		for k, p := range tx.writes {
			w[k] = p
		}
		tx.writes = w
		return
	}
	tx.writes = make(map[string]pending, n)
}
