package cruzdb

import (
	"context"
	"sync"
	"testing"

	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestReviewDuplicateCheckpointRequests: both nodes of one log ask for a
// checkpoint at the same time, many times over. Duplicates must be
// harmless: both calls succeed and both nodes agree.
func TestReviewDuplicateCheckpointRequests(t *testing.T) {
	l := memlog.New(nil)
	ctx := context.Background()
	var nodes [2]*DB
	for i := range nodes {
		db, err := Open("", &Options{Log: l, CheckpointLogRatio: -1, CacheBytes: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		nodes[i] = db
	}
	for round := range 30 {
		workload(t, nodes[round%2], uint64(round), 5)
		var wg sync.WaitGroup
		var errs [2]error
		for i, db := range nodes {
			wg.Add(1)
			go func() { defer wg.Done(); _, errs[i] = db.Checkpoint(ctx) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: node %d: %v (rebootstraps %d, %d)", round, i, err, nodes[0].Stats().Rebootstraps, nodes[1].Stats().Rebootstraps)
			}
		}
	}
	nodes[0].Sync(ctx)
	nodes[1].Sync(ctx)
	if dump(t, nodes[0]) != dump(t, nodes[1]) {
		t.Fatal("nodes differ")
	}
}
