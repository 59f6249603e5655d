// Package testutil holds what cruzdb's tests share: replayable seeds, and
// waiting for a condition without assuming how fast anything runs. It
// imports nothing of cruzdb, so any package's tests may use it;
// fixtures that need the entry format are in testutil/fixture.
package testutil

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// WaitLong bounds every wait for something that must happen. Tests never
// assert that something happens quickly: on a loaded machine anything may
// take long, and only a hang should fail a test.
const WaitLong = 10 * time.Second

// SeedEnv names the environment variable that overrides a test's seed.
const SeedEnv = "CRUZDB_SEED"

// Seed returns the seed of a randomized test: $CRUZDB_SEED if set, else def.
// It is logged, so a failure can be replayed.
func Seed(t testing.TB, def uint64) uint64 {
	t.Helper()
	seed := def
	if s := os.Getenv(SeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", SeedEnv, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with %s=%d)", seed, SeedEnv, seed)
	return seed
}

// Poll calls cond until it returns true or timeout passes, and says which.
// It may run on any goroutine; tests use Eventually.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	wait := 100 * time.Microsecond
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Millisecond)
	}
	return true
}

// Eventually waits until cond returns true, failing the test if it has not
// after timeout (use WaitLong unless the test needs another bound). It must
// be called from the test's goroutine.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("condition not met within %v", timeout)
	}
}

// WaitFor is Eventually with a name for the failure: it waits until cond
// returns true, failing the test with what if it has not after timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Receive returns the next value on ch, failing the test if none arrives
// within WaitLong (what names it in the failure).
func Receive[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	return receiveWithin(t, what, ch, WaitLong)
}

func receiveWithin[T any](t testing.TB, what string, ch <-chan T, timeout time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("%s: nothing within %v", what, timeout)
	}
	var zero T
	return zero
}
