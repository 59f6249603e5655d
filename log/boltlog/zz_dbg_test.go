package boltlog

import (
	"testing"
	bolt "go.etcd.io/bbolt"
)

func TestZZDbgPrealloc(t *testing.T) {
	l := mustOpen(t, tempPath(t), nil)
	defer l.Close()
	data := make([]byte, 4096)
	for i := range 3000 {
		mustAppend(t, l, data)
		if i%500 == 0 {
			var hw int64
			l.db.View(func(tx *bolt.Tx) error { hw = tx.Size(); return nil })
			t.Logf("i=%d hw=%d zeroedTo=%d", i, hw, l.zeroedTo)
		}
	}
}
