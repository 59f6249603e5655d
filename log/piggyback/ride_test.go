package piggyback

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cruzlog/cruzdb/internal/testutil"
	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

// rideResult records the calls of a Ride's function.
type rideResult struct {
	calls int
	pos   log.Position
	err   error
}

// TestRide: an afterimage handed over by Ride rides with the next
// intention, without a goroutine waiting for it; its function is called
// once, by Release, with its position.
func TestRide(t *testing.T) {
	ctx := context.Background()
	bc := &batchCounter{Log: memlog.New(nil)}
	p := newLane(t, bc)
	var got rideResult
	then := func(pos log.Position, err error) { got.calls++; got.pos, got.err = pos, err }
	if p.Ride(ctx, []byte("a0"), then) {
		t.Fatal("Ride took an afterimage before any local intention")
	}
	if _, err := p.AppendIntention(ctx, []byte("i1")); err != nil {
		t.Fatal(err)
	}
	if !p.Ride(ctx, []byte("a1"), then) {
		t.Fatal("Ride refused an afterimage right after a local intention")
	}
	pos, riders := heldOneRider(ctx, t, p, bc, "i2", "a1")
	if bc.batches != 1 {
		t.Fatalf("%d batches, want 1 (the rider in the intention's)", bc.batches)
	}
	if got.calls != 0 {
		t.Fatalf("called %d times before Release", got.calls)
	}
	riders.Release()
	if got.calls != 1 || got.pos != pos || got.err != nil {
		t.Fatalf("after Release: %+v, want one call with position %d", got, pos)
	}
}

// TestRideAlone: with no intention within the window, the afterimage is
// appended alone and its function called with that position.
func TestRideAlone(t *testing.T) {
	ctx := context.Background()
	bc := &batchCounter{Log: memlog.New(nil)}
	p := newLane(t, bc)
	if _, err := p.AppendIntention(ctx, []byte("i1")); err != nil {
		t.Fatal(err)
	}
	p.window = time.Millisecond
	done := make(chan rideResult, 2)
	// Ride takes it only within the (short) window after the last local
	// intention: a loaded machine may take longer, so mark one anew.
	testutil.Eventually(t, 10*time.Second, func() bool {
		p.lastLocal.Store(time.Now().UnixNano())
		return p.Ride(ctx, []byte("a1"), func(pos log.Position, err error) { done <- rideResult{1, pos, err} })
	})
	var r rideResult
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the afterimage was not appended alone")
	}
	if r.err != nil || string(read(t, bc, r.pos)) != "a1" {
		t.Fatalf("appended alone: %+v, holding %q; want a1", r, read(t, bc, r.pos))
	}
	waitRiders(t, p, 0)
	// The next intention finds no rider, and the function is not called again.
	if _, riders, err := p.AppendIntentionHeld(ctx, []byte("i2")); err != nil || riders.Len() != 0 {
		t.Fatalf("next intention: %d riders, %v; want none", riders.Len(), err)
	}
	select {
	case r := <-done:
		t.Fatalf("called again: %+v", r)
	default:
	}
}

// TestRideError: the rider gets the error of the batch it rode in.
func TestRideError(t *testing.T) {
	ctx := context.Background()
	bc := &batchCounter{Log: memlog.New(nil)}
	p := newLane(t, bc)
	if _, err := p.AppendIntention(ctx, []byte("i1")); err != nil {
		t.Fatal(err)
	}
	var got rideResult
	if !p.Ride(ctx, []byte("a1"), func(pos log.Position, err error) { got.calls++; got.pos, got.err = pos, err }) {
		t.Fatal("Ride refused an afterimage right after a local intention")
	}
	bc.fail = errors.New("test: batch fails")
	if _, err := p.AppendIntention(ctx, []byte("i2")); !errors.Is(err, bc.fail) {
		t.Fatalf("append: %v, want %v", err, bc.fail)
	}
	if got.calls != 1 || !errors.Is(got.err, bc.fail) {
		t.Fatalf("rider: %+v, want one call with %v", got, bc.fail)
	}
}

// TestRides: Rides says whether Ride would take an afterimage now: not
// before a local intention, nor with more commits under way than
// MaxRidingCommitters, nor on a log that cannot batch.
func TestRides(t *testing.T) {
	ctx := context.Background()
	p := newLane(t, &batchCounter{Log: memlog.New(nil)})
	if p.Rides() {
		t.Fatal("Rides before any local intention")
	}
	if _, err := p.AppendIntention(ctx, []byte("i1")); err != nil {
		t.Fatal(err)
	}
	if !p.Rides() {
		t.Fatal("not Rides right after a local intention")
	}
	var ends []func()
	for range MaxRidingCommitters + 1 {
		ends = append(ends, p.CommitBegins())
	}
	if p.Rides() || p.Ride(ctx, []byte("a"), func(log.Position, error) { t.Error("called") }) {
		t.Fatalf("Rides with %d commits under way", MaxRidingCommitters+1)
	}
	for _, end := range ends {
		end()
	}
	unbatched := newLane(t, plain{memlog.New(nil)})
	if _, err := unbatched.AppendIntention(ctx, []byte("i1")); err != nil {
		t.Fatal(err)
	}
	if unbatched.Rides() {
		t.Fatal("Rides on a log that cannot batch")
	}
}
