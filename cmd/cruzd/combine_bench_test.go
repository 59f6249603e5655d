package main

import (
	"fmt"
	"testing"
)

// BenchmarkCombinedSets: the part of a combined transaction that cruzd
// builds before the commit: 160 SETs of 100-byte values (about what one
// commit carries under redis-benchmark -P 16 -c 50) run into one writable
// transaction the way a combiner worker runs them, from connection batches
// of 16. ns/op and allocs/op are per SET.
func BenchmarkCombinedSets(b *testing.B) {
	const sets = 160
	s := testServer(b, nil)
	c := &conn{s: s}
	spec := s.specs["set"]
	args := make([][][]byte, sets)
	for i := range args {
		args[i] = [][]byte{[]byte("SET"), fmt.Appendf(nil, "key:%012d", i*7919%100_000), make([]byte, 100)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += sets {
		tx, err := s.db.Begin(s.ctx, true)
		if err != nil {
			b.Fatal(err)
		}
		tx.ReserveWrites(sets)
		for k, a := range args {
			if k%16 == 0 {
				// A connection's batch of 16 (readBatch, serve).
				c.own, c.ownFor = nil, 16*(ownedPerCmd+batchBytes(args[k:k+1]))
			}
			spec.run(c, tx, a)
		}
		c.w.B = c.w.B[:0]
		tx.Rollback()
	}
}
