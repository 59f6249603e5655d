package cruzdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Update's backoff between conflict retries: the first retry runs at once
// (the conflict usually means a newer snapshot is already there), later ones
// wait a random time in [d/2, d), with d doubling from minRetryBackoff up to
// maxRetryBackoff. The jitter keeps writers of one hot key from colliding
// again in lockstep; the randomness lives here, never in the deterministic
// processor.
const (
	minRetryBackoff = 100 * time.Microsecond
	maxRetryBackoff = 50 * time.Millisecond
)

// retryBackoff is the wait before retry number n (1 for the first retry).
func retryBackoff(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := maxRetryBackoff
	if shift := n - 2; shift < 16 && minRetryBackoff<<shift < maxRetryBackoff {
		d = minRetryBackoff << shift
	}
	return d/2 + rand.N(d/2)
}

// waitRetry sleeps before retry number n, or returns an error wrapping both
// ctx's error and the last conflict once ctx ends.
func waitRetry(ctx context.Context, n int, conflict error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cruzdb: update: %w after %d retries: %w", err, n-1, conflict)
	}
	d := retryBackoff(n)
	if d == 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cruzdb: update: %w after %d retries: %w", ctx.Err(), n-1, conflict)
	}
}
