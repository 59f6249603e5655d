package flusher

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cruzlog/cruzdb/intention"
	"github.com/cruzlog/cruzdb/internal/entry"
	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
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

// TestImageOfAMiBIsNotRested: the writer rests once per paceBytes of
// chunks, not after each chunk, so an image of several chunks but less
// than paceBytes (here ~600 KB, three chunks) is written without a rest,
// as a one-chunk image of 1 MiB was before chunks became smaller. With
// ImageDuty at 1e-6 and the log's room untouched (ImageBudget 0, no
// Hurry, no Flush) a rest after any chunk would take hours, and the
// deadline fails the test. The chunks in the log, which were appended
// while the next one was encoded, are the bytes WriteImage makes of the
// cut, in its order, and the marker names them in ascending positions
// below it.
func TestImageOfAMiBIsNotRested(t *testing.T) {
	r := newRig(t, Options{ImageDuty: 1e-6, ImageBudget: func() float64 { return 0 }}, nil)
	val := strings.Repeat("v", 1000)
	var last uint64
	for i := range 3 {
		ops := make([]intention.Op, 0, 200)
		for j := range 200 {
			ops = append(ops, putOp(fmt.Sprintf("k%02d-%03d", i, j), val))
		}
		last = r.intent(ops...)
	}
	r.stepTo(last)
	ctx := context.Background()
	cut, err := r.l.Append(ctx, entry.AppendCut(nil, 7, &testHeader))
	if err != nil {
		t.Fatal(err)
	}
	r.stepTo(uint64(cut))
	testutil.Eventually(t, waitLong, func() bool { return r.f.Stats().CheckpointsWritten == 1 })

	var want [][]byte
	if err := WriteImage(r.deltas[uint64(cut)], func(c []byte, _ uint64) error {
		want = append(want, bytes.Clone(c))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(want) < 3 || 3*chunkTarget > paceBytes {
		t.Fatalf("the image takes %d chunks of up to %d bytes; the test needs several within %d bytes", len(want), chunkTarget, paceBytes)
	}
	tail, err := r.l.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m *entry.Marker
	var markerPos uint64
	for p := uint64(cut) + 1; p < uint64(tail) && m == nil; p++ {
		data, err := r.l.Read(ctx, log.Position(p))
		if err != nil {
			continue // the rig's holes, if any
		}
		typ, payload, err := entry.Decode(p, data)
		if err != nil {
			t.Fatal(err)
		}
		if k, _ := entry.CheckpointKind(payload); typ == entry.TypeCheckpoint && k == entry.CheckpointMarker {
			if m, err = entry.DecodeMarker(payload); err != nil {
				t.Fatal(err)
			}
			markerPos = p
		}
	}
	if m == nil || m.Cut != uint64(cut) || len(m.Chunks) != len(want) {
		t.Fatalf("marker %+v for cut %d; want one naming %d chunks", m, cut, len(want))
	}
	for i, c := range m.Chunks {
		if c.Pos <= uint64(cut) || c.Pos >= markerPos || i > 0 && c.Pos <= m.Chunks[i-1].Pos {
			t.Fatalf("chunk %d at %d: not in ascending order between the cut %d and the marker %d", i, c.Pos, cut, markerPos)
		}
		data, err := r.l.Read(ctx, log.Position(c.Pos))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, want[i]) {
			t.Fatalf("chunk %d at %d differs from WriteImage's (%d vs %d bytes)", i, c.Pos, len(data), len(want[i]))
		}
	}
}
