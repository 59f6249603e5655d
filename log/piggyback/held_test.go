package piggyback

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/log/memlog"
)

// TestAppendIntentionHeld: the afterimage that rode with an intention is
// handed to the committer with its position and bytes, and its writer
// waits until the committer releases it; then it learns that position.
func TestAppendIntentionHeld(t *testing.T) {
	ctx := context.Background()
	bc := &batchCounter{Log: memlog.New(nil)}
	p := newLane(t, bc)
	if _, err := p.AppendIntention(ctx, []byte("i1")); err != nil {
		t.Fatal(err)
	}
	got := ride(ctx, t, p, "a1", 1)
	pos, riders := heldOneRider(ctx, t, p, bc, "i2", "a1")
	select {
	case r := <-got:
		t.Fatalf("the rider's writer returned %+v before the release", r)
	default:
	}
	riders.Release()
	select {
	case r := <-got:
		if r.err != nil || r.pos != pos {
			t.Fatalf("the rider's writer got %+v, want position %d", r, pos)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the rider's writer was not released")
	}
}

// TestAppendIntentionHeldError: after a failed batch nothing is held: the
// riders already have the error, and there is nothing to release.
func TestAppendIntentionHeldError(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	bc := &batchCounter{Log: memlog.New(nil)}
	p := newLane(t, bc)
	if _, err := p.AppendIntention(ctx, []byte("i1")); err != nil {
		t.Fatal(err)
	}
	got := ride(ctx, t, p, "a1", 1)
	bc.fail = boom
	_, riders, err := p.AppendIntentionHeld(ctx, []byte("i2"))
	if !errors.Is(err, boom) || riders.Len() != 0 {
		t.Fatalf("err %v, %d riders; want boom and none", err, riders.Len())
	}
	select {
	case r := <-got:
		if !errors.Is(r.err, boom) {
			t.Fatalf("the rider got %v, want boom", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the rider's writer was not released after the error")
	}
}
