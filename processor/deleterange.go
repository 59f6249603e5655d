package processor

import (
	"bytes"
	"fmt"

	"github.com/cruzlog/cruzdb/cowtree"
	"github.com/cruzlog/cruzdb/intention"
)

// deleteRange applies an OpDeleteRange: a tombstone for every key in
// [op.Key, op.Value) that exists at this point of the intention, that is,
// live in the tree before the intention or put by one of its earlier ops
// (before). The keys come from the state's own tree, in key order, so every
// node writes the same tombstones; a transaction that read any of them
// conflicts with the intention as with point deletes. The work is in the
// number of keys removed.
func (s *State) deleteRange(delta *cowtree.Delta, before []intention.Op, op intention.Op) error {
	in := intention.Range{Lo: op.Key, Hi: op.Value}
	var keys [][]byte
	it := s.tree.Ascend(op.Key)
	for it.Next() {
		k := it.Key()
		if !in.Contains(k) {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("range delete [%q, %q): %w", op.Key, op.Value, err)
	}
	for _, k := range keys {
		if err := delta.Delete(k); err != nil {
			return err
		}
	}
	// Keys this intention put earlier, which the tree before it lacks.
	for _, b := range before {
		if b.Kind == intention.OpPut && in.Contains(b.Key) {
			if err := delta.Delete(b.Key); err != nil {
				return err
			}
		}
	}
	return nil
}
