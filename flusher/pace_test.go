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
// cut have used their room: the writer must not rest, so every chunk and
// the marker are written. Without the pacing the deadline fails the test.
// The writer stops resting from ImageHurryShare of the room on, and rests
// below it.
func TestImageWriterPacesAgainstTheLog(t *testing.T) {
	var budget atomic.Uint64 // math.Float64bits
	setBudget := func(v float64) { budget.Store(math.Float64bits(v)) }
	r := newRig(t, Options{ImageDuty: 1e-6, ImageBudget: func() float64 { return math.Float64frombits(budget.Load()) }}, nil)

	// Below the share: rests; at or past it: does not.
	for _, c := range []struct {
		budget float64
		want   bool
	}{{0, false}, {0.1, false}, {ImageHurryShare - 0.01, false}, {ImageHurryShare, true}, {1, true}, {3, true}} {
		setBudget(c.budget)
		if got := r.f.behind(); got != c.want {
			t.Fatalf("behind with the log at %v of its room = %v, want %v", c.budget, got, c.want)
		}
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
