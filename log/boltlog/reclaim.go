package boltlog

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

func (l *Log) kickReclaim() {
	select {
	case l.reclaimKick <- struct{}{}:
	default:
	}
}

func (l *Log) needsReclaim() bool {
	trim := l.trim.Load()
	need := false
	_ = l.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketEntries).Cursor().First()
		need = k != nil && binary.BigEndian.Uint64(k) < trim
		return nil
	})
	return need
}

// reclaimer deletes trimmed entries in batches, each in its own transaction,
// interleaving with the groups' transactions.
func (l *Log) reclaimer() {
	defer close(l.reclaimDone)
	var keys [][]byte
	for {
		select {
		case <-l.reclaimStop:
			return
		case <-l.reclaimKick:
		}
		for more := true; more; {
			select {
			case <-l.reclaimStop:
				return
			default:
			}
			if l.q.Failed() != nil {
				return
			}
			var err error
			more, keys, err = l.reclaimBatch(keys[:0])
			if err != nil {
				l.setFailed(fmt.Errorf("reclaim trimmed entries: %w", err))
				return
			}
		}
	}
}

func (l *Log) reclaimBatch(keys [][]byte) (more bool, _ [][]byte, err error) {
	trim := l.trim.Load()
	tx, err := l.db.Begin(true)
	if err != nil {
		return false, keys, err
	}
	b := tx.Bucket(bucketEntries)
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < l.opts.ReclaimBatch; k, _ = c.Next() {
		if binary.BigEndian.Uint64(k) >= trim {
			break
		}
		keys = append(keys, k) // valid for the life of tx
	}
	defer func() { _ = tx.Rollback() }()
	if len(keys) == 0 {
		return false, keys, nil
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return false, keys, err
		}
	}
	more = len(keys) == l.opts.ReclaimBatch
	clear(keys)
	return more, keys, l.opts.commitTx(tx)
}
