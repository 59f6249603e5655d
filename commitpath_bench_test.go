package cruzdb

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkCommitPath is 1-put commits by one client on the embedded log
// without fsync (Options.NoSync), without automatic checkpoints: what is
// left is the commit path's CPU and its goroutine hand-offs (the group
// commit, the processor's read and apply, the wake of the client), which
// an fdatasync would hide in its noise. It reports commit latency quantiles.
func BenchmarkCommitPath(b *testing.B) {
	for _, clients := range []int{1} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			opts := DefaultOptions()
			opts.NoSync = true
			opts.CheckpointLogRatio = -1
			db, err := Open(b.TempDir(), &opts)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			val := make([]byte, 100)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				t := time.Now()
				if err := db.Update(ctx, func(tx *Txn) error { return tx.Put(benchKey(uint64(i)), val) }); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*9/10].Nanoseconds())/1e3, "p90-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}
