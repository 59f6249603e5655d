package cruzdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cruzlog/cruzdb/log"
)

// Helpers of the review tests (checkpoint_review*_test.go).

// logTrimPoint returns the lowest position of l that is not trimmed.
func logTrimPoint(t *testing.T, l log.Log) uint64 {
	t.Helper()
	ctx := context.Background()
	tail, err := l.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := uint64(0), uint64(tail)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, err := l.Read(ctx, log.Position(mid)); errors.Is(err, log.ErrTrimmed) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// skippedCut reports the documented failure of a Checkpoint whose cut the
// node's replay skipped (it fell behind another node's trim and re-bootstrapped).
func skippedCut(err error) bool {
	return errors.Is(err, ErrCheckpoint) && strings.Contains(err.Error(), "replay skipped the cut")
}

func summary(s Stats) string {
	return fmt.Sprintf("pos %d commits %d checkpoints %d (written %d, aborted %d, auto %d) trimmed %d rebootstraps %d",
		s.Position, s.Commits, s.Checkpoints, s.CheckpointsWritten, s.CheckpointsAborted, s.AutoCheckpoints, s.TrimmedBelow, s.Rebootstraps)
}
