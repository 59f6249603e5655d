package flusher

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
)

// TestImageWriterPacesAgainstTheLog: with ImageDuty at 1e-6 an image's
// writer rests a million times its work before each chunk after the first,
// so an image of several chunks would take hours. Nothing waits on it
// (no Flush, no Hurry), but ImageBudget reports that the commits since the
// cut have used their room: the writer is behind the log and must not rest,
// so every chunk and the marker are written. Without the pacing the
// deadline fails the test. A budget within ImagePaceMargin of the
// writer's progress counts as behind as well; a writer ahead rests (behind
// is false), and so does one with no commits to race (a budget of 0).
func TestImageWriterPacesAgainstTheLog(t *testing.T) {
	var budget atomic.Uint64 // math.Float64bits
	setBudget := func(v float64) { budget.Store(math.Float64bits(v)) }
	r := newRig(t, Options{ImageDuty: 1e-6, ImageBudget: func() float64 { return math.Float64frombits(budget.Load()) }}, nil)

	// Ahead of the log: rests; behind it, or within the margin: does not.
	// No commits since the cut (a budget of 0): never behind.
	setBudget(0.1)
	if r.f.behind(0.5) || r.f.behind(0.14) {
		t.Fatal("behind(0.5) or behind(0.14) with the log at 0.1 of its room: want false (the writer is ahead)")
	}
	if !r.f.behind(0.13) || !r.f.behind(0.05) {
		t.Fatal("behind(0.13) or behind(0.05) with the log at 0.1 of its room: want true (within the margin, or behind)")
	}
	setBudget(0)
	if r.f.behind(0.01) {
		t.Fatal("behind with no commits since the cut: want false")
	}
	setBudget(1)

	val := strings.Repeat("v", 1000)
	var last uint64
	for i := range 12 {
		ops := make([]intention.Op, 0, 200)
		for j := range 200 {
			ops = append(ops, putOp(fmt.Sprintf("k%02d-%03d", i, j), val))
		}
		last = r.intent(ops...)
	}
	r.stepTo(last)
	cut, err := r.l.Append(context.Background(), entry.AppendCut(nil, 7, &testHeader))
	if err != nil {
		t.Fatal(err)
	}
	r.stepTo(uint64(cut))
	testutil.Eventually(t, waitLong, func() bool { return r.f.Stats().CheckpointsWritten == 1 })
	if n := r.f.Stats().CheckpointChunks; n < 3 {
		t.Fatalf("the image took %d chunks; the test needs several (rests between them)", n)
	}
}
