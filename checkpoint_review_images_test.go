package cruzdb

import (
	"context"
	"fmt"
	"testing"

	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestReviewSnapshotOutlivesManyCheckpoints: a transaction of this DB holds
// the trim back, so its snapshot must keep reading correct data however
// many checkpoints follow. With a small cache its nodes are read back from
// the image of the cut it was taken after.
func TestReviewSnapshotOutlivesManyCheckpoints(t *testing.T) {
	ctx := context.Background()
	db, err := Open("", &Options{Log: memlog.New(nil), CheckpointLogRatio: -1, CacheBytes: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const keys = 300
	if err := db.Update(ctx, func(tx *Txn) error {
		for i := range keys {
			tx.Put(fmt.Appendf(nil, "k%04d", i), fmt.Appendf(nil, "old%d", i))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	snap, err := db.Begin(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Rollback()
	for round := range 20 {
		if err := db.Update(ctx, func(tx *Txn) error {
			return tx.Put(fmt.Appendf(nil, "k%04d", round), []byte("new"))
		}); err != nil {
			t.Fatal(err)
		}
		info, err := db.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(info.TrimmedBelow) > uint64(snap.Snapshot()) {
			t.Fatalf("trimmed below %d with a local snapshot at %d open", info.TrimmedBelow, snap.Snapshot())
		}
	}
	for i := range keys {
		k := fmt.Appendf(nil, "k%04d", i)
		v, err := snap.Get(k)
		if err != nil || string(v) != fmt.Sprintf("old%d", i) {
			t.Fatalf("after 20 checkpoints, the snapshot at %d reads %s = %q, %v; want old%d", snap.Snapshot(), k, v, err, i)
		}
	}
}
