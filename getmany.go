package cruzdb

import (
	"errors"
	"fmt"

	"github.com/cruzlog/cruzdb/cowtree"
)

// ErrShortSlice: GetMany was given fewer value slots than keys.
var ErrShortSlice = errors.New("cruzdb: value slice shorter than the keys")

// getManyBlock is how many tree lookups GetMany hands cowtree at once.
const getManyBlock = 64

// GetMany is Get for each of keys: vals[i] is a copy of keys[i]'s value,
// or nil where Get would return ErrNotFound (a present empty value is a
// non-nil empty slice). It sees the transaction's own pending puts and
// deletes as Get does, and in a writable transaction every key it reads
// from the snapshot joins the read set, exactly as with Get, so a write
// committed to one of them after the snapshot aborts the transaction.
// Duplicate keys are fine. The values are copies the caller may keep and
// modify; the values of one call may share one allocation (each slice is
// capped at its length, so appending to one never touches another).
//
// The snapshot's keys are looked up together (cowtree.Tree.LookupMany),
// which costs about half the CPU of looking them up one at a time.
//
// Every key is checked first, as Get checks it (ErrEmptyKey,
// ErrKeyTooLarge), and nothing is read if one fails; vals needs at least
// len(keys) entries (ErrShortSlice). On an error, vals is unspecified.
func (tx *Txn) GetMany(keys [][]byte, vals [][]byte) error {
	if err := tx.checkOpen(); err != nil {
		return err
	}
	if len(vals) < len(keys) {
		return fmt.Errorf("%w: %d for %d keys", ErrShortSlice, len(vals), len(keys))
	}
	for i, k := range keys {
		if err := tx.checkKey(k); err != nil {
			return fmt.Errorf("cruzdb: get many: key %d: %w", i, err)
		}
	}
	var (
		look  [getManyBlock][]byte // keys to read from the snapshot
		at    [getManyBlock]int    // their indices in keys
		nodes [getManyBlock]*cowtree.Node
	)
	for base := 0; base < len(keys); base += getManyBlock {
		n := 0
		for i := base; i < min(base+getManyBlock, len(keys)); i++ {
			k := keys[i]
			vals[i] = nil
			if tx.writable {
				if p, ok := tx.writes[string(k)]; ok {
					if !p.del {
						vals[i] = append(make([]byte, 0, len(p.value)), p.value...)
					}
					continue
				}
				tx.reads[string(k)] = struct{}{}
			}
			look[n], at[n] = k, i
			n++
		}
		if n == 0 {
			continue
		}
		if err := tx.snap.tree.LookupMany(look[:n], nodes[:n]); err != nil {
			return fmt.Errorf("cruzdb: get many: %w", err)
		}
		size := 0
		for _, nd := range nodes[:n] {
			if nd != nil && !nd.Tombstone() {
				size += len(nd.Value())
			}
		}
		buf := make([]byte, 0, size)
		for q, nd := range nodes[:n] {
			if nd == nil || nd.Tombstone() {
				continue
			}
			s := len(buf)
			buf = append(buf, nd.Value()...)
			vals[at[q]] = buf[s:len(buf):len(buf)]
		}
		clear(nodes[:n])
	}
	return nil
}
