package cruzdb

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestReviewOrphanCutDoesNotWedgeCommits: a node appends a checkpoint cut
// and dies before writing its image (a crash right after the append).
// Another node, with default options but for a small automatic trigger,
// must go on committing: an image for that cut, or a newer checkpoint, must
// come from somewhere, and commits must never wait forever for it.
func TestReviewOrphanCutDoesNotWedgeCommits(t *testing.T) {
	t.Parallel() // mostly waits out the takeover delay (2 s) for the orphan cut
	ctx := context.Background()
	l := memlog.New(nil)
	a, err := Open("", &Options{Log: l, CheckpointMinLogBytes: 16 << 10, CheckpointLogRatio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	workload(t, a, 1, 20)
	// The dead node's cut: appended, never imaged.
	if _, err := l.Append(ctx, entry.AppendCut(nil, 12345, &a.header)); err != nil {
		t.Fatal(err)
	}
	for i := range 1500 {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := a.Update(cctx, func(tx *Txn) error {
			return tx.Put(fmt.Appendf(nil, "k%03d", i%200), fmt.Appendf(nil, "value-%d-%0100d", i, i))
		})
		cancel()
		if err != nil {
			t.Fatalf("commit %d after an orphan cut: %v (%s, in progress %v, waits %d)", i, err, summary(a.Stats()), a.Stats().CheckpointInProgress, a.Stats().CheckpointWaits)
		}
	}
	if st := a.Stats(); st.TrimmedBelow == 0 {
		t.Fatalf("no trim after an orphan cut: %s", summary(st))
	}
}
