package boltlog

import (
	"testing"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/logtest"
	bolt "go.etcd.io/bbolt"
)

func openFresh(opts *Options) func(t *testing.T) log.Log {
	return func(t *testing.T) log.Log { return mustOpen(t, tempPath(t), opts) }
}

func reopenWith(opts *Options) func(t *testing.T, closed log.Log) log.Log {
	return func(t *testing.T, closed log.Log) log.Log {
		return mustOpen(t, closed.(*Log).path, opts)
	}
}

// makeHole simulates a hole. boltlog itself never leaves one, because a
// position is assigned inside the transaction that writes it; the hook
// appends and then deletes the entry behind the log's back, so that the
// suite exercises Read, Fill and Trim on a missing position below the tail.
func makeHole(t *testing.T, l log.Log) log.Position {
	t.Helper()
	b := l.(*Log)
	p := mustAppend(t, b, []byte("doomed"))
	if err := b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEntries).Delete(posKey(nil, uint64(p)))
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConformance runs the suite with the default options but for NoSync:
// the suite checks semantics, which fsync does not change, and a few hundred
// fsyncs make it slow on a busy disk. The durable path (real fsyncs, commit
// failures) is covered by this package's own tests.
func TestConformance(t *testing.T) {
	opts := &Options{NoSync: true}
	logtest.Run(t, openFresh(opts), logtest.Persistent(reopenWith(opts)), logtest.Holes(makeHole))
}

// TestConformanceSmallGroups bounds groups to one small entry each, so that
// concurrent appends and fills spread over many transactions, on a file with
// 16 KiB pages.
func TestConformanceSmallGroups(t *testing.T) {
	opts := &Options{NoSync: true, MaxGroupBytes: 1, ReclaimBatch: 1, PageSize: 16 << 10}
	logtest.Run(t, openFresh(opts), logtest.Persistent(reopenWith(opts)), logtest.RaceRounds(100))
}
