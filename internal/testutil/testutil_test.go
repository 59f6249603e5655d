package testutil

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records a Fatalf instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Logf(string, ...any)            {}
func (r *recorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 5 {
			n.Add(1)
		}
	}()
	Eventually(t, WaitLong, func() bool { return n.Load() == 5 })
	calls := 0
	Eventually(t, WaitLong, func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

func TestEventuallyFailsOnTimeout(t *testing.T) {
	r := &recorder{TB: t}
	Eventually(r, time.Millisecond, func() bool { return false })
	if r.failed == "" {
		t.Fatal("Eventually of a condition that never holds did not fail")
	}
	if Poll(time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll of a condition that never holds returned true")
	}
}

func TestSeed(t *testing.T) {
	t.Setenv(SeedEnv, "")
	if s := Seed(t, 42); s != 42 {
		t.Fatalf("Seed = %d, want the default 42", s)
	}
	t.Setenv(SeedEnv, "7")
	if s := Seed(t, 42); s != 7 {
		t.Fatalf("Seed = %d, want 7 from %s", s, SeedEnv)
	}
	t.Setenv(SeedEnv, "x")
	r := &recorder{TB: t}
	Seed(r, 42)
	if r.failed == "" {
		t.Fatal("a malformed seed did not fail the test")
	}
}
