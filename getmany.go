package cruzdb

import (
	"errors"
	"fmt"
	"slices"

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
	_, err := tx.getMany(nil, false, keys, vals)
	return err
}

// GetManyAppend is GetMany with the values appended to buf instead of
// copied into allocations of their own: vals[i] is a slice of the returned
// buffer (capped at its length), valid as long as the caller leaves that
// buffer's bytes alone. A caller that reads run after run of keys passes
// the previous call's buffer truncated to length 0, once it is done with
// the previous values, and reads without allocating once the buffer has
// grown to fit a run. The bytes of buf before its length are kept.
// Otherwise as GetMany: on an error, vals and the returned buffer are
// unspecified (buf's bytes before its length are still kept).
func (tx *Txn) GetManyAppend(buf []byte, keys [][]byte, vals [][]byte) ([]byte, error) {
	return tx.getMany(buf, true, keys, vals)
}

// getMany is GetMany (into false: every block of values gets an
// allocation of its own) and GetManyAppend (into: values appended to buf).
func (tx *Txn) getMany(buf []byte, into bool, keys [][]byte, vals [][]byte) ([]byte, error) {
	if err := tx.checkOpen(); err != nil {
		return buf, err
	}
	if len(vals) < len(keys) {
		return buf, fmt.Errorf("%w: %d for %d keys", ErrShortSlice, len(vals), len(keys))
	}
	for i, k := range keys {
		if err := tx.checkKey(k); err != nil {
			return buf, fmt.Errorf("cruzdb: get many: key %d: %w", i, err)
		}
	}
	var (
		look  [getManyBlock][]byte // keys to read from the snapshot
		at    [getManyBlock]int    // their indices in keys
		nodes [getManyBlock]*cowtree.Node
	)
	// appendVal appends v to buf and returns buf's new part (non-nil:
	// a present empty value is an empty slice, not nil).
	appendVal := func(v []byte) []byte {
		if len(v) == 0 {
			return []byte{}
		}
		s := len(buf)
		buf = append(buf, v...)
		return buf[s:len(buf):len(buf)]
	}
	for base := 0; base < len(keys); base += getManyBlock {
		n := 0
		for i := base; i < min(base+getManyBlock, len(keys)); i++ {
			k := keys[i]
			vals[i] = nil
			if tx.writable {
				if p, ok := tx.writes[string(k)]; ok {
					if p.del {
						continue
					}
					if into {
						vals[i] = appendVal(p.value)
					} else {
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
			return buf, fmt.Errorf("cruzdb: get many: %w", err)
		}
		size := 0
		for _, nd := range nodes[:n] {
			if nd != nil && !nd.Tombstone() {
				size += len(nd.Value())
			}
		}
		if into {
			buf = slices.Grow(buf, size)
		} else {
			buf = make([]byte, 0, size)
		}
		for q, nd := range nodes[:n] {
			if nd == nil || nd.Tombstone() {
				continue
			}
			vals[at[q]] = appendVal(nd.Value())
		}
		clear(nodes[:n])
	}
	if !into {
		buf = nil
	}
	return buf, nil
}
