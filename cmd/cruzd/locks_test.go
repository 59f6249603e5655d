package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestKeyLocksAcquire checks what acquire returns and holds, for lists of
// requests below and above bitmapLocks (the sort and the bitmap): each
// stripe asked for once, in increasing order, exclusive when any request
// for it was; those locks held, shared ones shared; and all free again
// after release.
func TestKeyLocksAcquire(t *testing.T) {
	l := newKeyLocks()
	r := rand.New(rand.NewPCG(24, 7))
	for _, n := range []int{1, 2, 5, bitmapLocks - 1, bitmapLocks, bitmapLocks + 1, 150, 600} {
		for _, spread := range []int{3, 64, 300, lockStripes} {
			t.Run(fmt.Sprintf("n=%d/spread=%d", n, spread), func(t *testing.T) {
				reqs := make([]lockReq, n)
				want := map[uint32]bool{}
				for i := range reqs {
					reqs[i] = lockReq{stripe: uint32(r.IntN(spread)), excl: r.IntN(4) == 0}
					if i%7 == 3 {
						reqs[i].stripe = lockStripes - 1 - uint32(r.IntN(spread)) // the top word too
					}
					want[reqs[i].stripe] = want[reqs[i].stripe] || reqs[i].excl
				}
				sorted := mergeSorted(slices.Clone(reqs))
				held := l.acquire(reqs)
				if !slices.Equal(held, sorted) {
					t.Fatalf("acquire gave %v, the sort %v", held, sorted)
				}
				if len(held) != len(want) {
					t.Fatalf("%d stripes held, %d asked for", len(held), len(want))
				}
				for i, h := range held {
					if i > 0 && h.stripe <= held[i-1].stripe {
						t.Fatalf("stripes out of order: %v", held)
					}
					if e, ok := want[h.stripe]; !ok || e != h.excl {
						t.Fatalf("stripe %d held exclusive=%v, want asked=%v exclusive=%v", h.stripe, h.excl, ok, e)
					}
					mu := &l.stripes[h.stripe]
					if mu.TryLock() {
						t.Fatalf("stripe %d not held", h.stripe)
					}
					if got := mu.TryRLock(); got == h.excl {
						t.Fatalf("stripe %d exclusive=%v, but a shared lock succeeded=%v", h.stripe, h.excl, got)
					} else if got {
						mu.RUnlock()
					}
				}
				l.release(held)
				for _, h := range held {
					if !l.stripes[h.stripe].TryLock() {
						t.Fatalf("stripe %d still held after release", h.stripe)
					}
					l.stripes[h.stripe].Unlock()
				}
			})
		}
	}
}
