package cruzdb

import (
	"context"
	"testing"

	"github.com/cruzlog/cruzdb/internal/testutil"
)

// TestLoneCommitterWritesAfterimagesInline: with one client committing on
// the embedded log, the committer encodes its commit's afterimage itself
// and hands it over to ride with its next intention (flusher/inline.go):
// afterimages are written inline, each is confirmed, and everything
// acknowledged reads back after reopening, which replays from the
// afterimages.
func TestLoneCommitterWritesAfterimagesInline(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, &Options{CheckpointLogRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	acked, _ := localCommitWork(t, db, "a", 1, 40)
	if len(acked) != 40 {
		t.Fatalf("%d acknowledged", len(acked))
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.WaitLong)
	defer cancel()
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	if st.AfterimagesInline == 0 || st.Piggybacked == 0 {
		t.Fatalf("%d afterimages inline, %d piggybacked, want some of each", st.AfterimagesInline, st.Piggybacked)
	}
	if st.PendingDeltas != 0 {
		t.Fatalf("%d deltas unconfirmed after Flush", st.PendingDeltas)
	}
	reopenHasAll(t, db, dir, acked)
}
