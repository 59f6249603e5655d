package testutil

import (
	"fmt"
	"math/rand/v2"
	"strings"
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
	r = &recorder{TB: t}
	WaitFor(r, "nothing", time.Millisecond, func() bool { return false })
	if !strings.Contains(r.failed, "waiting for nothing") {
		t.Fatalf("WaitFor of a condition that never holds: %q", r.failed)
	}
	r = &recorder{TB: t}
	WaitFor(r, "something", WaitLong, func() bool { return true })
	if r.failed != "" {
		t.Fatalf("WaitFor of a condition that holds failed: %s", r.failed)
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

func TestReceive(t *testing.T) {
	ch := make(chan int, 1)
	go func() { ch <- 7 }()
	if v := Receive(t, "seven", ch); v != 7 {
		t.Fatalf("Receive = %d, want 7", v)
	}
	r := &recorder{TB: t}
	receiveWithin(r, "nothing", ch, time.Millisecond)
	if r.failed == "" {
		t.Fatal("receiving from a silent channel did not fail")
	}
}

func TestRandWidths(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var nilSeen, empty, bin8, bin16, bin32 bool
	for range 2000 {
		b := RandBytes(r, true)
		switch n := len(b); {
		case b == nil:
			nilSeen = true
		case n == 0:
			empty = true
		case n > 65535:
			bin32 = true
		case n > 255:
			bin16 = true
		default:
			bin8 = true
		}
		if RandBytes(r, false) == nil {
			t.Fatal("RandBytes without nil returned nil")
		}
	}
	if !nilSeen || !empty || !bin8 || !bin16 || !bin32 {
		t.Fatalf("widths seen: nil %v, empty %v, bin8 %v, bin16 %v, bin32 %v", nilSeen, empty, bin8, bin16, bin32)
	}
	var small, u16, u32, u64 bool
	for range 2000 {
		switch v := RandUint(r); {
		case v < 1<<8:
			small = true
		case v < 1<<16:
			u16 = true
		case v < 1<<32:
			u32 = true
		default:
			u64 = true
		}
	}
	if !small || !u16 || !u32 || !u64 {
		t.Fatalf("uint widths seen: 8 %v, 16 %v, 32 %v, 64 %v", small, u16, u32, u64)
	}
}
